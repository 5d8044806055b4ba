"""Sequence-score normalisers, to compare against the reference baseline: none, running, batch.

Each is called on a ``[B]`` tensor of scores and returns ``[B]``; each has ``state_dict`` /
``load_state_dict`` (empty for the stateless ones) so checkpointing code treats them alike.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

AllReduceSum = Callable[[torch.Tensor], torch.Tensor]
NORMALIZER_MODES = ("none", "running", "batch")


class IdentityNormalizer:
    """Scores pass through unchanged."""

    def __call__(self, scores: torch.Tensor) -> torch.Tensor:
        return scores

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class BatchWhitenNormalizer:
    """``(s - mean_batch) / (std_batch + eps)``; no memory between batches."""

    def __init__(self, eps: float = 1e-8, shift_mean: bool = True):
        self.eps, self.shift_mean = eps, shift_mean

    def __call__(self, scores: torch.Tensor) -> torch.Tensor:
        x = scores.double()
        std = x.std(unbiased=True) if x.numel() > 1 else torch.zeros((), dtype=x.dtype, device=x.device)
        out = (x - x.mean() if self.shift_mean else x) / (std + self.eps)
        return out.to(scores.dtype)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class RunningMeanStdNormalizer:
    """Normalise by the mean and std of every score seen so far (this batch included).

    Statistics are merged batch by batch with the parallel Welford update (Chan et al.), in
    float64 python floats, so a checkpoint restores them exactly. Under data parallelism, pass
    ``all_reduce_sum``: a function that returns the element-wise sum of a tensor over ranks
    (e.g. Lightning's ``lambda t: strategy.reduce(t, reduce_op="sum")``); every rank then
    keeps identical statistics. It is injected so this module never imports torch.distributed.
    """

    def __init__(self, eps: float = 1e-8, shift_mean: bool = True, all_reduce_sum: AllReduceSum | None = None):
        self.eps, self.shift_mean, self.all_reduce_sum = eps, shift_mean, all_reduce_sum
        self.count, self.mean, self.m2 = 0.0, 0.0, 0.0

    @property
    def std(self) -> float:
        return (self.m2 / (self.count - 1)) ** 0.5 if self.count > 1 else 0.0

    def update(self, scores: torch.Tensor) -> None:
        """Fold a batch ``[B]`` (all ranks' batches, with ``all_reduce_sum``) into the statistics."""
        # Moments are taken around the current running mean (the same on every rank), which keeps
        # the sum-of-squares form accurate in float64 and needs a single all-reduce.
        x = scores.detach().double().flatten() - self.mean
        count = torch.tensor(float(x.numel()), dtype=x.dtype, device=x.device)
        moments = torch.stack([count, x.sum(), x.square().sum()])
        if self.all_reduce_sum is not None:
            moments = self.all_reduce_sum(moments)
        n, shifted_sum, shifted_sq = (float(v) for v in moments.tolist())
        if n == 0:
            return
        shifted_mean = shifted_sum / n
        batch_m2 = max(shifted_sq - n * shifted_mean * shifted_mean, 0.0)
        delta = shifted_mean  # batch mean minus running mean
        merged = self.count + n
        self.mean += delta * n / merged
        self.m2 += batch_m2 + delta * delta * self.count * n / merged
        self.count = merged

    def __call__(self, scores: torch.Tensor) -> torch.Tensor:
        self.update(scores)
        x = scores.double()
        out = (x - self.mean if self.shift_mean else x) / (self.std + self.eps)
        return out.to(scores.dtype)

    def state_dict(self) -> dict:
        return {"count": self.count, "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, state: dict) -> None:
        self.count, self.mean, self.m2 = float(state["count"]), float(state["mean"]), float(state["m2"])


def build_reward_normalizer(
    mode: str = "none", eps: float = 1e-8, shift_mean: bool = True, all_reduce_sum: AllReduceSum | None = None
):
    """``mode`` is one of ``none``, ``running`` (Welford mean/std) or ``batch`` (whitening per batch)."""
    if mode == "none":
        return IdentityNormalizer()
    if mode == "batch":
        return BatchWhitenNormalizer(eps, shift_mean)
    if mode == "running":
        return RunningMeanStdNormalizer(eps, shift_mean, all_reduce_sum)
    raise ValueError(f"unknown reward normalisation {mode!r}; choose one of {NORMALIZER_MODES}")
