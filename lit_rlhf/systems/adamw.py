"""AdamW construction: weight decay only on matrices, fused kernels where the device has them.

Shared by the standard optimizer (``build_adamw``) and the in-backward one
(``lit_rlhf.systems.fused_optimizer.FusedBackwardAdamW``) so both see identical groups.
"""

from __future__ import annotations

import torch
from torch import nn

from lit_rlhf.data.errors import ConfigError


def fused_supported(params: list[torch.Tensor]) -> bool:
    """Fused AdamW kernels exist for floating-point tensors on CUDA, CPU, MPS and XPU, all on one device."""
    devices = {p.device.type for p in params}
    return len(devices) == 1 and devices <= {"cuda", "cpu", "mps", "xpu"} and all(p.is_floating_point() for p in params)


# Keys a param group may set for itself; anything else is kept as a label (e.g. "name").
ADAMW_KEYS = ("lr", "betas", "eps", "weight_decay")


def _as_groups(params_or_groups) -> list[dict]:
    """Normalise a module, parameters, ``(name, param)`` pairs or group dicts to group dicts."""
    if isinstance(params_or_groups, nn.Module):
        params_or_groups = params_or_groups.parameters()
    items = list(params_or_groups)
    if not items:
        raise ValueError("no parameters given to the optimizer")
    if isinstance(items[0], dict):
        return [
            dict(
                group, params=[group["params"]] if isinstance(group["params"], torch.Tensor) else list(group["params"])
            )
            for group in items
        ]
    if isinstance(items[0], tuple):
        items = [param for _, param in items]
    return [{"params": items}]


def _part_names(group_name: str | None, single_group: bool) -> tuple[str | None, str | None]:
    """Names of a group's decayed and undecayed parts when it splits in two: ``{name}/decay``, ``{name}/no_decay``.

    Unique names let ``LearningRateMonitor`` log every part. One unnamed group (e.g. plain
    parameters) gives ``decay``/``no_decay``; several unnamed groups stay unnamed (the monitor numbers them).
    """
    if group_name is not None:
        return f"{group_name}/decay", f"{group_name}/no_decay"
    return ("decay", "no_decay") if single_group else (None, None)


def adamw_param_groups(params_or_groups, weight_decay: float) -> list[dict]:
    """Split every group into a decayed part (tensors of 2+ dims) and an undecayed part.

    Biases and norm gains are not decayed: shrinking a gain toward 0 only scales the signal
    down. A group's own ``weight_decay`` overrides the default for its decayed part; other
    keys (``lr``) are kept on both parts. A group that splits in two has its ``name`` suffixed
    (see ``_part_names``); one that does not keeps it, so splitting the result again changes
    nothing. Frozen parameters are left out; empty parts are dropped.
    """
    out = []
    groups = _as_groups(params_or_groups)
    for group in groups:
        params = [p for p in group["params"] if p.requires_grad]
        options = {k: v for k, v in group.items() if k != "params"}
        decay = options.pop("weight_decay", weight_decay)
        matrices = [p for p in params if p.dim() >= 2]
        vectors = [p for p in params if p.dim() < 2]
        if matrices and vectors:
            names = _part_names(options.pop("name", None), single_group=len(groups) == 1)
            out += [
                {**options, "params": part, "weight_decay": part_decay, **({"name": name} if name else {})}
                for part, part_decay, name in ((matrices, decay, names[0]), (vectors, 0.0, names[1]))
            ]
        elif params:
            out.append({**options, "params": params, "weight_decay": decay if matrices else 0.0})
    if not out:
        raise ValueError("every parameter given to the optimizer is frozen (requires_grad=False)")
    return out


def adamw_kernel_options(params: list[torch.Tensor], fused: bool | str = "auto") -> dict:
    """``{"fused": True}`` where fused kernels exist (``"auto"``) or are forced; else torch's default.

    Torch's default is the multi-tensor ``foreach`` path on CUDA and a per-tensor loop on CPU.
    """
    if fused == "auto":
        fused = fused_supported(params)
    if fused:
        return {"fused": True}
    return {"foreach": True} if all(p.device.type == "cuda" for p in params) else {}


def build_adamw(
    params_or_groups,
    lr: float,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    fused: bool | str = "auto",
) -> torch.optim.AdamW:
    """A ``torch.optim.AdamW`` with decay only on 2-D+ tensors and fused kernels when supported.

    ``params_or_groups``: a module, an iterable of parameters or ``(name, param)`` pairs, or
    param-group dicts (each may set its own ``lr``, e.g. policy and critic in one optimizer;
    see ``actor_critic_param_groups``).
    """
    groups = adamw_param_groups(params_or_groups, weight_decay)
    params = [p for g in groups for p in g["params"]]
    return torch.optim.AdamW(
        groups, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, **adamw_kernel_options(params, fused)
    )


def actor_critic_param_groups(
    policy: nn.Module, critic: nn.Module | None, options: dict[str, dict] | None = None
) -> list[dict]:
    """Two labelled groups, ``policy`` and ``critic``, for one optimizer stepping both after one backward.

    ``options`` maps a group's name to optimizer settings of its own (e.g. ``{"critic": {"lr": 3e-4}}``);
    a group without them takes the optimizer's. ``adamw_param_groups`` splits each group into
    ``{name}/decay`` and ``{name}/no_decay``.

    Parameters the critic shares with the policy (a value head on the policy's trunk) are
    optimised once, in the policy group, at the policy's learning rate; those a critic names with
    ``parameters_in_policy()`` (its own adapter on the policy's base) are the critic's. Without a critic (a
    critic-free estimator) there is one group, and a ``critic`` entry of ``options`` has nothing to reach.
    """
    borrowed = list(getattr(critic, "parameters_in_policy", list)())
    mine = {id(p) for p in borrowed}
    policy_params = [p for p in policy.parameters() if p.requires_grad and id(p) not in mine]
    seen = {id(p) for p in policy_params}
    trained = [*borrowed, *(p for p in critic.parameters() if p.requires_grad)] if critic is not None else []
    critic_params = [p for p in trained if id(p) not in seen]
    options = dict(options or {})
    unknown = sorted(set(options) - {"policy", "critic"})
    if unknown:
        raise ConfigError(f"param_groups: unknown group(s) {unknown}; the groups are 'policy' and 'critic'")
    groups = [{**(options.get("policy") or {}), "params": policy_params, "name": "policy"}]
    if critic_params:
        groups.append({**(options.get("critic") or {}), "params": critic_params, "name": "critic"})
    return groups


def adamw_settings(factory, needed_by: str) -> dict:
    """``lr``, ``betas`` and ``eps`` of a partial ``torch.optim.AdamW`` (Hydra ``_partial_``), for optimizers
    that run AdamW themselves (``FusedBackwardAdamW``); any other optimizer is a ``ConfigError`` naming
    ``needed_by``."""
    func = getattr(factory, "func", None)
    if func is not torch.optim.AdamW:
        raise ConfigError(
            f"{needed_by} steps AdamW itself, so the optimizer must be a partial torch.optim.AdamW, got {factory!r}"
        )
    keywords = dict(factory.keywords)
    unknown = sorted(set(keywords) - {"lr", "betas", "eps"})
    if unknown:
        raise ConfigError(
            f"{needed_by}: AdamW settings {unknown} are not supported; set lr, betas, eps (weight "
            "decay is the module's weight_decay)"
        )
    return keywords
