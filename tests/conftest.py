"""Shared fixtures: small thread counts (CI has two cores) and composed configs shrunk for CPU."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the test suite may reach a model hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # MLflow 3 reports usage unless told not to
os.environ.setdefault("WANDB_MODE", "offline")  # and W&B runs stay on this machine


@pytest.fixture(autouse=True, scope="session")
def _few_threads():
    torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def compose_config(tmp_path):
    """Compose the real ``train`` config with overrides, artifacts under ``tmp_path``."""
    from lit_rlhf.run import compose

    def _compose(*overrides: str):
        return compose([f"paths.artifacts={tmp_path}", *overrides])

    return _compose


TINY_MODEL = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}


def _tiny_stage(stage: str, **kwargs):
    """A tiny ``stage`` module on a few gym rows and what ``Trainer.fit`` needs besides it.

    ``kwargs`` go to the module's constructor, or to ``PPOConfig`` for ``ppo``.
    """
    from torch.utils.data import DataLoader

    from lit_rlhf.gym import AlignmentGym

    gym = AlignmentGym(seed=0)
    torch.manual_seed(0)
    if stage == "reward_model":
        from lit_rlhf.gym.comparisons import gym_preference_rows
        from lit_rlhf.reward.data import PreferenceDataModule
        from lit_rlhf.reward.model import build_reward_model
        from lit_rlhf.reward.module import RewardModelModule

        model, tokenizer = build_reward_model(seed=0, tiny=TINY_MODEL)
        rows = gym_preference_rows(gym, "train", categories=["harmful", "identity"])[:16]
        datamodule = PreferenceDataModule(tokenizer, rows[:12], rows[12:], batch_size=4, max_length=48)
        return RewardModelModule(model, tokenizer, **kwargs), {"datamodule": datamodule}
    from lit_rlhf.models import build_policy

    model, tokenizer = build_policy("embedded", seed=0, tiny=TINY_MODEL)
    if stage == "sft":
        from lit_rlhf.sft.data import SFTCollator, SFTDataset
        from lit_rlhf.sft.module import SFTModule

        rows = gym.demonstrations("train", 1)[:16]
        collate = SFTCollator(tokenizer.pad_token_id)
        train, val = (
            DataLoader(SFTDataset(part, tokenizer, 64), batch_size=4, collate_fn=collate)
            for part in (rows[:12], rows[12:])
        )
        return SFTModule(model, tokenizer, **kwargs), {"train_dataloaders": train, "val_dataloaders": val}
    if stage == "dpo":
        from lit_rlhf.dpo.data import DPODataModule
        from lit_rlhf.dpo.module import DPOModule
        from lit_rlhf.gym.comparisons import gym_preference_rows

        rows = gym_preference_rows(gym, "train", categories=["harmful", "identity"])[:16]
        datamodule = DPODataModule(tokenizer, rows, batch_size=4, max_length=64, val_fraction=0.25)
        datamodule.cache_reference_logps(model)
        return DPOModule(model, tokenizer, **kwargs), {"datamodule": datamodule}
    if stage == "ppo":
        from lit_rlhf.ppo.config import PPOConfig
        from lit_rlhf.ppo.module import PPOModule
        from lit_rlhf.ppo.stage import collate_prompts

        prompts = [p.text for p in gym.prompts("train")[::40]][:8]

        def gold(prompts, responses):  # a stand-in reward
            return [gym.judge.score(p, r).overall for p, r in zip(prompts, responses)]

        config = PPOConfig(**{"reference_baseline": False, "max_new_tokens": 4, "ppo_epochs": 1, **kwargs})
        loader = DataLoader([{"prompt": p} for p in prompts], batch_size=4, collate_fn=collate_prompts)
        return PPOModule(model, tokenizer, gold, config), {"train_dataloaders": loader}
    raise ValueError(f"unknown stage {stage!r}")


@pytest.fixture
def tiny_stage():
    """``tiny_stage(stage, **kwargs) -> (module, fit_kwargs)`` for ``sft``, ``reward_model``, ``ppo``, ``dpo``."""
    return _tiny_stage
