import json

import pytest

from lit_rlhf.data.errors import DataError, SkipReport
from lit_rlhf.data.preference_files import read_preference_jsonl
from lit_rlhf.models.tokenizer import build_gym_tokenizer
from lit_rlhf.reward.data import (
    PreferenceCollator,
    PreferenceDataModule,
    PreferenceDataset,
    encode_prompt_response,
    resolve_input_format,
)
from lit_rlhf.reward.length_balance import LengthBalancer


@pytest.fixture(scope="module")
def tokenizer():
    return build_gym_tokenizer()


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


GOOD = {
    "prompt": "what is 2 plus 3 ?",
    "chosen": "the answer is 5 .",
    "rejected": "the answer is 6 .",
    "category": "math",
    "chosen_len": 5,
    "rejected_len": 5,
    "votes": {"chosen": 2},
    "provenance": {},
}


def test_reads_the_collection_schema_and_keeps_extra_fields(tmp_path):
    rows = read_preference_jsonl(write(tmp_path / "p.jsonl", [GOOD, {**GOOD, "category": None, "margin": 1}]))
    assert rows[0]["votes"] == {"chosen": 2} and rows[0]["margin"] == 0.0
    assert rows[1]["category"] == "all" and rows[1]["margin"] == 1.0


@pytest.mark.parametrize(
    "bad, message",
    [
        ({**GOOD, "chosen": GOOD["rejected"]}, "field 'rejected': chosen and rejected are identical"),
        ({**GOOD, "rejected": "  "}, "field 'rejected': is empty"),
        ({k: v for k, v in GOOD.items() if k != "prompt"}, "field 'prompt': missing"),
        ({**GOOD, "chosen": 3}, "field 'chosen': expected a string"),
        ({**GOOD, "margin": "big"}, "field 'margin': expected a number"),
    ],
)
def test_bad_rows_name_file_line_and_field(tmp_path, bad, message):
    path = write(tmp_path / "p.jsonl", [GOOD, bad])
    with pytest.raises(DataError) as err:
        read_preference_jsonl(path)
    assert str(err.value).startswith(f"{path}:2: {message}")


def test_skip_mode_counts_by_reason(tmp_path):
    path = write(tmp_path / "p.jsonl", [GOOD, {**GOOD, "chosen": GOOD["rejected"]}, {"prompt": "x"}])
    report = SkipReport()
    rows = read_preference_jsonl(path, on_error="skip", report=report)
    assert len(rows) == 1 and rows.report is report
    assert report.counts == {"identical responses": 1, "bad field 'chosen'": 1}
    (tmp_path / "empty.jsonl").write_text(json.dumps({"prompt": "x"}) + "\n")
    with pytest.raises(DataError, match="no usable rows"):
        read_preference_jsonl(tmp_path / "empty.jsonl", on_error="skip")


def test_truncation_keeps_the_response_and_cuts_the_prompt_from_the_left(tokenizer):
    long_prompt = " ".join(["what"] * 50) + " is 2 plus 3 ?"
    full, cut = encode_prompt_response(tokenizer, long_prompt, "the answer is 5 .", max_length=16)
    response_ids = tokenizer(" the answer is 5 .", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert len(full) == 16 and full[-len(response_ids) :] == response_ids
    assert cut == {"prompt_cut": True, "response_cut": False}
    assert tokenizer.decode(full[: -len(response_ids)]).endswith("assistant :")  # the end of the prompt survives
    long_response = " ".join(["very"] * 40)
    ids, cut = encode_prompt_response(tokenizer, "hi", long_response, max_length=16)
    assert len(ids) == 16 and cut == {"prompt_cut": True, "response_cut": True}
    dataset = PreferenceDataset([{"prompt": long_prompt, "chosen": "a .", "rejected": long_response}], tokenizer, 16)
    assert dataset.truncated == {"prompt_cut": 2, "response_cut": 1}


def test_collator_puts_chosen_then_rejected_and_pads_to_the_batch(tokenizer):
    rows = [
        {"prompt": "hi", "chosen": "a b c .", "rejected": "a .", "category": "x"},
        {"prompt": "hi", "chosen": "a .", "rejected": "a b .", "category": "y"},
    ]
    dataset = PreferenceDataset(rows, tokenizer, max_length=64, bucket_edges=[1, 2])
    batch = PreferenceCollator(tokenizer.pad_token_id)([dataset[0], dataset[1]])
    lengths = batch["attention_mask"].sum(-1).tolist()
    assert batch["input_ids"].shape == (4, max(lengths))  # no padding beyond the longest sequence
    assert lengths == [
        len(dataset[0]["chosen_ids"]),
        len(dataset[1]["chosen_ids"]),
        len(dataset[0]["rejected_ids"]),
        len(dataset[1]["rejected_ids"]),
    ]
    assert batch["chosen_len"].tolist() == [4, 2] and batch["rejected_len"].tolist() == [2, 3]
    assert batch["bucket_id"].tolist() == [2, 1] and batch["category_id"].tolist() == [0, 1]


def test_datamodule_balances_train_only_and_holds_out_val(tokenizer):
    rows = [
        {"prompt": "hi", "chosen": " ".join(["a"] * (3 + i % 4)), "rejected": "b .", "category": "c"} for i in range(20)
    ] + [{"prompt": "hi", "chosen": "a .", "rejected": "b b b b .", "category": "c"}] * 5
    dm = PreferenceDataModule(tokenizer, rows, batch_size=4, val_fraction=0.2, length_balance=LengthBalancer())
    dm.setup("fit")
    assert len(dm.val_rows) == 5 and len(dm.train_rows) == 20
    assert len(dm.train_set) < len(dm.train_rows)  # longer-wins pairs were down-sampled
    assert dm.balance_report.before != dm.balance_report.after
    assert dm.input_format == "chat" and next(iter(dm.train_dataloader()))["input_ids"].size(0) % 2 == 0


def test_input_format_resolution(tokenizer):
    assert resolve_input_format(tokenizer) == "chat"
    with pytest.raises(ValueError, match="input_format"):
        resolve_input_format(tokenizer, "triple")


def test_length_grouped_batches_cover_every_pair_once_and_cut_padding(tokenizer):
    from lit_rlhf.reward.data import LengthGroupedBatchSampler

    lengths = [3 + (i * 7) % 40 for i in range(100)]
    sampler = LengthGroupedBatchSampler(lengths, batch_size=8, seed=0, mega_factor=4)
    first, second = list(sampler), list(sampler)
    assert sorted(i for b in first for i in b) == list(range(100)) and len(first) == len(sampler)
    assert first != second  # a new order every epoch

    def padded(batches):
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    shuffled = list(range(100))
    random_batches = [shuffled[i : i + 8] for i in range(0, 100, 8)]
    assert padded(first) < 0.8 * padded(random_batches)
