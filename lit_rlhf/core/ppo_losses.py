"""PPO's clipped surrogate objectives (Schulman et al., 2017), averaged over valid tokens.

Every input is ``[B, T]`` and response-aligned; ``mask`` is 1 on response tokens. Losses are
token means over the whole batch (each token weighs the same, whatever its row length).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from lit_rlhf.core.masked import masked_aggregate, masked_mean


class PolicyLoss(NamedTuple):
    loss: torch.Tensor  # scalar, to minimise
    clip_fraction: torch.Tensor  # share of tokens where the clipped term was the active one
    approx_kl: torch.Tensor  # k3 estimate of KL(π_old || π_θ) on the sampled tokens
    ratio_mean: torch.Tensor  # mean of π_θ / π_old


class ValueLoss(NamedTuple):
    loss: torch.Tensor  # scalar, to minimise
    clip_fraction: torch.Tensor  # share of tokens where the clipped prediction was the active one


def clipped_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float = 0.2,
    aggregation: str = "token",
) -> PolicyLoss:
    """``L = mean_t max(-A_t ρ_t, -A_t clip(ρ_t, 1-ε, 1+ε))`` with ``ρ_t = exp(logp_t - logp_old_t)``.

    ``logprobs`` carries gradient; ``old_logprobs`` and ``advantages`` are treated as constants. The mean is
    over all valid tokens (``aggregation="token"``) or per answer first (``"sequence"``, see ``masked_aggregate``).
    """
    dtype = torch.float64 if logprobs.dtype == torch.float64 else torch.float32
    log_ratio = logprobs.to(dtype) - old_logprobs.detach().to(dtype)
    ratio = torch.exp(log_ratio)
    adv = advantages.detach().to(ratio.dtype)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = masked_aggregate(torch.maximum(unclipped, clipped), mask, aggregation)
    with torch.no_grad():
        clip_fraction = masked_mean((clipped > unclipped).to(ratio.dtype), mask)
        approx_kl = masked_mean(torch.expm1(log_ratio) - log_ratio, mask)
        ratio_mean = masked_mean(ratio, mask)
    return PolicyLoss(loss, clip_fraction, approx_kl, ratio_mean)


def clipped_value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip_range: float = 0.2
) -> ValueLoss:
    """``L = ½ mean_t max((V_t - R_t)², (V_old_t + clip(V_t - V_old_t, ±ε) - R_t)²)``.

    Clipping keeps the value head within ``ε`` of its rollout-time prediction per update,
    as the policy ratio is kept within ``1 ± ε``.
    """
    dtype = torch.float64 if values.dtype == torch.float64 else torch.float32
    v, v_old, ret = values.to(dtype), old_values.detach().to(dtype), returns.detach().to(dtype)
    v_clipped = v_old + torch.clamp(v - v_old, -clip_range, clip_range)
    unclipped = (v - ret).square()
    clipped = (v_clipped - ret).square()
    loss = 0.5 * masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        clip_fraction = masked_mean((clipped > unclipped).to(dtype), mask)
    return ValueLoss(loss, clip_fraction)
