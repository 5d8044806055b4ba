"""Direct preference optimisation: sequence log-probs, the DPO and IPO losses, implicit rewards.

With ``h = (log π(y_w) - log π_ref(y_w)) - (log π(y_l) - log π_ref(y_l))`` (the log-ratio margin):

- DPO (Rafailov et al. 2023): ``-log σ(β h)``; with label smoothing ε (conservative DPO: a share
  ε of the labels is assumed flipped) ``-(1-ε) log σ(β h) - ε log σ(-β h)``;
- IPO (Azar et al. 2023): ``(h - 1/(2β))²``, which regresses the margin to a finite target instead
  of pushing it to infinity, so it does not overfit deterministic preferences.

The implicit reward of a response is ``β (log π(y) - log π_ref(y))``.
All losses are returned per pair (``[B]``); the caller takes the mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lit_rlhf.core.logprobs import token_logprobs
from lit_rlhf.core.masked import masked_mean, masked_sum

LOSS_TYPES = ("sigmoid", "ipo")


def response_token_logprobs(
    logits: torch.Tensor, input_ids: torch.Tensor, response_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of each next token and the mask of the ones that are response tokens.

    ``logits``: ``[B, T, V]`` from a causal LM over ``input_ids`` ``[B, T]``; ``response_mask``:
    ``[B, T]``, 1 on response tokens (not prompt, not padding). Position t predicts token t+1,
    so both outputs are ``[B, T-1]``.
    """
    logps = token_logprobs(logits[:, :-1], input_ids[:, 1:])
    return logps, response_mask[:, 1:]


def sequence_logprobs(token_logps: torch.Tensor, mask: torch.Tensor, average: bool = False) -> torch.Tensor:
    """``log π(y|x)`` per row: the sum of token log-probs over ``mask`` (``[B, T]`` -> ``[B]``).

    ``average=True`` divides by the number of tokens (length-normalised log-prob, used by some
    IPO implementations).
    """
    return masked_mean(token_logps, mask, dim=1) if average else masked_sum(token_logps, mask, dim=1)


def logratio_margin(
    policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor, ref_rejected: torch.Tensor
) -> torch.Tensor:
    """``h = (π_w - ref_w) - (π_l - ref_l)`` from sequence log-probs, all ``[B]``."""
    return (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Per-pair DPO loss ``[B]`` (see the module docstring); inputs are sequence log-probs ``[B]``."""
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
    logits = beta * logratio_margin(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    # logsigmoid is the stable form of log(1 / (1 + exp(-x))) for large |x|.
    return -(1 - label_smoothing) * F.logsigmoid(logits) - label_smoothing * F.logsigmoid(-logits)


def ipo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.1,
) -> torch.Tensor:
    """Per-pair IPO loss ``(h - 1/(2β))²`` ``[B]``; inputs are sequence log-probs ``[B]``."""
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    margin = logratio_margin(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    return (margin - 1 / (2 * beta)) ** 2


def preference_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.1,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """``loss_type="sigmoid"`` (DPO) or ``"ipo"``; per pair ``[B]``."""
    if loss_type == "sigmoid":
        return dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta, label_smoothing)
    if loss_type == "ipo":
        if label_smoothing:
            raise ValueError("label_smoothing applies to the sigmoid (DPO) loss only")
        return ipo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)
    raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")


def implicit_rewards(policy_logps: torch.Tensor, ref_logps: torch.Tensor, beta: float) -> torch.Tensor:
    """``β (log π(y) - log π_ref(y))`` per response ``[B]``: the reward DPO's policy implicitly optimises."""
    return beta * (policy_logps - ref_logps)
