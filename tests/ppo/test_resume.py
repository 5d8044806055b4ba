"""A PPO run stopped after one epoch and resumed from its checkpoint reproduces the uninterrupted run exactly."""

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

from lit_rlhf.data.ntp import IndexedBatches
from lit_rlhf.data.sft_data import SFTCollator, SFTDataset
from lit_rlhf.gym import AlignmentGym
from lit_rlhf.models import build_policy
from lit_rlhf.modules.ppo_module import PPOModule
from lit_rlhf.ppo.config import PPOConfig
from lit_rlhf.stages.ppo import collate_prompts
from lit_rlhf.systems.checkpoint_io import AtomicCheckpointIO

GYM = AlignmentGym(seed=0)
KEYS = ("reward/raw", "reward/used", "objective/kl", "objective/kl_coef", "policy/loss", "critic/loss", "ntp/loss")


def gold(prompts, responses):
    return [GYM.judge.score(p, r).overall for p, r in zip(prompts, responses)]


class Recorder(L.Callback):
    def __init__(self):
        self.rows = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.rows.append({k: float(trainer.callback_metrics[k]) for k in KEYS})


def _module():
    model, tokenizer = build_policy("embedded", seed=0, tiny={"hidden_size": 32, "num_layers": 1, "num_heads": 2,
                                                               "intermediate_size": 64})
    ntp = IndexedBatches(SFTDataset(GYM.demonstrations("train", 1)[:40], tokenizer, 64),
                         SFTCollator(tokenizer.pad_token_id), batch_size=4, seed=0)
    prompts = [p.text for p in GYM.prompts("train")[:16]]
    config = PPOConfig(max_new_tokens=5, ppo_epochs=2, policy_lr=1e-3, critic_lr=1e-3, ntp_coef=0.5,
                       reward_normalization="running", adaptive_kl=True, kl_target=0.01, kl_horizon=100)
    module = PPOModule(model, tokenizer, gold, config, ref_scores={p: 0.3 for p in prompts}, ntp_batches=ntp)
    loader = DataLoader([{"prompt": p} for p in prompts], batch_size=4, shuffle=True, collate_fn=collate_prompts)
    return module, loader


def _fit(tmp_path, epochs, ckpt_path=None):
    L.seed_everything(0)
    module, loader = _module()
    recorder = Recorder()
    trainer = L.Trainer(max_epochs=epochs, limit_train_batches=2, accelerator="cpu", logger=False,
                        enable_progress_bar=False, enable_model_summary=False, plugins=[AtomicCheckpointIO()],
                        callbacks=[recorder, ModelCheckpoint(dirpath=tmp_path, save_last=True)])
    trainer.fit(module, loader, ckpt_path=ckpt_path)
    return recorder.rows, module


def test_stopped_and_resumed_run_matches_the_uninterrupted_run(tmp_path):
    full, full_module = _fit(tmp_path / "full", epochs=2)
    first, _ = _fit(tmp_path / "split", epochs=1)
    assert first == full[:2]
    checkpoint = tmp_path / "split" / "last.ckpt"
    assert checkpoint.exists() and not list((tmp_path / "split").glob(".*.tmp"))
    resumed, resumed_module = _fit(tmp_path / "split", epochs=2, ckpt_path=str(checkpoint))
    assert resumed == full[2:]
    assert resumed_module.kl_controller.value == full_module.kl_controller.value
    assert resumed_module.normalizer.state_dict() == full_module.normalizer.state_dict()
    for (name, a), (_, b) in zip(full_module.named_parameters(), resumed_module.named_parameters()):
        assert torch.equal(a, b), name
