"""Next-token loss on response tokens only, and the drift of next-token distributions from a reference's."""

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


def masked_reference_kl(logits: torch.Tensor, ref_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over labelled positions of KL(p_ref ‖ p) between the reference's and the model's next-token
    distributions (position t predicts label t+1, as in :func:`token_nll`; the labels' values are not used).

    Cross-entropy to the reference's whole distribution less its entropy: 0, with a gradient of 0, while the
    model equals the reference, so as a regulariser it resists drift on these contexts without fitting their
    labels any further (which cross-entropy on flawed labels keeps doing). 0 when no position is labelled.
    """
    mask = labels[:, 1:] != IGNORE_INDEX
    # only the labelled positions: [N, V] instead of [B, T, V] (the vocabulary may be large)
    log_p = F.log_softmax(logits[:, :-1][mask].float(), dim=-1)
    log_ref = F.log_softmax(ref_logits[:, :-1][mask].float(), dim=-1)
    kl = (log_ref.exp() * (log_ref - log_p)).sum(-1)
    return kl.sum() / mask.sum().clamp(min=1)
