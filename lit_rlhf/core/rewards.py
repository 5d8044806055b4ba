"""Per-token PPO rewards: the sequence score at the last response token, a KL penalty on every token.

Tensors are response-aligned: position t of ``logprobs``/``mask`` is the t-th generated token.
``mask`` is 1 on real response tokens and 0 on padding; rows may have different lengths and the
mask need not be a prefix (the "last token" is the last position whose mask is set).
"""

from __future__ import annotations

import torch

from lit_rlhf.core.kl import KLEstimator, kl_estimate


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last set position in each row of ``mask`` ``[B, T]`` -> ``[B]`` (long).

    Raises when a row has no tokens: such a sequence has nowhere to put its score.
    """
    present = mask.bool()
    if not present.any(dim=1).all():
        empty = (~present.any(dim=1)).nonzero().flatten().tolist()
        raise ValueError(f"rows {empty} have an empty response mask; every response needs at least one token")
    positions = torch.arange(mask.size(1), device=mask.device).expand_as(present)
    return torch.where(present, positions, -1).amax(dim=1)


def kl_penalized_rewards(
    scores: torch.Tensor,
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    mask: torch.Tensor,
    kl_coef: float,
    estimator: KLEstimator = "k1",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``r_t = -β · KL_t`` on every response token, plus the sequence score on the last one.

    ``scores``: ``[B]`` reward-model score per sequence (already baselined/normalised if wanted).
    ``logprobs``, ``ref_logprobs``, ``mask``: ``[B, T]``. Returns ``(rewards, kl)``, both
    ``[B, T]`` in the dtype of ``logprobs`` and 0 on padding; ``kl`` is the per-token estimate
    (sum it over t for the per-sequence KL the adaptive controller tracks).
    """
    if scores.shape != (logprobs.size(0),):
        raise ValueError(f"scores must be [B]={logprobs.size(0)}, got {tuple(scores.shape)}")
    if mask.shape != logprobs.shape:
        raise ValueError(f"mask {tuple(mask.shape)} must match logprobs {tuple(logprobs.shape)}")
    valid = mask.to(logprobs.dtype)
    kl = kl_estimate(logprobs, ref_logprobs, estimator) * valid
    rewards = -kl_coef * kl
    last = last_token_index(mask)
    rows = torch.arange(logprobs.size(0), device=logprobs.device)
    rewards[rows, last] += scores.to(rewards.dtype)
    return rewards, kl


def reference_baseline_reward(scores: torch.Tensor, ref_scores: torch.Tensor) -> torch.Tensor:
    """``r(x, y) - r(x, y_ref)``: the reward relative to the SFT model's own answer to the same prompt.

    ``scores``, ``ref_scores``: ``[B]``, row i of both scoring the same prompt. Removes the
    per-prompt offset that a pairwise-trained reward model leaves free (Hou et al., 2024).
    """
    if scores.shape != ref_scores.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and ref_scores {tuple(ref_scores.shape)} differ")
    return scores - ref_scores


def prompt_reward_spread(scores: torch.Tensor, baseline: torch.Tensor | None = None) -> dict[str, float]:
    """How rewards vary across prompts and within a prompt.

    ``scores``: ``[P, K]``, the rewards of K answers sampled for each of P prompts; ``baseline``: ``[P]``,
    subtracted from its prompt's row (e.g. r(x, y_ref)). ``between`` is the variance over prompts of
    each prompt's mean reward: the part a per-prompt baseline can remove. ``within`` is the mean over
    prompts of the variance over answers: what PPO learns from, untouched by a per-prompt baseline.
    Population variances.
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be [P, K], got {tuple(scores.shape)}")
    means = scores.mean(dim=1)
    if baseline is not None:
        if baseline.shape != means.shape:
            raise ValueError(f"baseline must be [P]={means.numel()}, got {tuple(baseline.shape)}")
        means = means - baseline
    return {"between": float(means.var(unbiased=False)), "within": float(scores.var(dim=1, unbiased=False).mean())}
