import json

import pytest

from lit_rlhf.core.sft_loss import IGNORE_INDEX
from lit_rlhf.data.errors import ConfigError, DataError, SkipReport
from lit_rlhf.data.formatting import encode_prompt, encode_response
from lit_rlhf.data.jsonl import read_jsonl, write_jsonl
from lit_rlhf.models import build_gym_tokenizer
from lit_rlhf.sft.data import SFTCollator, SFTDataset, read_sft_jsonl


@pytest.fixture(scope="module")
def tokenizer():
    return build_gym_tokenizer()


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_collator_masks_prompt_and_padding(tokenizer):
    rows = [
        {"prompt": "who are you ?", "response": "i am gizmo ."},
        {"prompt": "what is 3 plus 4 ?", "response": "the answer is 7 ."},
    ]
    batch = SFTCollator(tokenizer.pad_token_id)([SFTDataset(rows, tokenizer)[i] for i in range(2)])
    for i, row in enumerate(rows):
        prompt_ids = encode_prompt(tokenizer, row["prompt"])
        response_ids = encode_response(tokenizer, row["response"])
        labels = batch["labels"][i].tolist()
        n = len(prompt_ids) + len(response_ids)
        assert labels[: len(prompt_ids)] == [IGNORE_INDEX] * len(prompt_ids)
        assert labels[len(prompt_ids) : n] == response_ids  # ends with EOS: the model learns to stop
        assert labels[n:] == [IGNORE_INDEX] * (len(labels) - n)
        assert batch["attention_mask"][i].sum().item() == n


def test_over_long_rows_keep_the_response_and_cut_the_prompt_from_the_left(tokenizer):
    row = {"prompt": "write about the ocean . " * 10, "response": "the ocean has waves ."}
    data = SFTDataset([row], tokenizer, max_length=16)
    ids = data[0]["input_ids"]
    response_ids = encode_response(tokenizer, row["response"])
    assert len(ids) == 16 and ids[-len(response_ids) :] == response_ids
    assert ids[: data[0]["prompt_len"]] == encode_prompt(tokenizer, row["prompt"])[-(16 - len(response_ids)) :]
    assert data.truncated == {"prompt_cut": 1, "response_cut": 0}
    long_response = SFTDataset([{"prompt": "hi", "response": "waves " * 40}], tokenizer, max_length=16)
    assert long_response.truncated["response_cut"] == 1 and len(long_response[0]["input_ids"]) == 16


def test_jsonl_errors_name_file_line_and_field(tmp_path):
    bad_json = _write(tmp_path / "a.jsonl", ['{"prompt": "p", "response": "r"}', '{"prompt": "p", '])
    with pytest.raises(DataError, match=r"a\.jsonl:2: not valid JSON"):
        read_sft_jsonl(bad_json)
    missing = _write(tmp_path / "b.jsonl", ['{"prompt": "p"}'])
    with pytest.raises(DataError, match=r"b\.jsonl:1: field 'response': missing"):
        read_sft_jsonl(missing)
    empty = _write(tmp_path / "c.jsonl", ["", '{"prompt": "  ", "response": "r"}'])
    with pytest.raises(DataError, match=r"c\.jsonl:2: field 'prompt': is empty"):
        read_sft_jsonl(empty)
    wrong_type = _write(tmp_path / "d.jsonl", ['{"prompt": 3, "response": "r"}'])
    with pytest.raises(DataError, match=r"d\.jsonl:1: field 'prompt': expected a string, got int"):
        read_sft_jsonl(wrong_type)
    not_object = _write(tmp_path / "e.jsonl", ["[1, 2]"])
    with pytest.raises(DataError, match=r"e\.jsonl:1: expected a JSON object"):
        read_sft_jsonl(not_object)
    with pytest.raises(DataError, match="file not found"):
        read_sft_jsonl(tmp_path / "missing.jsonl")


def test_skip_mode_counts_and_reports_every_skipped_row(tmp_path):
    path = _write(
        tmp_path / "mixed.jsonl",
        [
            '{"prompt": "p1", "response": "r1"}',
            '{"prompt": "p2"}',
            '{"prompt": "", "response": "r"}',
            '{"prompt": "p4", "response": "r4", "category": "math"}',
        ],
    )
    report = SkipReport()
    rows = read_sft_jsonl(path, on_error="skip", report=report)
    assert [r["prompt"] for r in rows] == ["p1", "p4"] and rows[1]["category"] == "math"
    assert report.kept == 2 and report.skipped == 2
    assert "mixed.jsonl:2" in report.summary() and "mixed.jsonl:3" in report.summary()
    only_bad = _write(tmp_path / "bad.jsonl", ['{"prompt": "p2"}'])
    with pytest.raises(DataError, match="no usable rows"):
        read_sft_jsonl(only_bad, on_error="skip")
    with pytest.raises(ValueError, match="on_error"):
        read_sft_jsonl(path, on_error="ignore")


def test_write_jsonl_is_atomic_and_round_trips(tmp_path):
    rows = [{"a": 1, "text": "é"}, {"a": 2}]
    path = write_jsonl(tmp_path / "x.jsonl", rows)
    assert [r for _, r in read_jsonl(path)] == rows
    assert [p.name for p in tmp_path.iterdir()] == ["x.jsonl"]
    assert json.loads(path.read_text().splitlines()[0])["text"] == "é"


def test_gym_demonstrations_keep_only_the_categories_asked_for():
    from lit_rlhf.gym import AlignmentGym
    from lit_rlhf.sft.data import gym_sft_rows

    gym = AlignmentGym(seed=0)
    rows = gym_sft_rows(gym, per_prompt=1, categories=["identity", "format"])
    assert rows and {r["category"] for r in rows} == {"identity", "format"}
    assert len(rows) == sum(r["category"] in ("identity", "format") for r in gym_sft_rows(gym, per_prompt=1))
    with pytest.raises(ConfigError, match="poetry"):
        gym_sft_rows(gym, categories=["identity", "poetry"])
