import math

import pytest
import torch

from lit_rlhf.core.kl import kl_estimate


def test_estimators_by_hand():
    # log p = log 1/2, log q = log 1/4 at the sampled token: log_ratio = log q - log p = -ln 2
    logp = torch.tensor([[math.log(0.5)]])
    logq = torch.tensor([[math.log(0.25)]])
    ln2 = math.log(2.0)
    assert kl_estimate(logp, logq, "k1").item() == pytest.approx(ln2)
    assert kl_estimate(logp, logq, "k2").item() == pytest.approx(0.5 * ln2**2)
    assert kl_estimate(logp, logq, "k3").item() == pytest.approx((0.5 - 1) + ln2)


def test_identical_policies_give_zero():
    x = torch.randn(2, 5)
    for estimator in ("k1", "k2", "k3"):
        assert torch.equal(kl_estimate(x, x, estimator), torch.zeros(2, 5))


def test_k1_and_k3_are_unbiased_for_exact_kl():
    # Sample tokens from p over 3 symbols and compare the estimators' means to the exact KL(p || q).
    p = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)
    q = torch.tensor([0.3, 0.3, 0.4], dtype=torch.float64)
    exact = (p * (p / q).log()).sum().item()
    # Expectation under p is exact when each symbol is weighted by its probability.
    logp, logq = p.log().unsqueeze(0), q.log().unsqueeze(0)
    for estimator in ("k1", "k3"):
        expectation = (p * kl_estimate(logp, logq, estimator)[0]).sum().item()
        assert expectation == pytest.approx(exact, rel=1e-12)
    assert (kl_estimate(logp, logq, "k3") >= 0).all() and (kl_estimate(logp, logq, "k2") >= 0).all()
    assert (kl_estimate(logp, logq, "k1") < 0).any()  # k1 can be negative per token


def test_unknown_estimator():
    with pytest.raises(ValueError, match="unknown KL estimator"):
        kl_estimate(torch.zeros(1, 1), torch.zeros(1, 1), "k4")
