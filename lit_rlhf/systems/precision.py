"""Gradient clipping that stays correct under mixed precision, for automatic and manual optimization.

Two facts of torch and Lightning shape this module:

- Fused Adam(W) declares ``_step_supports_amp_scaling``: under fp16 AMP the ``GradScaler`` hands the
  scale to the kernel, which unscales the gradients inside ``step``. The gradients are then still
  scaled when Lightning would clip them, so Lightning's ``MixedPrecision`` plugin refuses to clip such
  an optimizer at all, under bf16 too (where no scaler exists). ``unscale_before_step`` routes the
  optimizer through the scaler's standard path instead: ``unscale_`` first, then clipping, then a
  step on real gradients.
- In manual optimization Lightning unscales inside ``optimizer.step()``, after the training step has
  clipped, so under fp16 AMP ``clip_gradients`` sees the gradients multiplied by the scale;
  ``clip_grad_norm_before_step`` scales the threshold alike.

``prepare_optimizer`` applies these to an optimizer once the Trainer's settings are known, and
refuses settings the in-backward optimizer (``FusedBackwardAdamW``) cannot honour.
"""

from __future__ import annotations

import torch

from lit_rlhf.systems.fused_optimizer import FusedBackwardAdamW, check_fused_backward_compatible


def unscale_before_step(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """Make the GradScaler unscale ``optimizer``'s gradients before its step instead of inside the fused kernel.

    The fused kernel is kept. The scaler then unscales (and checks for inf/NaN) before clipping, and
    the step sees real gradients with no ``grad_scale`` attached. Costs one pass over the gradients
    under fp16 AMP and nothing under bf16 (no scaler). Returns ``optimizer``.
    """
    if getattr(optimizer, "_step_supports_amp_scaling", False):
        optimizer._step_supports_amp_scaling = False
    return optimizer


def gradient_scale(trainer) -> float:
    """The factor gradients carry between backward and the optimizer step: the GradScaler's scale, else 1."""
    scaler = getattr(trainer.precision_plugin, "scaler", None)
    return float(scaler.get_scale()) if scaler is not None and scaler.is_enabled() else 1.0


def clip_grad_norm_before_step(module, optimizer: torch.optim.Optimizer, max_norm: float) -> None:
    """Clip the global gradient norm of ``optimizer``'s parameters to ``max_norm`` in manual optimization.

    Call between ``manual_backward`` and ``optimizer.step()``. Under fp16 AMP the gradients here are
    ``scale * g`` (Lightning unscales inside ``optimizer.step()``): clipping ``scale * g`` to
    ``scale * max_norm`` clips ``g`` to ``max_norm``. Non-finite gradients stay non-finite, so the
    scaler still skips that step.
    """
    module.clip_gradients(
        optimizer, gradient_clip_val=max_norm * gradient_scale(module.trainer), gradient_clip_algorithm="norm"
    )


def strategy_name(strategy) -> str | None:
    """``"ddp"`` or ``"fsdp"`` (FSDP1) for the Lightning strategies ``check_fused_backward_compatible`` names."""
    from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy

    return "ddp" if isinstance(strategy, DDPStrategy) else "fsdp" if isinstance(strategy, FSDPStrategy) else None


def prepare_optimizer(optimizer: torch.optim.Optimizer, trainer, gradient_clip_val: float | None = None):
    """Fit ``optimizer`` to the Trainer's precision, clipping, accumulation and strategy; returns it.

    ``gradient_clip_val`` is the clipping a manual-optimization module applies itself; by default the
    Trainer's ``gradient_clip_val`` is used. An in-backward optimizer is refused (``ValueError``) for
    settings it cannot honour; any other optimizer that will be clipped unscales before its step.
    """
    clip = trainer.gradient_clip_val if gradient_clip_val is None else gradient_clip_val
    if isinstance(optimizer, FusedBackwardAdamW):
        check_fused_backward_compatible(
            gradient_clip_val=clip,
            accumulate_grad_batches=trainer.accumulate_grad_batches,
            precision=str(trainer.precision),
            strategy=strategy_name(trainer.strategy),
        )
    elif clip:
        unscale_before_step(optimizer)
    return optimizer
