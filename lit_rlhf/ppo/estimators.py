"""Which advantage each token gets, for the estimator a ``PPOConfig`` names (the math is in ``lit_rlhf.core``)."""

from __future__ import annotations

import torch

from lit_rlhf.core.advantages import gae_advantages, whiten_advantages
from lit_rlhf.core.critic_free import (
    grpo_advantages,
    per_token,
    reinforce_pp_advantages,
    remax_advantages,
    rloo_advantages,
)
from lit_rlhf.ppo.config import PPOConfig


def rollout_advantages(
    config: PPOConfig,
    rewards: torch.Tensor,
    mask: torch.Tensor,
    values: torch.Tensor | None = None,
    greedy_scores: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(advantages [B, T], returns [B, T] or None)`` for one rollout.

    ``rewards`` ``[B, T]``: the sequence score on each answer's last token plus the per-token KL penalty when
    ``kl_penalty="reward"`` (``kl_penalized_rewards``); rows come in groups of ``samples_per_prompt`` answers
    to one prompt. ``values`` ``[B, T]``: the critic's, for gae (whose returns are the critic's targets).
    ``greedy_scores`` ``[B]``: for remax, the score of the current policy's greedy answer to each row's prompt.
    Sequence-level estimators (grpo, rloo, remax) see each answer's summed reward: score minus β·KL.
    """
    c = config
    name = c.advantage_estimator
    if name == "gae":
        if values is None:
            raise ValueError("gae needs the critic's values")
        advantages, returns = gae_advantages(rewards, values, mask, c.gamma, c.lam)
        return (whiten_advantages(advantages, mask) if c.whiten_advantages else advantages), returns
    if name == "reinforce_pp":
        return reinforce_pp_advantages(rewards, mask, c.gamma), None
    totals = (rewards.float() * mask).sum(-1)
    if name == "grpo":
        sequence = grpo_advantages(totals, c.samples_per_prompt, scale=c.grpo_scale)
    elif name == "rloo":
        sequence = rloo_advantages(totals, c.samples_per_prompt)
    elif name == "remax":
        if greedy_scores is None:
            raise ValueError("remax needs the greedy answers' scores")
        sequence = remax_advantages(totals, greedy_scores.to(totals.dtype))
    else:
        raise ValueError(f"unknown advantage estimator {name!r}")
    return per_token(sequence, mask), None


def baselined_returns(
    config: PPOConfig,
    rewards: torch.Tensor,
    mask: torch.Tensor,
    values: torch.Tensor | None = None,
    greedy_scores: torch.Tensor | None = None,
) -> torch.Tensor:
    """``[B]``: each answer's summed reward minus the baseline its estimator compares it with, before any
    scaling or whitening; its spread over the batch is the variance the estimator leaves in its signal.

    The baselines: the critic's value of the prompt at the first answer token (gae), the group's mean (grpo),
    the other k - 1 answers' mean (rloo), the greedy answer's score (remax), the batch's mean (reinforce_pp).
    """
    c = config
    totals = (rewards.float() * mask).sum(-1)
    name = c.advantage_estimator
    if name == "gae":
        first = mask.to(torch.long).argmax(-1, keepdim=True)
        return totals - values.float().gather(1, first).squeeze(1)
    if name == "grpo":
        return grpo_advantages(totals, c.samples_per_prompt, scale=False)
    if name == "rloo":
        return rloo_advantages(totals, c.samples_per_prompt)
    if name == "remax":
        return remax_advantages(totals, greedy_scores.to(totals.dtype))
    return totals - totals.mean()
