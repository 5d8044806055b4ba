"""Reward-model math: the pairwise Bradley-Terry loss and the Gaussian prior on scores.

A pairwise loss only sees score differences, so adding a constant to every score changes
nothing and the scores are free to drift during training. ChatGLM-RLHF adds a zero-mean
Gaussian prior on the scores -- an L2 penalty ``coef * (r_w**2 + r_l**2)`` -- which pins
the scale and the zero point without changing which response ranks higher.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry_loss(
    chosen: torch.Tensor, rejected: torch.Tensor, margin: torch.Tensor | float | None = None
) -> torch.Tensor:
    """Per-pair ``-log sigmoid(r_w - r_l - margin)``.

    ``chosen`` and ``rejected`` are scores ``[B]``; ``margin`` is a float or ``[B]`` (e.g. how
    strongly the annotators preferred the chosen side). Returns ``[B]``. ``logsigmoid`` is
    used instead of ``log(sigmoid(.))``, which underflows to ``-inf`` for large negative gaps.
    """
    gap = chosen.float() - rejected.float()
    if margin is not None:
        gap = gap - torch.as_tensor(margin, dtype=gap.dtype, device=gap.device)
    return -F.logsigmoid(gap)


def score_prior_penalty(chosen: torch.Tensor, rejected: torch.Tensor, coef: float) -> torch.Tensor:
    """Per-pair zero-mean Gaussian prior on the scores: ``coef * (r_w**2 + r_l**2)``, shape ``[B]``."""
    if coef < 0:
        raise ValueError(f"the score prior coefficient must be >= 0, got {coef}")
    return coef * (chosen.float().pow(2) + rejected.float().pow(2))


def reward_loss(
    chosen: torch.Tensor, rejected: torch.Tensor, margin: torch.Tensor | float | None = None, prior_coef: float = 0.0
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Mean over pairs of Bradley-Terry loss plus the score prior.

    Returns ``(loss, parts)`` where ``parts`` holds the detached scalars ``bt_loss`` and
    ``prior_loss`` (their sum is ``loss``) for logging.
    """
    if chosen.shape != rejected.shape or chosen.dim() != 1:
        raise ValueError(f"chosen and rejected must both be [B], got {tuple(chosen.shape)} and {tuple(rejected.shape)}")
    bt = bradley_terry_loss(chosen, rejected, margin).mean()
    prior = score_prior_penalty(chosen, rejected, prior_coef).mean()
    return bt + prior, {"bt_loss": bt.detach(), "prior_loss": prior.detach()}


def pairwise_correct(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """``[B]`` float: 1 where the chosen response scores higher, 0.5 on an exact tie, 0 otherwise.

    A tie counts half, so a model that scores everything the same gets 50%, not 0% or 100%.
    """
    return (chosen > rejected).float() + 0.5 * (chosen == rejected).float()
