"""Critic-free advantage estimators: a baseline from other samples instead of a learned value head.

Sequence-level estimators take one score per sampled answer, ``scores`` ``[B]``, laid out as ``B / k`` groups of
``k`` consecutive answers to the same prompt (``[p0 a0, p0 a1, ..., p1 a0, ...]``), and return one advantage per
answer ``[B]``; :func:`per_token` spreads it over the answer's tokens. What each original paper does:

- GRPO (Shao et al., 2024, DeepSeekMath): ``(r - mean_group) / std_group``; the group's std with Bessel's
  correction, as TRL's ``GRPOTrainer`` takes it; ``scale=False`` drops the division (Liu et al., 2025,
  "Dr. GRPO", who show it biases towards easy and hard prompts).
- RLOO (Ahmadian et al., 2024): ``r_i - mean_{j != i} r_j``, the leave-one-out mean of the other ``k - 1``.
- ReMax (Li et al., 2023): ``r - r(greedy answer of the current policy)``, one extra greedy answer per prompt.
- The ChatGLM-RLHF reference baseline: ``r - r(answer of the SFT model)``, fixed before training
  (``lit_rlhf.core.rewards.reference_baseline_reward``); it composes with any of these.

REINFORCE++ (Hu, 2025) is token-level: per-token rewards (the score on the last token, ``-β KL`` on every
token), returns summed to the end of the answer, then whitened over the whole batch's tokens
(:func:`reinforce_pp_advantages`).
"""

from __future__ import annotations

import torch

from lit_rlhf.core.advantages import gae_advantages
from lit_rlhf.core.masked import masked_whiten


def grouped(scores: torch.Tensor, k: int) -> torch.Tensor:
    """``[B]`` -> ``[B / k, k]``, one row per prompt; ``ValueError`` unless ``k >= 2`` divides ``B``."""
    if scores.dim() != 1:
        raise ValueError(f"scores must be [B], got shape {tuple(scores.shape)}")
    if k < 2 or scores.numel() % k:
        raise ValueError(
            f"a group baseline needs k >= 2 answers per prompt dividing the batch; got k={k}, B={scores.numel()}"
        )
    return scores.reshape(-1, k)


def grpo_advantages(scores: torch.Tensor, k: int, scale: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """``(r - group mean) / (group std + eps)`` per answer, ``[B]``; without ``scale`` only the mean is taken off.

    A group whose answers all score alike gets advantage 0 (it carries no signal).
    """
    groups = grouped(scores, k)
    centred = groups - groups.mean(dim=1, keepdim=True)
    if scale:
        centred = centred / (groups.std(dim=1, keepdim=True) + eps)
    return centred.reshape(-1)


def rloo_advantages(scores: torch.Tensor, k: int) -> torch.Tensor:
    """``r_i - mean of the other k - 1 answers' scores`` per answer, ``[B]`` (equal to ``k/(k-1) (r_i - mean)``)."""
    groups = grouped(scores, k)
    others = (groups.sum(dim=1, keepdim=True) - groups) / (k - 1)
    return (groups - others).reshape(-1)


def remax_advantages(scores: torch.Tensor, greedy_scores: torch.Tensor) -> torch.Tensor:
    """``r - r_greedy`` per answer, ``[B]``: ``greedy_scores`` ``[B]`` is the score of the current policy's greedy
    answer to the same prompt (repeated for each sampled answer of that prompt)."""
    if scores.shape != greedy_scores.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and greedy_scores {tuple(greedy_scores.shape)} differ")
    return scores - greedy_scores


def per_token(advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A sequence-level advantage ``[B]`` on every response token ``[B, T]`` (0 on padding)."""
    if advantages.shape != mask.shape[:1]:
        raise ValueError(f"advantages {tuple(advantages.shape)} do not match mask {tuple(mask.shape)}")
    return advantages[:, None].to(torch.float32) * mask.to(torch.float32)


def returns_to_go(rewards: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """``G_t = r_t + γ G_{t+1}`` over each row's valid tokens, ``[B, T]``, 0 on padding (padding is skipped):
    GAE with no critic (V = 0) and λ = 1."""
    if rewards.shape != mask.shape:
        raise ValueError(f"rewards {tuple(rewards.shape)} and mask {tuple(mask.shape)} differ")
    return gae_advantages(rewards, torch.zeros_like(rewards), mask, gamma, lam=1.0)[0]


def reinforce_pp_advantages(rewards: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """REINFORCE++: returns-to-go of the per-token rewards ``[B, T]``, whitened over all valid tokens of the batch."""
    return masked_whiten(returns_to_go(rewards, mask, gamma), mask)
