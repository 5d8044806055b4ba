import pytest
import torch

from lit_rlhf.core.masked import masked_mean, masked_sum, masked_var, masked_whiten

DTYPES = [torch.float32, torch.float64, torch.bfloat16]


def test_masked_mean_and_var_by_hand():
    x = torch.tensor([[1.0, 2.0, 100.0], [3.0, 100.0, 100.0]])
    m = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert masked_sum(x, m).item() == 6.0
    assert masked_mean(x, m).item() == pytest.approx(2.0)
    torch.testing.assert_close(masked_mean(x, m, dim=1), torch.tensor([1.5, 3.0]))
    # values 1, 2, 3: biased variance 2/3, unbiased 1
    assert masked_var(x, m, unbiased=False).item() == pytest.approx(2 / 3)
    assert masked_var(x, m).item() == pytest.approx(1.0)


def test_empty_mask_mean_is_zero_and_var_raises():
    x = torch.ones(2, 3)
    assert masked_mean(x, torch.zeros(2, 3)).item() == 0.0
    with pytest.raises(ValueError, match="selects no elements"):
        masked_var(x, torch.zeros(2, 3))


def test_single_element_variance_is_zero():
    assert masked_var(torch.tensor([[5.0, 7.0]]), torch.tensor([[1, 0]])).item() == 0.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 5), (4, 7), (3, 1)])
def test_whiten_matches_reference(dtype, shape):
    g = torch.Generator().manual_seed(sum(shape))
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * 3 + 2).to(dtype)
    m = torch.rand(shape, generator=g) > 0.3
    m[0, 0] = True
    m.view(-1)[-1] = True  # at least two valid elements
    picked = x.double()[m]
    expected = torch.zeros(shape, dtype=torch.float64)
    expected[m] = (picked - picked.mean()) / torch.sqrt(picked.var(unbiased=True) + 1e-8)
    got = masked_whiten(x, m)
    assert got.dtype == dtype
    tol = {"atol": 2e-2, "rtol": 2e-2} if dtype == torch.bfloat16 else {"atol": 1e-5, "rtol": 1e-5}
    torch.testing.assert_close(got.double(), expected, **tol)


def test_whiten_without_shift_only_scales_and_keeps_signs():
    x = torch.tensor([[-1.0, 3.0, 9.0]])
    m = torch.tensor([[1, 1, 0]])
    out = masked_whiten(x, m, shift_mean=False)
    # valid values -1, 3: mean 1, unbiased variance (4 + 4) / 1 = 8, std 2 sqrt(2); x / std
    torch.testing.assert_close(out, torch.tensor([[-1 / 8**0.5, 3 / 8**0.5, 0.0]]), atol=1e-6, rtol=0)
    assert out[0, 0] < 0 < out[0, 1]
