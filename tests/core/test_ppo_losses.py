import math

import pytest
import torch

from lit_rlhf.core.ppo_losses import clipped_policy_loss, clipped_value_loss


def test_policy_clip_cases_by_hand():
    # ε = 0.2; the four sign/ratio cases, plus a padded token that must not count.
    ratios = torch.tensor([[1.5, 0.5, 1.5, 0.5, 9.0]])
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0, 5.0]])
    mask = torch.tensor([[1, 1, 1, 1, 0]])
    old = torch.zeros(1, 5)
    logp = ratios.log().requires_grad_(True)
    out = clipped_policy_loss(logp, old, adv, mask, clip_range=0.2)
    # per-token max(-A ρ, -A clip(ρ)): -1.2 (clipped), -0.5, 1.5, 0.8 (clipped)
    assert out.loss.item() == pytest.approx((-1.2 - 0.5 + 1.5 + 0.8) / 4, rel=1e-6)
    assert out.clip_fraction.item() == pytest.approx(0.5)
    assert out.ratio_mean.item() == pytest.approx((1.5 + 0.5 + 1.5 + 0.5) / 4, rel=1e-6)
    k3 = sum(r - 1 - math.log(r) for r in (1.5, 0.5, 1.5, 0.5)) / 4
    assert out.approx_kl.item() == pytest.approx(k3, rel=1e-6)
    out.loss.backward()
    # Clipped tokens get no gradient; unclipped ones get d(-A ρ)/d logp / N = -A ρ / 4.
    torch.testing.assert_close(logp.grad, torch.tensor([[0.0, -0.5 / 4, 1.5 / 4, 0.0, 0.0]]))


def test_policy_loss_at_ratio_one_is_minus_mean_advantage():
    adv = torch.tensor([[2.0, -1.0, 4.0]])
    out = clipped_policy_loss(torch.zeros(1, 3), torch.zeros(1, 3), adv, torch.ones(1, 3))
    assert out.loss.item() == pytest.approx(-5.0 / 3)
    assert out.clip_fraction.item() == 0.0 and out.approx_kl.item() == 0.0


def test_value_clip_cases_by_hand():
    values = torch.tensor([[1.5, 0.9, 3.0, 7.0]], requires_grad=True)
    old = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    returns = torch.tensor([[2.0, 2.0, 2.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    out = clipped_value_loss(values, old, returns, mask, clip_range=0.2)
    # (1.5: clipped 1.2 -> 0.64 wins), (0.9: inside the clip, 1.21), (3.0: unclipped 1.0 wins)
    assert out.loss.item() == pytest.approx(0.5 * (0.64 + 1.21 + 1.0) / 3, rel=1e-6)
    assert out.clip_fraction.item() == pytest.approx(1 / 3)
    out.loss.backward()
    torch.testing.assert_close(values.grad, torch.tensor([[0.0, 0.5 * 2 * (0.9 - 2) / 3, 0.5 * 2 * 1.0 / 3, 0.0]]))


def _reference_policy(logp, old, adv, mask, eps):
    total, clipped_count, n = 0.0, 0, 0
    for b in range(logp.size(0)):
        for t in range(logp.size(1)):
            if not mask[b, t]:
                continue
            r = math.exp(logp[b, t] - old[b, t])
            a = adv[b, t].item()
            plain, clip = -a * r, -a * min(max(r, 1 - eps), 1 + eps)
            total += max(plain, clip)
            clipped_count += clip > plain
            n += 1
    return total / n, clipped_count / n


def _reference_value(v, old, ret, mask, eps):
    total, clipped_count, n = 0.0, 0, 0
    for b in range(v.size(0)):
        for t in range(v.size(1)):
            if not mask[b, t]:
                continue
            vc = old[b, t] + min(max(v[b, t] - old[b, t], -eps), eps)
            plain, clip = (v[b, t] - ret[b, t]) ** 2, (vc - ret[b, t]) ** 2
            total += max(plain, clip)
            clipped_count += clip > plain
            n += 1
    return 0.5 * float(total) / n, int(clipped_count) / n


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("shape", [(1, 3), (4, 9), (7, 2)])
def test_losses_match_loop_reference(dtype, shape):
    g = torch.Generator().manual_seed(shape[0] * 10 + shape[1])
    old = (-torch.rand(shape, generator=g, dtype=torch.float64) * 2).to(dtype)
    logp = (old.double() + torch.randn(shape, generator=g, dtype=torch.float64) * 0.3).to(dtype)
    adv = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    mask = torch.rand(shape, generator=g) > 0.2
    mask[0, 0] = True
    # Inputs are fixed in dtype; the reference reads the same values in float64.
    loss, clipfrac = _reference_policy(logp.double(), old.double(), adv.double(), mask, 0.2)
    out = clipped_policy_loss(logp, old, adv, mask, 0.2)
    tol = {"atol": 1e-9, "rtol": 1e-9} if dtype == torch.float64 else {"atol": 1e-5, "rtol": 1e-5}
    torch.testing.assert_close(out.loss.double(), torch.tensor(loss, dtype=torch.float64), **tol)
    assert out.clip_fraction.item() == pytest.approx(clipfrac)

    values, returns = adv, logp
    old_values = (adv.double() + 0.3 * torch.randn(shape, generator=g, dtype=torch.float64)).to(dtype)
    loss, clipfrac = _reference_value(values.double(), old_values.double(), returns.double(), mask, 0.2)
    out = clipped_value_loss(values, old_values, returns, mask, 0.2)
    torch.testing.assert_close(out.loss.double(), torch.tensor(loss, dtype=torch.float64), **tol)
    assert out.clip_fraction.item() == pytest.approx(clipfrac)
