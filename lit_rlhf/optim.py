"""Optimizer construction shared by every stage: decay only on matrices, fused AdamW where the device has it."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch


def decay_param_groups(named_params: Iterable[tuple[str, torch.nn.Parameter]], weight_decay: float) -> list[dict]:
    """Two groups: 2-D+ weights decay, biases and norm gains do not (decaying a gain only shrinks the signal)."""
    decay, no_decay = [], []
    for _, p in named_params:
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def fused_supported(params: list[torch.Tensor]) -> bool:
    """Fused AdamW kernels exist for floating-point tensors on CUDA, CPU, MPS and XPU, all on one device."""
    devices = {p.device.type for p in params}
    return len(devices) == 1 and devices <= {"cuda", "cpu", "mps", "xpu"} and all(p.is_floating_point() for p in params)


def build_optimizer(factory: Callable, named_params, weight_decay: float = 0.0, fused: bool | str = "auto"):
    """Call a partial optimizer (e.g. ``torch.optim.AdamW`` from Hydra's ``_partial_``) on decay groups.

    ``fused="auto"`` turns on fused kernels when every parameter is on a device that has them.
    """
    groups = decay_param_groups(named_params, weight_decay)
    kwargs = {}
    if fused == "auto":
        kwargs["fused"] = fused_supported([p for g in groups for p in g["params"]]) or None
    elif fused:
        kwargs["fused"] = True
    return factory([g for g in groups if g["params"]], **kwargs)
