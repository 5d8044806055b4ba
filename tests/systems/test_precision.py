"""Mixed precision with gradient clipping in every stage: fused AdamW, fp16's GradScaler, the in-backward optimizer."""

from functools import partial

import lightning as L
import pytest
import torch
from lightning.pytorch.plugins.precision import MixedPrecision

from lit_rlhf.run import train
from lit_rlhf.systems.fused_optimizer import FusedBackwardAdamW
from lit_rlhf.systems.precision import unscale_before_step

STAGES = ["sft", "reward_model", "dpo", "ppo"]
CLIP = 1e-3  # far below the gradients' norm: every step is clipped


class StepGradients(L.Callback):
    """The gradients each optimizer step used (after any unscaling and clipping): their norm and largest entry.

    Read in a step post-hook: in automatic optimization the closure (backward, clipping) runs inside ``step``.
    """

    def __init__(self):
        self.norms, self.max_abs, self.optimizers = [], [], []

    def on_train_start(self, trainer, pl_module):
        for optimizer in trainer.optimizers:
            self.optimizers.append(optimizer)
            optimizer.register_step_post_hook(self._record)

    def _record(self, optimizer, args, kwargs):
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        if grads:
            self.norms.append(float(torch.nn.utils.get_total_norm(grads)))
            self.max_abs.append(max(float(g.abs().max()) for g in grads))


def _fit(module, fit_kwargs, precision: str, callbacks=(), **trainer_kwargs):
    # Lightning turns precision="16-mixed" on CPU into bf16; its plugin with a CPU GradScaler runs fp16 AMP there.
    amp = {"plugins": [MixedPrecision("16-mixed", "cpu")]} if precision == "16-mixed" else {"precision": precision}
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
        **amp,
        **trainer_kwargs,
    )
    trainer.fit(module, **fit_kwargs)
    return trainer


def _trainable(module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters() if p.requires_grad}


def _changed(module, before: dict[str, torch.Tensor]) -> bool:
    params = dict(module.named_parameters())
    return any(not torch.equal(params[name], value) for name, value in before.items())


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
@pytest.mark.parametrize("stage", STAGES)
def test_fused_adamw_steps_on_gradients_clipped_to_the_norm(tiny_stage, stage, precision):
    # PPO clips in its own update loop (manual optimization); the others through the Trainer.
    module, fit_kwargs = tiny_stage(stage, **({"max_grad_norm": CLIP} if stage == "ppo" else {"fused_optimizer": True}))
    before = _trainable(module)
    seen = StepGradients()
    _fit(module, fit_kwargs, precision, [seen], gradient_clip_val=None if stage == "ppo" else CLIP)
    assert seen.optimizers and all(opt.defaults["fused"] for opt in seen.optimizers)
    assert len(seen.norms) >= 2
    # Under fp16 a step sees unscaled gradients: clipped in scaled units they would be ~CLIP / 65536.
    assert seen.norms == pytest.approx([CLIP] * len(seen.norms), rel=1e-3)
    assert _changed(module, before)


def test_clipping_by_value_under_bf16_with_fused_adamw(tiny_stage):
    module, fit_kwargs = tiny_stage("sft", fused_optimizer=True)
    seen = StepGradients()
    _fit(module, fit_kwargs, "bf16-mixed", [seen], gradient_clip_val=CLIP, gradient_clip_algorithm="value")
    assert len(seen.max_abs) >= 2
    assert seen.max_abs == pytest.approx([CLIP] * len(seen.max_abs), rel=1e-6)  # the largest entries are clamped


def test_fp16_without_clipping_keeps_the_kernels_own_unscaling(tiny_stage):
    module, fit_kwargs = tiny_stage("sft", fused_optimizer=True)
    before = _trainable(module)
    seen = StepGradients()
    _fit(module, fit_kwargs, "16-mixed", [seen])
    # Nothing to clip: the GradScaler keeps handing the scale to the fused kernel, which unscales inside its step.
    assert all(opt._step_supports_amp_scaling for opt in seen.optimizers)
    assert _changed(module, before)


def test_unscale_before_step_leaves_other_optimizers_alone():
    param = torch.nn.Parameter(torch.ones(2))
    fused = unscale_before_step(torch.optim.AdamW([param], fused=True))
    plain = unscale_before_step(torch.optim.SGD([param], lr=0.1))
    assert fused._step_supports_amp_scaling is False and fused.defaults["fused"] is True
    assert not getattr(plain, "_step_supports_amp_scaling", False)


