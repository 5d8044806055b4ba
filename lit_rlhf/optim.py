"""Optimizers from Hydra partials, with the same decay groups and fused-kernel choice as ``build_adamw``."""

from __future__ import annotations

from collections.abc import Callable

import torch


def fused_supported(params: list[torch.Tensor]) -> bool:
    """Fused AdamW kernels exist for floating-point tensors on CUDA, CPU, MPS and XPU, all on one device."""
    devices = {p.device.type for p in params}
    return len(devices) == 1 and devices <= {"cuda", "cpu", "mps", "xpu"} and all(p.is_floating_point() for p in params)


def build_optimizer(factory: Callable, named_params, weight_decay: float = 0.0, fused: bool | str = "auto"):
    """Call a partial optimizer (e.g. ``torch.optim.AdamW`` from Hydra's ``_partial_``) on decay groups.

    Decay applies to matrices only; ``fused="auto"`` turns on fused kernels when every
    parameter sits on a device that has them (see ``lit_rlhf.systems.adamw``).
    """
    from lit_rlhf.systems.adamw import adamw_kernel_options, adamw_param_groups

    groups = adamw_param_groups(named_params, weight_decay)
    params = [p for g in groups for p in g["params"]]
    return factory(groups, **adamw_kernel_options(params, fused))


def optimizers_for(module, named_params, factory: Callable, scheduler_factory: Callable | None = None,
                   weight_decay: float = 0.0, fused: bool | str = "auto"):
    """What ``configure_optimizers`` returns: the optimizer, plus a per-step scheduler when one is given.

    ``scheduler_factory(optimizer, total_steps=...)`` gets the Trainer's estimate of the steps. With a
    Trainer attached the optimizer is fitted to its precision and clipping (``prepare_optimizer``).
    """
    from lit_rlhf.systems.precision import prepare_optimizer

    optimizer = build_optimizer(factory, named_params, weight_decay, fused)
    if module._trainer is not None:
        prepare_optimizer(optimizer, module.trainer)
    if scheduler_factory is None:
        return optimizer
    scheduler = scheduler_factory(optimizer, total_steps=int(module.trainer.estimated_stepping_batches))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
