"""Per-token log-probabilities and entropies from logits, without a full ``log_softmax`` copy.

``log p(y_t) = z_t[y_t] - logsumexp(z_t)``: a gather and a logsumexp give the same number
as ``log_softmax(z).gather(y)`` but never hold a second ``[B, T, V]`` tensor. Rows are
processed in chunks so that upcasting bfloat16 logits to float32 costs one chunk, not the batch.
"""

from __future__ import annotations

import torch


def _row_chunks(n_rows: int, chunk_rows: int | None):
    step = n_rows if not chunk_rows else max(1, chunk_rows)
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def token_logprobs(
    logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0, chunk_rows: int | None = 1
) -> torch.Tensor:
    """Log-probability of each label under the softmax of its logits.

    ``logits``: ``[B, T, V]`` where ``logits[:, t]`` scores ``labels[:, t]`` (the caller shifts:
    for a causal LM pass ``logits[:, :-1]`` and ``input_ids[:, 1:]``). ``labels``: ``[B, T]``
    int. Returns ``[B, T]`` float32 (float64 if the logits are float64). ``temperature``
    divides the logits, matching the distribution responses were sampled from.
    ``chunk_rows`` bounds the float32 temporaries to that many batch rows (None: all at once).
    Padding labels must still be valid ids (e.g. the pad id); mask the result afterwards.
    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} disagree on [B, T]")
    out_dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    out = torch.empty(labels.shape, dtype=out_dtype, device=logits.device)
    for rows in _row_chunks(logits.size(0), chunk_rows):
        z = logits[rows].to(out_dtype)
        if temperature != 1.0:
            z = z / temperature
        picked = z.gather(-1, labels[rows].unsqueeze(-1)).squeeze(-1)
        out[rows] = picked - torch.logsumexp(z, dim=-1)
    return out


def entropy_from_logits(logits: torch.Tensor, temperature: float = 1.0, chunk_rows: int | None = 1) -> torch.Tensor:
    """Entropy of the softmax at each position: ``H = logsumexp(z) - sum_v softmax(z)_v z_v``.

    ``logits``: ``[B, T, V]`` -> ``[B, T]`` float32 (float64 for float64 input). The identity
    avoids materialising ``log_softmax`` next to ``softmax``.
    """
    out_dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    out = torch.empty(logits.shape[:-1], dtype=out_dtype, device=logits.device)
    for rows in _row_chunks(logits.size(0), chunk_rows):
        z = logits[rows].to(out_dtype)
        if temperature != 1.0:
            z = z / temperature
        probs = torch.softmax(z, dim=-1)
        out[rows] = torch.logsumexp(z, dim=-1) - (probs * z).sum(-1)
    return out
