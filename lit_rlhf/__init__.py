"""lit_rlhf: RLHF on Hugging Face language models with PyTorch Lightning and Hydra.

What a Lightning project needs, importable from the top level without knowing the folder layout::

    from lit_rlhf import PPOModule, PPOConfig, RewardModel, build_policy

Stages (one LightningModule each): ``SFTModule`` / ``SFTDataModule``, ``RewardModelModule`` /
``PreferenceDataModule`` / ``RewardModel``, ``PPOModule`` / ``PPOConfig``, ``DPOModule`` / ``DPOConfig`` /
``DPODataModule``. Runs from configs: ``compose`` (a ``lit-rlhf-train`` config with overrides), ``train`` (run
its stage) and ``run_pipeline``. Names are imported on first use, so ``import lit_rlhf`` stays cheap.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> module that defines it
_EXPORTS = {
    "SFTModule": "lit_rlhf.sft.module",
    "SFTDataModule": "lit_rlhf.sft.data",
    "read_sft_jsonl": "lit_rlhf.sft.data",
    "RewardModelModule": "lit_rlhf.reward.module",
    "PreferenceDataModule": "lit_rlhf.reward.data",
    "LengthBalancer": "lit_rlhf.reward.length_balance",
    "RewardModel": "lit_rlhf.reward.model",
    "build_reward_model": "lit_rlhf.reward.model",
    "read_preferences": "lit_rlhf.data.preference_files",
    "PPOModule": "lit_rlhf.ppo.module",
    "PPOConfig": "lit_rlhf.ppo.config",
    "ValueModel": "lit_rlhf.ppo.value_model",
    "read_prompts_jsonl": "lit_rlhf.ppo.rl_prompts",
    "DPOModule": "lit_rlhf.dpo.module",
    "DPOConfig": "lit_rlhf.dpo.config",
    "DPODataModule": "lit_rlhf.dpo.data",
    "IndexedBatches": "lit_rlhf.data.ntp",
    "build_policy": "lit_rlhf.models.builder",
    "save_hf_checkpoint": "lit_rlhf.models.builder",
    "generate": "lit_rlhf.generation",
    "FusedBackwardAdamW": "lit_rlhf.systems.fused_optimizer",
    "warmup_cosine": "lit_rlhf.systems.optimizers",
    "AlignmentGym": "lit_rlhf.gym.environment",
    "compose": "lit_rlhf.run",
    "train": "lit_rlhf.run",
    "run_pipeline": "lit_rlhf.pipeline",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lit_rlhf' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
