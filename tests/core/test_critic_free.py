"""Critic-free estimators against hand-worked values and plain loops."""

import math

import pytest
import torch

from lit_rlhf.core.critic_free import (
    grouped,
    grpo_advantages,
    per_token,
    reinforce_pp_advantages,
    remax_advantages,
    returns_to_go,
    rloo_advantages,
)

# two prompts, k = 3 answers each
SCORES = torch.tensor([1.0, 2.0, 3.0, 5.0, 5.0, 5.0])


def test_grpo_by_hand():
    # group (1, 2, 3): mean 2, std (Bessel) 1 -> (-1, 0, 1); group (5, 5, 5): no signal -> 0
    got = grpo_advantages(SCORES, k=3, eps=0.0 + 1e-12)
    torch.testing.assert_close(got, torch.tensor([-1.0, 0.0, 1.0, 0.0, 0.0, 0.0]))
    torch.testing.assert_close(grpo_advantages(SCORES, k=3, scale=False), torch.tensor([-1.0, 0, 1, 0, 0, 0]))


def test_grpo_scale_uses_bessels_std_as_trl():
    scores = torch.tensor([0.0, 4.0])  # mean 2, std sqrt(8) with Bessel's correction (2 without)
    got = grpo_advantages(scores, k=2, eps=0.0)
    torch.testing.assert_close(got, torch.tensor([-2 / math.sqrt(8), 2 / math.sqrt(8)]))


def test_rloo_by_hand():
    # answer 1: 1 - (2 + 3)/2 = -1.5; answer 2: 2 - 2 = 0; answer 3: 3 - 1.5 = 1.5
    got = rloo_advantages(SCORES, k=3)
    torch.testing.assert_close(got, torch.tensor([-1.5, 0.0, 1.5, 0.0, 0.0, 0.0]))


def test_rloo_is_k_over_k_minus_one_times_the_centred_score():
    scores = torch.randn(4 * 5, generator=torch.Generator().manual_seed(0))
    centred = grpo_advantages(scores, k=5, scale=False)
    torch.testing.assert_close(rloo_advantages(scores, k=5), centred * 5 / 4)


def test_remax_subtracts_the_greedy_answers_score():
    got = remax_advantages(torch.tensor([1.0, 3.0]), torch.tensor([2.0, 2.0]))
    torch.testing.assert_close(got, torch.tensor([-1.0, 1.0]))
    with pytest.raises(ValueError, match="differ"):
        remax_advantages(torch.tensor([1.0, 3.0]), torch.tensor([2.0]))


@pytest.mark.parametrize("k", [1, 4])
def test_groups_need_k_of_at_least_two_dividing_the_batch(k):
    with pytest.raises(ValueError, match="k >= 2"):
        grouped(SCORES, k)


def test_per_token_spreads_the_advantage_over_the_answer():
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    torch.testing.assert_close(per_token(torch.tensor([2.0, -1.0]), mask), torch.tensor([[2.0, 2, 0], [-1.0, -1, -1]]))


def test_returns_to_go_by_hand_skip_padding():
    # row 0: rewards (1, 2, pad, 3) with γ = 0.5: G = (1 + 0.5 (2 + 0.5·3), 2 + 0.5·3, 0, 3) = (2.75, 3.5, 0, 3)
    rewards = torch.tensor([[1.0, 2.0, 9.0, 3.0]])
    mask = torch.tensor([[1, 1, 0, 1]])
    torch.testing.assert_close(returns_to_go(rewards, mask, gamma=0.5), torch.tensor([[2.75, 3.5, 0.0, 3.0]]))


def test_reinforce_pp_whitens_returns_over_the_batch_tokens():
    # γ = 1: returns (−0.1 + 1, 1) = (0.9, 1.0) for row 0 and (−1.0,) for row 1
    rewards = torch.tensor([[-0.1, 1.0], [-1.0, 0.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    returns = torch.tensor([0.9, 1.0, -1.0])
    expected = (returns - returns.mean()) / returns.var().sqrt()  # Bessel-corrected, as masked_whiten
    got = reinforce_pp_advantages(rewards, mask)
    torch.testing.assert_close(got[mask.bool()], expected, atol=1e-5, rtol=1e-5)
    assert got[1, 1] == 0
