"""Lightning's stock callbacks with every stage's module: tiny models, a couple of steps each."""

from functools import partial

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import (
    EarlyStopping,
    GradientAccumulationScheduler,
    LearningRateMonitor,
    ModelCheckpoint,
    ModelSummary,
    RichProgressBar,
    StochasticWeightAveraging,
    Timer,
    TQDMProgressBar,
)
from lightning.pytorch.loggers import CSVLogger

from lit_rlhf.systems.fused_optimizer import FusedBackwardAdamW
from lit_rlhf.systems.optimizers import warmup_cosine

STAGES = ["sft", "reward_model", "dpo", "ppo"]
AUTOMATIC = ["sft", "reward_model", "dpo"]
# (metric, mode) each stage logs, for checkpointing and early stopping: validation losses; PPO has no validation.
MONITORED = {
    "sft": ("val/loss", "min"),
    "reward_model": ("val/loss", "min"),
    "dpo": ("val/dpo/loss", "min"),
    "ppo": ("reward", "max"),
}
# Learning rates of each stage's parameter groups, as LearningRateMonitor names them.
LEARNING_RATES = {
    "sft": {"lr-AdamW/decay", "lr-AdamW/no_decay"},
    "reward_model": {"lr-AdamW/decay", "lr-AdamW/no_decay"},
    "dpo": {"lr-AdamW/decay", "lr-AdamW/no_decay"},
    "ppo": {"lr-AdamW/policy/decay", "lr-AdamW/policy/no_decay", "lr-AdamW/critic/decay", "lr-AdamW/critic/no_decay"},
}


def _trainer(tmp_path, callbacks, **kwargs):
    options = {
        "max_epochs": 2,
        "limit_train_batches": 2,
        "limit_val_batches": 1,
        "accelerator": "cpu",
        "logger": CSVLogger(tmp_path, name="logs"),
        "default_root_dir": tmp_path,
        "log_every_n_steps": 1,
        "enable_checkpointing": any(isinstance(c, ModelCheckpoint) for c in callbacks),
        **kwargs,
    }
    return L.Trainer(callbacks=callbacks, **options)


@pytest.mark.parametrize("stage", STAGES)
def test_common_callbacks_run_with_every_module(tiny_stage, tmp_path, stage):
    module, fit_kwargs = tiny_stage(stage, **({"scheduler": warmup_cosine} if stage == "sft" else {}))
    metric, mode = MONITORED[stage]
    lr_monitor = LearningRateMonitor(logging_interval="step")
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor=metric, mode=mode, save_top_k=1, save_last=True)
    early_stopping = EarlyStopping(monitor=metric, mode=mode, patience=5)
    timer = Timer(duration={"minutes": 10})
    # One bar per Trainer: Rich for two stages, TQDM (the configs' bar) for the other two.
    progress = RichProgressBar() if stage in ("sft", "ppo") else TQDMProgressBar(refresh_rate=1)
    trainer = _trainer(tmp_path, [lr_monitor, checkpoint, early_stopping, timer, progress, ModelSummary(max_depth=2)])
    trainer.fit(module, **fit_kwargs)

    assert trainer.current_epoch == 2 and early_stopping.stopped_epoch == 0
    assert set(lr_monitor.lrs) == LEARNING_RATES[stage]
    assert all(len(values) == 2 * 2 for values in lr_monitor.lrs.values())  # once per batch
    if stage == "ppo":  # each group at its own rate
        assert lr_monitor.lrs["lr-AdamW/policy/decay"][0] == module.optimizer_factory.keywords["lr"]
        assert lr_monitor.lrs["lr-AdamW/critic/no_decay"][0] == module.param_groups["critic"]["lr"]
    if stage == "sft":  # the warm-up/cosine schedule moves the logged rate
        assert len(set(lr_monitor.lrs["lr-AdamW/decay"])) > 1
    assert checkpoint.best_model_path and checkpoint.best_model_score is not None
    assert (tmp_path / "ckpt" / "last.ckpt").exists()
    saved = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
    assert saved["optimizer_states"] and saved["state_dict"].keys() == module.state_dict().keys()
    assert torch.isfinite(early_stopping.best_score)
    assert timer.time_elapsed("train") > 0


@pytest.mark.parametrize("stage", STAGES)
def test_in_backward_optimizer_groups_are_monitored(tiny_stage, tmp_path, stage):
    options = (
        {"fused_backward": True, "max_grad_norm": None}
        if stage == "ppo"
        else {"optimizer": partial(FusedBackwardAdamW, lr=2e-3)}
    )
    module, fit_kwargs = tiny_stage(stage, **options)
    lr_monitor = LearningRateMonitor(logging_interval="step")
    trainer = _trainer(tmp_path, [lr_monitor], max_epochs=1, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, **fit_kwargs)
    assert set(lr_monitor.lrs) == {name.replace("AdamW", "FusedBackwardAdamW") for name in LEARNING_RATES[stage]}
    if stage != "ppo":
        assert all(values == [2e-3, 2e-3] for values in lr_monitor.lrs.values())


@pytest.mark.parametrize("stage", AUTOMATIC)
def test_gradient_accumulation_scheduler_with_automatic_optimization(tiny_stage, tmp_path, stage):
    module, fit_kwargs = tiny_stage(stage)
    scheduler = GradientAccumulationScheduler(scheduling={0: 1, 1: 2})
    trainer = _trainer(tmp_path, [scheduler], enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, **fit_kwargs)
    assert trainer.global_step == 2 + 1  # two batches an epoch: one step per batch, then one per two batches


def test_gradient_accumulation_scheduler_is_refused_by_ppo(tiny_stage, tmp_path):
    module, fit_kwargs = tiny_stage("ppo")
    trainer = _trainer(tmp_path, [GradientAccumulationScheduler(scheduling={0: 2})], enable_progress_bar=False)
    with pytest.raises(RuntimeError, match="manual optimization"):
        trainer.fit(module, **fit_kwargs)


@pytest.mark.parametrize("stage", AUTOMATIC)
def test_stochastic_weight_averaging_leaves_the_averaged_weights(tiny_stage, tmp_path, stage):
    """The module ends with the average of the weights each epoch starts from, from ``swa_epoch_start`` (1-based) on."""
    module, fit_kwargs = tiny_stage(stage)
    weights = []

    class EpochWeights(L.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            weights.append({k: v.detach().clone() for k, v in pl_module.named_parameters()})

    swa = StochasticWeightAveraging(swa_lrs=1e-3, swa_epoch_start=2, annealing_epochs=1)
    trainer = _trainer(
        tmp_path, [EpochWeights(), swa], max_epochs=3, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(module, **fit_kwargs)
    # the second and third epochs start from the weights the first and second ended with
    for name, param in module.named_parameters():
        torch.testing.assert_close(param.detach(), (weights[0][name] + weights[1][name]) / 2)
    assert any(not torch.equal(weights[0][name], weights[1][name]) for name in weights[0])
