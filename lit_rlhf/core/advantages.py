"""Generalised advantage estimation (Schulman et al., 2016) over masked, variable-length responses.

``δ_t = r_t + γ V_{t+1} - V_t`` and ``A_t = δ_t + γλ A_{t+1}``, where "t+1" is the next *valid*
token of the same row: padding positions are skipped (they carry the running values through),
and after a row's last valid token the episode ends (``V = 0``, ``A = 0``). Returns are
``A_t + V_t``, the regression target of the value head.
"""

from __future__ import annotations

import torch

from lit_rlhf.core.masked import masked_whiten


def gae_advantages(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns, both ``[B, T]``, zero on padding.

    ``rewards``: ``[B, T]`` per-token rewards (e.g. from ``kl_penalized_rewards``); ``values``:
    ``[B, T]`` value-head predictions at the same tokens; ``mask``: ``[B, T]`` 1 on response
    tokens. Computed without gradient (they are targets), in at least float32.
    """
    if not rewards.shape == values.shape == mask.shape:
        raise ValueError(
            f"rewards {tuple(rewards.shape)}, values {tuple(values.shape)} and mask "
            f"{tuple(mask.shape)} must have one shape [B, T]"
        )
    dtype = torch.float64 if rewards.dtype == torch.float64 else torch.float32
    with torch.no_grad():
        r, v, m = rewards.to(dtype), values.to(dtype), mask.bool()
        advantages = torch.zeros_like(r)
        next_value = torch.zeros_like(r[:, 0])
        next_advantage = torch.zeros_like(r[:, 0])
        for t in reversed(range(r.size(1))):
            delta = r[:, t] + gamma * next_value - v[:, t]
            advantage = delta + gamma * lam * next_advantage
            valid = m[:, t]
            advantages[:, t] = torch.where(valid, advantage, 0.0)
            next_value = torch.where(valid, v[:, t], next_value)
            next_advantage = torch.where(valid, advantage, next_advantage)
        returns = (advantages + v) * m.to(dtype)
    return advantages, returns


def whiten_advantages(advantages: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """Advantages normalised to zero mean and unit variance over the batch's valid tokens."""
    return masked_whiten(advantages, mask, shift_mean=shift_mean)
