"""A PPO run stopped mid-epoch or at an epoch's end and resumed from the shipped checkpoint callback's
``last.ckpt`` reproduces the uninterrupted run exactly."""

import functools

import lightning as L
import pytest
import torch
from hydra.utils import instantiate

from lit_rlhf.data.ntp import IndexedBatches
from lit_rlhf.gym import AlignmentGym
from lit_rlhf.models import build_policy
from lit_rlhf.ppo.config import PPOConfig
from lit_rlhf.ppo.module import PPOModule
from lit_rlhf.ppo.stage import prompt_loader
from lit_rlhf.ppo.value_model import SharedBaseCritic
from lit_rlhf.sft.data import SFTCollator, SFTDataset
from lit_rlhf.systems.checkpoint_io import AtomicCheckpointIO

GYM = AlignmentGym(seed=0)
KEYS = ("reward/raw", "reward/used", "objective/kl", "objective/kl_coef", "policy/loss", "critic/loss", "ntp/loss")
BATCHES_PER_EPOCH = 3


def gold(prompts, responses):
    return [GYM.judge.score(p, r).overall for p, r in zip(prompts, responses)]


class Recorder(L.Callback):
    def __init__(self):
        self.rows = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.rows.append({"prompts": list(batch["prompt"]), **{k: float(trainer.callback_metrics[k]) for k in KEYS}})


class Stop(Exception):
    pass


class StopDuring(L.Callback):
    """Ends the run like a kill: an exception at the end of training batch number ``n`` (counted over the run),
    before that batch's checkpoint is written."""

    def __init__(self, n: int):
        self.n, self.seen = n, 0

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if self.seen == self.n:
            raise Stop
        self.seen += 1


def _module(lora: dict | None = None, shared_critic: bool = False):
    model, tokenizer = build_policy(
        "embedded",
        seed=0,
        tiny={"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64},
        lora=lora,
    )
    ntp = IndexedBatches(
        SFTDataset(GYM.demonstrations("train", 1)[:40], tokenizer, 64),
        SFTCollator(tokenizer.pad_token_id),
        batch_size=4,
        seed=0,
    )
    prompts = [p.text for p in GYM.prompts("train")[:16]]
    config = PPOConfig(
        max_new_tokens=5,
        ppo_epochs=2,
        ntp_coef=0.5,
        reward_normalization="running",
        adaptive_kl=True,
        kl_target=0.01,
        kl_horizon=100,
    )
    module = PPOModule(
        model,
        tokenizer,
        gold,
        config,
        ref_scores={p: 0.3 for p in prompts},
        ntp_batches=ntp,
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-3),
        param_groups={},
        critic=SharedBaseCritic(model) if shared_critic else None,
    )
    return module, prompt_loader([{"prompt": p} for p in prompts], 4)


def _fit(checkpoint_entry, directory, stop_during=None, resume=False, lora=None, shared_critic=False):
    L.seed_everything(0)
    module, loader = _module(lora, shared_critic)
    recorder = Recorder()
    callbacks = [recorder, instantiate(checkpoint_entry, dirpath=str(directory))]
    if stop_during is not None:
        callbacks.append(StopDuring(stop_during))
    trainer = L.Trainer(
        max_epochs=2,
        limit_train_batches=BATCHES_PER_EPOCH,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        plugins=[AtomicCheckpointIO()],
        callbacks=callbacks,
    )
    try:
        trainer.fit(module, loader, ckpt_path=str(directory / "last.ckpt") if resume else None)
    except Stop:
        pass
    return recorder.rows, module


@pytest.fixture(scope="module")
def checkpoint_entry():
    """The ``checkpoint`` callback entry of the shipped PPO config."""
    from lit_rlhf.run import compose

    return compose(["experiment=gym_ppo"]).callbacks.checkpoint


@pytest.fixture(scope="module")
def uninterrupted(checkpoint_entry, tmp_path_factory):
    return _fit(checkpoint_entry, tmp_path_factory.mktemp("full"))


# Stopped during batch 2 (epoch 0's last): resumes mid-epoch 0, from after batch 1; during 3: from epoch 0's end
# (the checkpoint due after batch 2 is written there); during 4: mid-epoch 1, from after batch 3.
@pytest.mark.parametrize("stop_during", [2, 3, 4])
def test_stopped_and_resumed_run_matches_the_uninterrupted_run(checkpoint_entry, uninterrupted, tmp_path, stop_during):
    full, full_module = uninterrupted
    first, _ = _fit(checkpoint_entry, tmp_path, stop_during=stop_during)
    assert first == full[: stop_during + 1]
    checkpoint = tmp_path / "last.ckpt"
    assert checkpoint.exists() and not list(tmp_path.glob(".*.tmp"))
    resumed, resumed_module = _fit(checkpoint_entry, tmp_path, resume=True)
    assert resumed == full[stop_during:]
    assert resumed_module.kl_controller.value == full_module.kl_controller.value
    assert resumed_module.normalizer.state_dict() == full_module.normalizer.state_dict()
    for (name, a), (_, b) in zip(full_module.named_parameters(), resumed_module.named_parameters()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("shared_critic", [False, True], ids=["critic_copy", "critic_on_the_policys_base"])
def test_a_lora_run_stopped_and_resumed_matches_the_uninterrupted_run(checkpoint_entry, tmp_path, shared_critic):
    """The same with LoRA adapters on the policy (the reference is its base with the adapters off), and with
    the critic as a second adapter on the policy's base (critic_init=shared)."""
    pytest.importorskip("peft")
    lora, shared = {"r": 4, "dropout": 0.0}, {"shared_critic": shared_critic}
    full, full_module = _fit(checkpoint_entry, tmp_path / "full", lora=lora, **shared)
    first, _ = _fit(checkpoint_entry, tmp_path / "stopped", stop_during=3, lora=lora, **shared)
    assert first == full[:4]
    resumed, resumed_module = _fit(checkpoint_entry, tmp_path / "stopped", resume=True, lora=lora, **shared)
    assert resumed == full[3:]
    trained = [
        (n, a, b)
        for (n, a), (_, b) in zip(full_module.named_parameters(), resumed_module.named_parameters())
        if a.requires_grad
    ]
    assert trained and all("lora_" in n or n.startswith("critic") for n, _, _ in trained)
    assert any(".critic." in n for n, _, _ in trained) == shared_critic  # the critic's adapter, in the policy
    for name, a, b in trained:
        assert torch.equal(a, b), name
