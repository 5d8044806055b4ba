"""Pair batches: one forward for both sides, truncation, and the reference log-prob cache."""

import torch

from lit_rlhf.data.formatting import encode_prompt, encode_response
from lit_rlhf.dpo.data import DPOCollator, DPODataModule, DPODataset, cache_reference_logps, concatenated_logprobs


def _separate_logprob(model, tokenizer, prompt, response):
    """log π(response | prompt) from a forward over this sequence alone, no padding."""
    prompt_ids, response_ids = encode_prompt(tokenizer, prompt), encode_response(tokenizer, response)
    ids = torch.tensor([prompt_ids + response_ids])
    logps = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
    targets = ids[0, 1:]
    picked = logps[torch.arange(len(targets)), targets]
    return picked[len(prompt_ids) - 1 :].sum()


def test_one_forward_over_both_sides_equals_separate_forwards(policy, pair_rows):
    model, tokenizer = policy
    model.eval()
    rows = pair_rows[:4]
    dataset = DPODataset(rows, tokenizer, max_length=128)
    batch = DPOCollator(tokenizer.pad_token_id)([dataset[i] for i in range(len(rows))])
    assert batch["input_ids"].shape[0] == 2 * len(rows)
    with torch.no_grad():
        chosen, rejected = concatenated_logprobs(model, batch)
        for i, row in enumerate(rows):
            torch.testing.assert_close(
                chosen[i], _separate_logprob(model, tokenizer, row["prompt"], row["chosen"]), atol=1e-4, rtol=1e-5
            )
            torch.testing.assert_close(
                rejected[i], _separate_logprob(model, tokenizer, row["prompt"], row["rejected"]), atol=1e-4, rtol=1e-5
            )


def test_response_mask_covers_exactly_the_response_and_eos(policy, pair_rows):
    _, tokenizer = policy
    row = pair_rows[0]
    batch = DPOCollator(tokenizer.pad_token_id)([DPODataset([row], tokenizer)[0]])
    assert int(batch["response_mask"][0].sum()) == len(encode_response(tokenizer, row["chosen"]))
    assert int(batch["response_mask"][1].sum()) == len(encode_response(tokenizer, row["rejected"]))
    assert "ref_logps" not in batch


def test_truncation_keeps_the_response_and_is_counted(policy):
    _, tokenizer = policy
    row = {"prompt": "tell me " * 40 + "a story", "chosen": "once upon a time", "rejected": "no"}
    dataset = DPODataset([row], tokenizer, max_length=16)
    item = dataset[0]
    assert len(item["chosen_ids"]) == 16 and dataset.truncated["prompt_cut"] == 2
    assert item["chosen_ids"][item["chosen_prompt_len"] :] == encode_response(tokenizer, row["chosen"])


class CountingModel(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.calls, self.rows = model, 0, 0

    def forward(self, **kwargs):
        self.calls += 1
        self.rows += kwargs["input_ids"].size(0)
        return self.model(**kwargs)


def test_reference_log_probs_are_computed_once_and_travel_in_batches(policy, pair_rows):
    model, tokenizer = policy
    reference = CountingModel(model)
    datamodule = DPODataModule(tokenizer, pair_rows[:10], batch_size=4, val_fraction=0.2)
    assert datamodule.cache_reference_logps(reference, batch_size=3) == 10
    assert reference.rows == 20  # every pair once: chosen and rejected
    assert datamodule.cache_reference_logps(reference) == 0 and reference.rows == 20
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["ref_logps"].shape == (batch["input_ids"].size(0),)
    with torch.no_grad():
        chosen, rejected = concatenated_logprobs(model, batch)
    torch.testing.assert_close(batch["ref_logps"], torch.cat([chosen, rejected]), atol=1e-5, rtol=1e-5)


def test_cache_does_not_change_when_the_policy_later_changes(policy, pair_rows):
    model, tokenizer = policy
    dataset = DPODataset(pair_rows[:3], tokenizer)
    cache_reference_logps(model, dataset, DPOCollator(tokenizer.pad_token_id))
    before = [item["ref_chosen"] for item in dataset.items]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)
    cache_reference_logps(model, dataset, DPOCollator(tokenizer.pad_token_id))
    assert [item["ref_chosen"] for item in dataset.items] == before
