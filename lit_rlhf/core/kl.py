"""Per-token KL estimators (Schulman, "Approximating KL divergence", 2020).

Tokens are sampled from the policy p; the reference is q. With ``log_ratio = log q - log p``:

- ``k1 = -log_ratio``                      unbiased, high variance, can be negative per token;
- ``k2 = log_ratio**2 / 2``                biased (low for close p, q), always >= 0;
- ``k3 = (exp(log_ratio) - 1) - log_ratio`` unbiased and always >= 0.

All three estimate KL(p || q) when averaged over tokens sampled from p.
"""

from __future__ import annotations

from typing import Literal

import torch

KLEstimator = Literal["k1", "k2", "k3"]
KL_ESTIMATORS: tuple[str, ...] = ("k1", "k2", "k3")


def kl_estimate(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: KLEstimator = "k1") -> torch.Tensor:
    """Per-token estimate of KL(policy || reference).

    ``logprobs``: ``[B, T]`` log p of the sampled tokens under the policy; ``ref_logprobs``:
    ``[B, T]`` log q of the same tokens under the reference. Returns ``[B, T]``, unmasked
    (padding positions hold whatever their inputs give; mask them afterwards).
    """
    if logprobs.shape != ref_logprobs.shape:
        raise ValueError(f"logprobs {tuple(logprobs.shape)} and ref_logprobs {tuple(ref_logprobs.shape)} differ")
    log_ratio = ref_logprobs - logprobs
    if estimator == "k1":
        return -log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio.square()
    if estimator == "k3":
        return torch.expm1(log_ratio) - log_ratio
    raise ValueError(f"unknown KL estimator {estimator!r}; choose one of {KL_ESTIMATORS}")