def _in_backward(stage: str) -> dict:
    return (
        {"fused_backward": True, "max_grad_norm": None}
        if stage == "ppo"
        else {"optimizer": partial(FusedBackwardAdamW, lr=1e-3)}
    )


@pytest.mark.parametrize("stage", STAGES)
def test_in_backward_optimizer_trains_under_bf16_without_clipping(tiny_stage, stage):
    module, fit_kwargs = tiny_stage(stage, **_in_backward(stage))
    before = _trainable(module)
    seen = StepGradients()
    _fit(module, fit_kwargs, "bf16-mixed", [seen])
    assert all(isinstance(opt, FusedBackwardAdamW) for opt in seen.optimizers) and seen.optimizers
    assert _changed(module, before)
    assert all(p.grad is None for p in module.parameters())  # each gradient was freed by its own step


@pytest.mark.parametrize("stage", ["sft", "reward_model", "dpo"])
@pytest.mark.parametrize(
    "precision, trainer_kwargs, reason",
    [
        ("bf16-mixed", {"gradient_clip_val": 1.0}, "gradient clipping"),
        ("32-true", {"gradient_clip_val": 1.0, "gradient_clip_algorithm": "value"}, "gradient clipping"),
        ("bf16-mixed", {"accumulate_grad_batches": 2}, "gradient accumulation"),
        ("16-mixed", {}, "precision=16-mixed"),
    ],
    ids=["clip_norm", "clip_value", "accumulation", "fp16"],
)
def test_in_backward_optimizer_is_refused_where_it_cannot_honour_the_trainer(
    tiny_stage, stage, precision, trainer_kwargs, reason
):
    module, fit_kwargs = tiny_stage(stage, **_in_backward(stage))
    with pytest.raises(ValueError, match=f"FusedBackwardAdamW cannot be used with: {reason}"):
        _fit(module, fit_kwargs, precision, **trainer_kwargs)


def test_ppo_in_backward_optimizer_is_refused_with_clipping_or_fp16(tiny_stage):
    with pytest.raises(ValueError, match="max_grad_norm"):
        tiny_stage("ppo", fused_backward=True, max_grad_norm=1.0)
    module, fit_kwargs = tiny_stage("ppo", **_in_backward("ppo"))
    with pytest.raises(ValueError, match="precision=16-mixed"):
        _fit(module, fit_kwargs, "16-mixed")


TINY_OVERRIDES = ["model.tiny.num_layers=1", "model.tiny.hidden_size=32", "model.tiny.intermediate_size=64"]


@pytest.mark.parametrize(
    "experiment, overrides",
    [
        ("gym_sft", ["sft.eval.judge=null"]),
        ("gym_reward_model", ["data.train.pairs_per_prompt=1", "data.test.pairs_per_prompt=1"]),
    ],
)
def test_gpu_trainer_config_with_bf16_and_default_clipping_trains(compose_config, monkeypatch, experiment, overrides):
    """``trainer=gpu`` (bf16-mixed, gradient_clip_val=1.0) through ``train(cfg)``, on the CPU."""
    clipped = []
    clip_grad_norm = torch.nn.utils.clip_grad_norm_

    def recording(parameters, max_norm, *args, **kwargs):
        parameters = list(parameters)
        total = clip_grad_norm(parameters, max_norm, *args, **kwargs)
        after = torch.nn.utils.get_total_norm([p.grad for p in parameters if p.grad is not None])
        clipped.append((float(total), max_norm, float(after)))
        return total

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recording)
    cfg = compose_config(
        f"experiment={experiment}",
        "trainer=gpu",
        "trainer.accelerator=cpu",
        "debug=fast",
        "logger=none",
        *TINY_OVERRIDES,
        *overrides,
    )
    assert cfg.trainer.precision == "bf16-mixed" and cfg.trainer.gradient_clip_val == 1.0
    train(cfg)
    assert len(clipped) == cfg.trainer.limit_train_batches
    for before, max_norm, after in clipped:
        assert max_norm == 1.0 and after == pytest.approx(min(before, max_norm), rel=1e-3)
