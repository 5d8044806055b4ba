"""Next-token loss on response tokens only."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def response_labels(input_ids: torch.Tensor, prompt_mask: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Labels ``[B, T]``: the input ids, with prompt and padding positions set to ``IGNORE_INDEX``."""
    labels = input_ids.clone()
    labels[prompt_mask.bool() | ~attention_mask.bool()] = IGNORE_INDEX
    return labels


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token negative log-likelihood and the number of tokens it covers.

    ``logits`` is ``[B, T, V]`` and ``labels`` ``[B, T]``; position t predicts label t+1, so
    the last logit and the first label are dropped. Returns ``(nll_sum, n_tokens)``; the
    mean loss is their ratio. Summing first lets callers average over tokens across
    micro-batches or ranks instead of averaging averages.
    """
    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:]
    nll = F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)),
        shift_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    return nll, (shift_labels != IGNORE_INDEX).sum()


def masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean NLL over labelled tokens (0 when there are none, instead of NaN)."""
    nll, count = token_nll(logits, labels)
    return nll / count.clamp(min=1)
