import pytest
import torch

from lit_rlhf.core.rewards import (
    kl_penalized_rewards,
    last_token_index,
    prompt_reward_spread,
    reference_baseline_reward,
)


def test_last_token_index_handles_lengths_and_holes():
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [0, 1, 0, 1], [1, 0, 0, 0]])
    assert last_token_index(mask).tolist() == [1, 3, 3, 0]


def test_empty_response_is_an_error():
    with pytest.raises(ValueError, match=r"rows \[1\]"):
        last_token_index(torch.tensor([[1, 0], [0, 0]]))


def test_rewards_by_hand():
    logp = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, -9.0]])
    ref = torch.tensor([[-1.5, -2.0, -1.0], [-2.0, -0.5, -9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    scores = torch.tensor([2.0, -1.0])
    rewards, kl = kl_penalized_rewards(scores, logp, ref, mask, kl_coef=0.1, estimator="k1")
    # k1 = logp - ref: row 0 [0.5, 0, -2], row 1 [1, -0.5, (pad) 0]
    torch.testing.assert_close(kl, torch.tensor([[0.5, 0.0, -2.0], [1.0, -0.5, 0.0]]))
    torch.testing.assert_close(rewards, torch.tensor([[-0.05, 0.0, 0.2 + 2.0], [-0.1, 0.05 - 1.0, 0.0]]))


def _reference_rewards(scores, logp, ref, mask, coef):
    out = torch.zeros(logp.shape, dtype=torch.float64)
    for b in range(logp.size(0)):
        last = max(t for t in range(logp.size(1)) if mask[b, t])
        for t in range(logp.size(1)):
            if mask[b, t]:
                out[b, t] = -coef * (logp[b, t] - ref[b, t]) + (scores[b] if t == last else 0.0)
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("shape", [(1, 1), (3, 8), (6, 5)])
def test_matches_loop_reference(dtype, shape):
    g = torch.Generator().manual_seed(shape[1])
    logp = -torch.rand(shape, generator=g, dtype=torch.float64).to(dtype) * 3
    ref = -torch.rand(shape, generator=g, dtype=torch.float64).to(dtype) * 3
    lengths = torch.randint(1, shape[1] + 1, (shape[0],), generator=g)
    mask = torch.arange(shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
    scores = torch.randn(shape[0], generator=g, dtype=torch.float64).to(dtype)
    rewards, _ = kl_penalized_rewards(scores, logp, ref, mask, kl_coef=0.05)
    expected = _reference_rewards(scores.double(), logp.double(), ref.double(), mask, 0.05)
    assert rewards.dtype == dtype
    tol = {"atol": 3e-2, "rtol": 1.6e-2} if dtype == torch.bfloat16 else {}
    torch.testing.assert_close(rewards.double(), expected, **tol)


def test_shape_errors():
    with pytest.raises(ValueError, match="scores"):
        kl_penalized_rewards(torch.zeros(3), torch.zeros(2, 4), torch.zeros(2, 4), torch.ones(2, 4), 0.1)
    with pytest.raises(ValueError, match="mask"):
        kl_penalized_rewards(torch.zeros(2), torch.zeros(2, 4), torch.zeros(2, 4), torch.ones(2, 3), 0.1)


def test_reference_baseline_reward():
    scores = torch.tensor([3.0, -1.0, 0.5])
    ref_scores = torch.tensor([2.0, -1.0, 1.5])
    torch.testing.assert_close(reference_baseline_reward(scores, ref_scores), torch.tensor([1.0, 0.0, -1.0]))
    with pytest.raises(ValueError, match="differ"):
        reference_baseline_reward(scores, ref_scores[:2])


def test_prompt_reward_spread_by_hand():
    scores = torch.tensor([[1.0, 3.0], [5.0, 7.0]])  # prompt means 2 and 6, each spread ±1
    assert prompt_reward_spread(scores) == {"between": 4.0, "within": 1.0}
    # a baseline equal to each prompt's mean removes the between-prompt part, never the within part
    assert prompt_reward_spread(scores, torch.tensor([2.0, 6.0])) == {"between": 0.0, "within": 1.0}
    # a baseline that misses the offsets can add variance: means 2 - 0 = 2 and 6 - 10 = -4
    assert prompt_reward_spread(scores, torch.tensor([0.0, 10.0]))["between"] == 9.0
    with pytest.raises(ValueError, match=r"\[P\]"):
        prompt_reward_spread(scores, torch.tensor([1.0]))
