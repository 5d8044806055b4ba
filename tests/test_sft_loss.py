import math

import pytest
import torch

from lit_rlhf.core.sft_loss import IGNORE_INDEX, masked_lm_loss, response_labels, token_nll


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
