import pytest
import torch

from lit_rlhf.core.advantages import gae_advantages, whiten_advantages


def test_gamma_half_lambda_zero_by_hand():
    # λ = 0: A_t = r_t + γ V_{t+1} - V_t, with V after the last token = 0.
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[1.0, 2.0, 3.0]])
    adv, ret = gae_advantages(rewards, values, torch.ones(1, 3), gamma=0.5, lam=0.0)
    torch.testing.assert_close(adv, torch.tensor([[0.0, -0.5, -2.0]]))
    torch.testing.assert_close(ret, torch.tensor([[1.0, 1.5, 1.0]]))


def test_gamma_one_lambda_one_is_monte_carlo():
    rewards = torch.tensor([[1.0, 0.0, 2.0]])
    values = torch.tensor([[0.5, 0.5, 0.5]])
    adv, ret = gae_advantages(rewards, values, torch.ones(1, 3), gamma=1.0, lam=1.0)
    torch.testing.assert_close(ret, torch.tensor([[3.0, 2.0, 2.0]]))
    torch.testing.assert_close(adv, torch.tensor([[2.5, 1.5, 1.5]]))


def test_gamma_half_lambda_half_by_hand():
    # δ = [0 + .5*1 - 1, 1 + 0 - 1] = [-0.5, 0]; A_1 = 0, A_0 = -0.5 + 0.25 * 0
    rewards = torch.tensor([[0.0, 1.0]])
    values = torch.tensor([[1.0, 1.0]])
    adv, _ = gae_advantages(rewards, values, torch.ones(1, 2), gamma=0.5, lam=0.5)
    torch.testing.assert_close(adv, torch.tensor([[-0.5, 0.0]]))
    adv, _ = gae_advantages(torch.tensor([[0.0, 2.0]]), values, torch.ones(1, 2), gamma=0.5, lam=0.5)
    # δ = [-0.5, 1]; A_0 = -0.5 + 0.25 * 1 = -0.25
    torch.testing.assert_close(adv, torch.tensor([[-0.25, 1.0]]))


def test_padding_ends_the_episode_and_holes_are_skipped():
    rewards = torch.tensor([[0.0, 1.0, 9.0], [1.0, 9.0, 2.0]])
    values = torch.tensor([[1.0, 1.0, 9.0], [1.0, 9.0, 1.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 1]])
    adv, ret = gae_advantages(rewards, values, mask, gamma=0.5, lam=0.0)
    # row 0: last valid token at t=1 is terminal; row 1: t=0's next valid token is t=2.
    torch.testing.assert_close(adv, torch.tensor([[0.0 + 0.5 * 1 - 1, 1.0 - 1, 0.0], [1 + 0.5 * 1 - 1, 0.0, 2.0 - 1]]))
    assert ret[0, 2] == 0 and ret[1, 1] == 0


def _reference_gae(rewards, values, mask, gamma, lam):
    adv = torch.zeros(rewards.shape, dtype=torch.float64)
    for b in range(rewards.size(0)):
        idx = [t for t in range(rewards.size(1)) if mask[b, t]]
        running = 0.0
        for k in reversed(range(len(idx))):
            t = idx[k]
            next_v = values[b, idx[k + 1]].item() if k + 1 < len(idx) else 0.0
            delta = rewards[b, t].item() + gamma * next_v - values[b, t].item()
            running = delta + gamma * lam * running
            adv[b, t] = running
    return adv, (adv + values.double()) * mask.double()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("shape", [(1, 1), (2, 6), (5, 17)])
@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.9, 0.0), (0.5, 1.0)])
def test_matches_loop_reference(dtype, shape, gamma, lam):
    g = torch.Generator().manual_seed(shape[0] * 100 + shape[1])
    rewards = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    values = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    mask = torch.rand(shape, generator=g) > 0.25
    adv, ret = gae_advantages(rewards, values, mask, gamma=gamma, lam=lam)
    ref_adv, ref_ret = _reference_gae(rewards.double(), values.double(), mask, gamma, lam)
    tol = {"atol": 1e-10, "rtol": 1e-10} if dtype == torch.float64 else {"atol": 1e-5, "rtol": 1e-5}
    torch.testing.assert_close(adv.double(), ref_adv, **tol)
    torch.testing.assert_close(ret.double(), ref_ret, **tol)


def test_advantages_carry_no_gradient():
    values = torch.randn(2, 3, requires_grad=True)
    adv, ret = gae_advantages(torch.randn(2, 3), values, torch.ones(2, 3))
    assert not adv.requires_grad and not ret.requires_grad


def test_whitened_advantages_have_unit_stats_on_valid_tokens():
    adv = torch.tensor([[1.0, 2.0, 50.0], [3.0, 4.0, 50.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]])
    out = whiten_advantages(adv, mask)
    valid = out[mask.bool()]
    assert valid.mean().abs().item() < 1e-6
    assert valid.std().item() == pytest.approx(1.0, rel=1e-5)
    assert out[:, 2].abs().sum().item() == 0.0
