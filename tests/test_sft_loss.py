import math

import pytest
import torch

from lit_rlhf.core.sft_loss import IGNORE_INDEX, masked_lm_loss, masked_reference_kl, response_labels, token_nll


def test_response_labels_mask_prompt_and_padding():
    ids = torch.tensor([[5, 6, 7, 8, 0]])
    prompt = torch.tensor([[1, 1, 0, 0, 0]])
    attention = torch.tensor([[1, 1, 1, 1, 0]])
    assert response_labels(ids, prompt, attention).tolist() == [[IGNORE_INDEX, IGNORE_INDEX, 7, 8, IGNORE_INDEX]]


def test_token_nll_by_hand():
    # Vocabulary of 2. Position t predicts label t+1. Logits [0, ln 3] give p(1) = 3/4.
    ln3 = math.log(3.0)
    logits = torch.tensor([[[0.0, ln3], [0.0, 0.0], [5.0, 5.0]]])
    labels = torch.tensor([[IGNORE_INDEX, 1, 0]])  # prompt token masked; response tokens 1 then 0
    nll, count = token_nll(logits, labels)
    # -log p(1 | pos 0) = -log 3/4 ; -log p(0 | pos 1) = -log 1/2 ; last logit unused.
    assert count.item() == 2
    assert nll.item() == pytest.approx(-math.log(0.75) - math.log(0.5), rel=1e-6)
    assert masked_lm_loss(logits, labels).item() == pytest.approx(nll.item() / 2, rel=1e-6)


def test_masked_positions_do_not_change_the_loss():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 3, 4, IGNORE_INDEX], [IGNORE_INDEX, 1, 2, 3, 4]])
    base = masked_lm_loss(logits, labels)
    perturbed = logits.clone()
    perturbed[0, 0, 0] += 10.0  # predicts a masked label
    perturbed[0, 4, 0] += 10.0  # last position predicts nothing
    torch.testing.assert_close(masked_lm_loss(perturbed, labels), base)
    perturbed[0, 2, 0] += 10.0  # predicts label 4 at position 3: must matter
    assert not torch.allclose(masked_lm_loss(perturbed, labels), base)


def test_no_labelled_tokens_gives_zero_not_nan():
    logits = torch.randn(1, 3, 4)
    labels = torch.full((1, 3), IGNORE_INDEX)
    assert masked_lm_loss(logits, labels).item() == 0.0


def test_reference_kl_by_hand():
    # one labelled position (label 1 sits at t=1, so logit 0 predicts it); p = (1/2, 1/2), p_ref = (3/4, 1/4)
    logits = torch.tensor([[[0.0, 0.0], [5.0, -5.0], [1.0, 2.0]]])
    ref_logits = torch.tensor([[[math.log(3.0), 0.0], [0.0, 0.0], [0.0, 0.0]]])
    labels = torch.tensor([[IGNORE_INDEX, 1, IGNORE_INDEX]])
    expected = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)  # 0.1308
    assert masked_reference_kl(logits, ref_logits, labels).item() == pytest.approx(expected, rel=1e-6)
    # unlabelled positions (whatever their logits) and the labels' values do not count
    assert masked_reference_kl(logits, ref_logits, torch.tensor([[IGNORE_INDEX, 0, IGNORE_INDEX]])).item() == (
        pytest.approx(expected, rel=1e-6)
    )
    assert masked_reference_kl(logits, ref_logits, torch.full((1, 3), IGNORE_INDEX)).item() == 0.0


def test_reference_kl_is_zero_with_zero_gradient_at_the_reference():
    torch.manual_seed(0)
    ref_logits = torch.randn(2, 5, 7)
    logits = ref_logits.clone().requires_grad_(True)
    labels = torch.tensor([[IGNORE_INDEX, 3, 4, 5, IGNORE_INDEX], [IGNORE_INDEX, IGNORE_INDEX, 1, 2, 3]])
    loss = masked_reference_kl(logits, ref_logits, labels)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    assert logits.grad.abs().max().item() < 1e-6
    # away from the reference it is positive and pulls back: a step against the gradient lowers it
    moved = (ref_logits + torch.randn(2, 5, 7)).requires_grad_(True)
    away = masked_reference_kl(moved, ref_logits, labels)
    away.backward()
    assert away.item() > 0
    assert masked_reference_kl(moved - 0.1 * moved.grad, ref_logits, labels).item() < away.item()
