import math

import pytest
import torch

from lit_rlhf.core.logprobs import entropy_from_logits, token_logprobs


def test_logprobs_and_entropy_by_hand():
    # Vocabulary of 2: logits [0, ln 3] give p = (1/4, 3/4).
    ln3 = math.log(3.0)
    logits = torch.tensor([[[0.0, ln3], [0.0, 0.0]]])
    labels = torch.tensor([[1, 0]])
    torch.testing.assert_close(token_logprobs(logits, labels), torch.tensor([[math.log(0.75), math.log(0.5)]]))
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    torch.testing.assert_close(entropy_from_logits(logits), torch.tensor([[h, math.log(2.0)]]))


def test_temperature_divides_logits():
    logits = torch.tensor([[[0.0, 2.0]]])
    labels = torch.tensor([[1]])
    # at temperature 2 the logits are [0, 1]: p(1) = e / (1 + e)
    expected = math.log(math.e / (1 + math.e))
    assert token_logprobs(logits, labels, temperature=2.0).item() == pytest.approx(expected, rel=1e-6)


def _reference_logprobs(logits, labels):
    out = torch.zeros(labels.shape, dtype=torch.float64)
    for b in range(labels.size(0)):
        for t in range(labels.size(1)):
            out[b, t] = torch.log_softmax(logits[b, t].double(), -1)[labels[b, t]]
    return out


def _reference_entropy(logits):
    p = torch.softmax(logits.double(), -1)
    return -(p * torch.log_softmax(logits.double(), -1)).sum(-1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("shape,chunk", [((1, 1, 3), 1), ((3, 5, 11), 1), ((4, 2, 17), None), ((5, 3, 7), 2)])
def test_matches_log_softmax_reference(dtype, shape, chunk):
    g = torch.Generator().manual_seed(shape[1] * 31 + shape[2])
    logits = (torch.randn(shape, generator=g, dtype=torch.float64) * 4).to(dtype)
    labels = torch.randint(0, shape[2], shape[:2], generator=g)
    # Outputs are float32/float64 computed from the same (possibly bf16) logits, so tolerances are tight.
    tol = {"atol": 1e-9, "rtol": 1e-9} if dtype == torch.float64 else {"atol": 1e-5, "rtol": 1e-5}
    got = token_logprobs(logits, labels, chunk_rows=chunk)
    assert got.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    torch.testing.assert_close(got.double(), _reference_logprobs(logits, labels), **tol)
    entropy = entropy_from_logits(logits, chunk_rows=chunk)
    torch.testing.assert_close(entropy.double(), _reference_entropy(logits), **tol)


def test_gradient_matches_log_softmax():
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 6, requires_grad=True)
    labels = torch.randint(0, 6, (3, 4))
    weights = torch.randn(3, 4)
    (token_logprobs(logits, labels) * weights).sum().backward()
    grad = logits.grad.clone()
    logits.grad = None
    (torch.log_softmax(logits, -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1) * weights).sum().backward()
    torch.testing.assert_close(grad, logits.grad)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="disagree"):
        token_logprobs(torch.zeros(2, 3, 5), torch.zeros(2, 4, dtype=torch.long))
