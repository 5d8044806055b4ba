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
