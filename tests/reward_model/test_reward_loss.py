import math

import pytest
import torch

from lit_rlhf.core.reward_loss import bradley_terry_loss, pairwise_correct, reward_loss, score_prior_penalty


def test_bradley_terry_by_hand():
    # gap 0 -> -log(1/2) = ln 2; gap ln 3 -> sigmoid = 3/4 -> -log(3/4).
    chosen = torch.tensor([1.0, math.log(3.0)])
    rejected = torch.tensor([1.0, 0.0])
    expected = torch.tensor([math.log(2.0), -math.log(0.75)])
    torch.testing.assert_close(bradley_terry_loss(chosen, rejected), expected)


def test_margin_is_subtracted_from_the_gap():
    # r_w - r_l = 2, margin 2 -> gap 0 -> ln 2; a per-pair margin tensor works the same way.
    assert bradley_terry_loss(torch.tensor([3.0]), torch.tensor([1.0]), 2.0).item() == pytest.approx(math.log(2.0))
    per_pair = bradley_terry_loss(torch.tensor([3.0, 3.0]), torch.tensor([1.0, 1.0]), torch.tensor([2.0, 0.0]))
    torch.testing.assert_close(per_pair, torch.tensor([math.log(2.0), math.log1p(math.exp(-2.0))]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_bradley_terry_matches_a_plain_reference_and_stays_finite(dtype):
    torch.manual_seed(0)
    chosen, rejected = torch.randn(64, dtype=dtype) * 3, torch.randn(64, dtype=dtype) * 3
    reference = -torch.log(torch.sigmoid(chosen.double() - rejected.double()))
    torch.testing.assert_close(bradley_terry_loss(chosen, rejected).double(), reference, rtol=1e-5, atol=1e-5)
    huge = bradley_terry_loss(torch.tensor([-200.0], dtype=dtype), torch.tensor([200.0], dtype=dtype))
    assert torch.isfinite(huge).all() and huge.item() == pytest.approx(400.0, rel=1e-2)


def test_score_prior_by_hand():
    # lambda 0.1 * (2^2 + (-1)^2) = 0.5 ; lambda 0.1 * (0 + 3^2) = 0.9
    penalty = score_prior_penalty(torch.tensor([2.0, 0.0]), torch.tensor([-1.0, 3.0]), 0.1)
    torch.testing.assert_close(penalty, torch.tensor([0.5, 0.9]))
    with pytest.raises(ValueError, match=">= 0"):
        score_prior_penalty(torch.zeros(1), torch.zeros(1), -1.0)


def test_reward_loss_is_the_mean_of_both_terms():
    chosen, rejected = torch.tensor([1.0, math.log(3.0)]), torch.tensor([1.0, 0.0])
    loss, parts = reward_loss(chosen, rejected, prior_coef=0.1)
    bt = (math.log(2.0) - math.log(0.75)) / 2
    prior = 0.1 * ((1 + 1) + (math.log(3.0) ** 2 + 0)) / 2
    assert parts["bt_loss"].item() == pytest.approx(bt, rel=1e-6)
    assert parts["prior_loss"].item() == pytest.approx(prior, rel=1e-6)
    assert loss.item() == pytest.approx(bt + prior, rel=1e-6)


def test_prior_pulls_scores_toward_zero_but_not_the_gap():
    # Shifting both scores by a constant leaves the Bradley-Terry term unchanged; only the prior sees it.
    chosen = torch.tensor([5.0], requires_grad=True)
    rejected = torch.tensor([4.0], requires_grad=True)
    loss, _ = reward_loss(chosen, rejected, prior_coef=0.0)
    loss.backward()
    assert chosen.grad.item() == pytest.approx(-rejected.grad.item())  # pure gap gradient
    chosen.grad, rejected.grad = None, None
    loss, _ = reward_loss(chosen, rejected, prior_coef=0.5)
    loss.backward()
    assert chosen.grad.item() + rejected.grad.item() == pytest.approx(0.5 * 2 * (5.0 + 4.0))


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match=r"\[B\]"):
        reward_loss(torch.zeros(3), torch.zeros(2))


def test_pairwise_correct_counts_ties_half():
    assert pairwise_correct(torch.tensor([2.0, 1.0, 0.0]), torch.tensor([1.0, 1.0, 1.0])).tolist() == [1.0, 0.5, 0.0]
