"""Optimizers from Hydra partials, with the same decay groups and fused-kernel choice as ``build_adamw``."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from lit_rlhf.systems.adamw import adamw_kernel_options, adamw_param_groups
from lit_rlhf.systems.precision import prepare_optimizer


def build_optimizer(factory: Callable, named_params, weight_decay: float = 0.0, fused: bool | str = "auto"):
    """Call a partial optimizer (e.g. ``torch.optim.AdamW`` from Hydra's ``_partial_``) on decay groups.

    Decay applies to matrices only; ``fused="auto"`` turns on fused kernels when every
    parameter sits on a device that has them (see ``lit_rlhf.systems.adamw``).
    """
    groups = adamw_param_groups(named_params, weight_decay)
    params = [p for g in groups for p in g["params"]]
    return factory(groups, **adamw_kernel_options(params, fused))


def optimizers_for(
    module,
    named_params,
    factory: Callable,
    scheduler_factory: Callable | None = None,
    weight_decay: float = 0.0,
    fused: bool | str = "auto",
):
    """What ``configure_optimizers`` returns: the optimizer, plus a per-step scheduler when one is given.

    ``scheduler_factory(optimizer, total_steps=...)`` gets the Trainer's estimate of the steps. With a
    Trainer attached the optimizer is fitted to its precision and clipping (``prepare_optimizer``).
    """
    optimizer = build_optimizer(factory, named_params, weight_decay, fused)
    if module._trainer is not None:
        prepare_optimizer(optimizer, module.trainer)
    if scheduler_factory is None:
        return optimizer
    scheduler = scheduler_factory(optimizer, total_steps=int(module.trainer.estimated_stepping_batches))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def warmup_cosine(optimizer, total_steps: int, warmup_ratio: float = 0.05, min_ratio: float = 0.1):
    """Linear warm-up then cosine decay to ``min_ratio`` of the peak learning rate."""
    warmup = max(1, int(warmup_ratio * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
