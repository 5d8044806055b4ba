"""DPO/IPO math: hand-worked values and a plain reference implementation."""

import math

import pytest
import torch

from lit_rlhf.core.dpo_loss import (
    dpo_loss,
    implicit_rewards,
    ipo_loss,
    logratio_margin,
    preference_loss,
    response_token_logprobs,
    sequence_logprobs,
)

# log-probs of one pair: h = (-10 + 11) - (-12 + 11) = 2
PC, PR, RC, RR = (torch.tensor([x]) for x in (-10.0, -12.0, -11.0, -11.0))


def test_sequence_logprobs_sum_and_mean_over_the_mask():
    token_logps = torch.tensor([[-1.0, -2.0, -3.0, -4.0], [-0.5, -0.5, -0.5, -0.5]])
    mask = torch.tensor([[0, 1, 1, 0], [1, 1, 1, 1]])
    assert sequence_logprobs(token_logps, mask).tolist() == [-5.0, -2.0]
    assert sequence_logprobs(token_logps, mask, average=True).tolist() == [-2.5, -0.5]


def test_dpo_loss_by_hand():
    assert logratio_margin(PC, PR, RC, RR).item() == 2.0
    # beta = 0.1: -log sigmoid(0.2) = log(1 + e^-0.2)
    expected = math.log(1 + math.exp(-0.2))
    assert dpo_loss(PC, PR, RC, RR, beta=0.1).item() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.598138869, abs=1e-8)


def test_label_smoothing_mixes_in_the_flipped_label():
    # 0.9 * log(1 + e^-0.2) + 0.1 * log(1 + e^0.2)
    expected = 0.9 * 0.598138869 + 0.1 * 0.798138869
    assert dpo_loss(PC, PR, RC, RR, beta=0.1, label_smoothing=0.1).item() == pytest.approx(expected, abs=1e-6)


def test_ipo_loss_by_hand():
    # (h - 1 / (2 beta))^2 = (2 - 5)^2
    assert ipo_loss(PC, PR, RC, RR, beta=0.1).item() == pytest.approx(9.0)
    assert preference_loss(PC, PR, RC, RR, beta=0.25, loss_type="ipo").item() == pytest.approx(0.0)


def test_implicit_rewards_by_hand():
    assert implicit_rewards(PC, RC, 0.1).item() == pytest.approx(0.1)
    assert implicit_rewards(PR, RR, 0.1).item() == pytest.approx(-0.1)


def test_loss_is_log2_when_policy_equals_reference():
    logps = torch.randn(5)
    torch.testing.assert_close(dpo_loss(logps, logps - 1, logps, logps - 1), torch.full((5,), math.log(2)))


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(PC, PR, RC, RR, beta=0.0)
    with pytest.raises(ValueError, match="loss_type"):
        preference_loss(PC, PR, RC, RR, loss_type="hinge2")
    with pytest.raises(ValueError, match="label_smoothing"):
        preference_loss(PC, PR, RC, RR, loss_type="ipo", label_smoothing=0.1)


def _reference_dpo(logits, input_ids, response_mask, ref_chosen, ref_rejected, beta):
    """Plain loops: log_softmax per position, sum over response tokens, then the textbook formula."""
    seq = []
    for b in range(input_ids.size(0)):
        total = 0.0
        for t in range(1, input_ids.size(1)):
            if response_mask[b, t]:
                total = total + torch.log_softmax(logits[b, t - 1].double(), -1)[input_ids[b, t]]
        seq.append(total)
    seq = torch.stack([torch.as_tensor(s, dtype=torch.float64) for s in seq])
    half = len(seq) // 2
    h = (seq[:half] - ref_chosen.double()) - (seq[half:] - ref_rejected.double())
    return seq, -torch.log(1 / (1 + torch.exp(-beta * h)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("shape", [(2, 5, 7), (6, 9, 11)])
def test_matches_a_plain_reference(dtype, shape):
    generator = torch.Generator().manual_seed(0)
    b2, t, v = shape
    logits = torch.randn(shape, generator=generator).to(dtype)
    input_ids = torch.randint(0, v, (b2, t), generator=generator)
    response_mask = (torch.rand((b2, t), generator=generator) > 0.3).long()
    ref_c, ref_r = torch.randn(b2 // 2, generator=generator), torch.randn(b2 // 2, generator=generator)
    expected_seq, expected_loss = _reference_dpo(logits.float(), input_ids, response_mask, ref_c, ref_r, 0.3)
    token_logps, mask = response_token_logprobs(logits, input_ids, response_mask)
    seq = sequence_logprobs(token_logps, mask)
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype != torch.bfloat16 else {"atol": 1e-4, "rtol": 1e-4}
    torch.testing.assert_close(seq.double(), expected_seq, **tol)
    loss = dpo_loss(seq[: b2 // 2], seq[b2 // 2 :], ref_c, ref_r, beta=0.3)
    torch.testing.assert_close(loss.double(), expected_loss, **tol)
