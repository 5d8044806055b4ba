"""Statistics over the valid tokens of a padded batch.

Every function takes ``values`` and a ``mask`` of the same shape (``[B, T]`` in practice);
``mask`` is 1 (or True) on tokens that count and 0 on padding. Reductions run in at least
float32 so bfloat16 inputs do not lose the sum of thousands of tokens.
"""

from __future__ import annotations

import torch


def _acc_dtype(x: torch.Tensor) -> torch.dtype:
    """float64 stays float64; everything narrower accumulates in float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def masked_sum(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Sum of ``values`` where ``mask`` is set; over all elements, or along ``dim``."""
    weighted = values.to(_acc_dtype(values)) * mask.to(_acc_dtype(values))
    return weighted.sum() if dim is None else weighted.sum(dim)


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean over masked elements; 0 (not NaN) where the mask is empty, so an empty batch adds no loss.

    ``values``, ``mask``: ``[B, T]``. Returns a scalar, or ``[B]`` with ``dim=1``.
    """
    count = masked_sum(torch.ones_like(values), mask, dim)
    return masked_sum(values, mask, dim) / count.clamp(min=1)


def masked_aggregate(values: torch.Tensor, mask: torch.Tensor, how: str = "token") -> torch.Tensor:
    """A loss ``[B, T]`` -> scalar: ``token`` weighs every valid token alike (a long answer counts more);
    ``sequence`` takes each row's token mean, then the mean over rows (every answer counts alike)."""
    if how == "token":
        return masked_mean(values, mask)
    if how == "sequence":
        m = mask.to(values.dtype)
        return ((values * m).sum(-1) / m.sum(-1).clamp(min=1)).mean()
    raise ValueError(f"unknown aggregation {how!r}; choose token or sequence")


def masked_var(values: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of the masked elements (a scalar).

    With ``unbiased`` the Bessel factor n/(n-1) is applied when n > 1; with one element the
    variance is 0. An empty mask raises: whitening nothing is a caller bug, not a number.
    """
    count = masked_sum(torch.ones_like(values), mask)
    if count.item() == 0:
        raise ValueError("masked_var: the mask selects no elements")
    mean = masked_sum(values, mask) / count
    var = masked_sum((values.to(mean.dtype) - mean) ** 2, mask) / count
    if unbiased and count.item() > 1:
        var = var * count / (count - 1)
    return var


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """``(x - mean) / sqrt(var + eps)`` using masked statistics; padding positions become 0.

    ``values``, ``mask``: ``[B, T]`` -> ``[B, T]`` in the dtype of ``values``. With
    ``shift_mean=False`` the values are only scaled, ``x / sqrt(var + eps)`` (``var`` still taken
    around the mean): each value keeps its sign, for rewards whose sign carries meaning. This is
    the convention of ``lit_rlhf.core.reward_normalization``; TRL's ``masked_whiten`` instead adds the
    mean back after whitening, which can flip signs.
    """
    var = masked_var(values, mask)
    x = values.to(var.dtype)
    whitened = ((x - masked_mean(values, mask)) if shift_mean else x) * torch.rsqrt(var + eps)
    return (whitened * mask.to(whitened.dtype)).to(values.dtype)
