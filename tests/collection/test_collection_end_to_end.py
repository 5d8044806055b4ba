"""Gym -> sampled pairs -> simulated votes -> filtered preference set, on the untrained embedded model."""

import json

import pytest

from lit_rlhf.collection.collect import gym_prompts
from lit_rlhf.collection.io import PREFERENCE_FIELDS, load_hf, read_pairs, read_preferences, read_votes
from lit_rlhf.collection.response_pairs import Decoding, build_comparisons, sample_responses
from lit_rlhf.data.errors import DataError
from lit_rlhf.gym import AlignmentGym
from lit_rlhf.models import build_policy


@pytest.fixture(scope="module")
def tiny_policy():
    return build_policy("embedded", seed=0, tiny={"hidden_size": 32, "num_layers": 1, "intermediate_size": 64})


@pytest.mark.slow  # samples every prompt twice
def test_sampling_is_seeded_and_records_the_checkpoint(tiny_policy):
    model, tokenizer = tiny_policy
    prompts = gym_prompts(AlignmentGym(0), "val")[:6]
    decoding = Decoding(max_new_tokens=6, temperature=1.0, top_p=0.9, batch_size=4)
    rows = sample_responses(model, tokenizer, prompts, k=3, decoding=decoding, seed=5, checkpoint="ckpt")
    again = sample_responses(model, tokenizer, prompts, k=3, decoding=decoding, seed=5, checkpoint="ckpt")
    other = sample_responses(model, tokenizer, prompts, k=3, decoding=decoding, seed=6, checkpoint="ckpt")
    assert rows == again and rows != other
    assert all(len(r["responses"]) == 3 and r["checkpoint"] == "ckpt" for r in rows)
    assert all(r["lengths"] == [len(x.split()) for x in r["responses"]] for r in rows)
    pairs = build_comparisons(rows)
    assert 0 < len(pairs) <= 3 * len(prompts)


def test_stage_writes_the_filtered_set_and_report(compose_config, tmp_path):
    from lit_rlhf.collection.stage import run

    cfg = compose_config(
        "experiment=gym_preferences",
        "stage=preferences",
        "model=embedded",
        "preferences.prompts.split=val",
        "preferences.prompts.max_per_category=12",
        "preferences.k=3",
        "preferences.decoding.max_new_tokens=8",
        "model.tiny={hidden_size: 32, num_layers: 1}",
        "preferences.annotators.length_bias=0.5",
    )
    summary = run(cfg)
    out = tmp_path / "preferences"
    assert summary["preferences"] == str(out / "preferences.jsonl")
    rows = read_preferences(out / "preferences.jsonl")
    assert len(rows) == summary["rows"] > 0
    assert all(set(r) == set(PREFERENCE_FIELDS) for r in rows)
    assert all(r["chosen"] != r["rejected"] and r["votes"]["chosen"] > r["votes"]["rejected"] for r in rows)
    assert all(r["provenance"]["checkpoint"] == "embedded" for r in rows)
    report = json.loads((out / "report.json").read_text())
    f = report["filtering"]
    assert f["kept"] + sum(f["dropped"].values()) == f["pairs"] == len(read_pairs(out / "pairs.jsonl"))
    assert f["dropped"]["tie"] > 0  # tie_rate 0.1 with three annotators per pair
    assert report["prompts"]["dropped_total"]  # the usage-log noise was filtered
    assert len(read_votes(out / "votes.jsonl")) == report["votes"]["total"]
    assert load_hf(out / "preferences_hf") == rows
    # The untrained model's answers are near-worthless to the gold judge, so the length bias shows up
    # directly: the longer response wins votes more often than it wins under the gold judge.
    length = report["length"]
    assert length["votes"]["all"]["longer_wins"] > length["gold"]["all"]["longer_wins"]


def test_missing_checkpoint_names_the_path_and_the_fix(compose_config, tmp_path):
    from lit_rlhf.collection.stage import run

    cfg = compose_config("experiment=gym_preferences", "stage=preferences")
    with pytest.raises(FileNotFoundError, match="experiment=gym_sft"):
        run(cfg)


def test_bad_imports_name_file_line_and_field(tmp_path):
    bad = tmp_path / "pairs.jsonl"
    bad.write_text('{"prompt": "q", "response_a": "a", "response_b": "b"}\n{"prompt": "q", "response_a": 3}\n')
    with pytest.raises(DataError, match=r"pairs.jsonl:2: field 'response_a'"):
        read_pairs(bad)
    bad.write_text(
        '{"prompt": "q", "response_a": "a", "response_b": "b", "pair_id": "x"}\n'
        '{"prompt": "r", "response_a": "a", "response_b": "b", "pair_id": "x"}\n'
    )
    with pytest.raises(DataError, match="duplicate pair id 'x'"):
        read_pairs(bad)
    votes = tmp_path / "votes.jsonl"
    votes.write_text(
        '{"pair_id": "x", "annotator": "a", "choice": "A"}\n{"pair_id": "y", "annotator": "a", "choice": "A"}\n'
    )
    with pytest.raises(DataError, match=r"votes.jsonl:2: field 'pair_id': unknown pair id 'y'"):
        read_votes(votes, known_pairs={"x"})
    votes.write_text('{"pair_id": "x", "annotator": "a", "choice": "maybe"}\n')
    with pytest.raises(DataError, match=r":1: field 'choice'"):
        read_votes(votes)
    votes.write_text('{"pair_id": "x", "annotator": "a", "choice": "A"\n')
    with pytest.raises(DataError, match="not valid JSON"):
        read_votes(votes)


def test_label_studio_import(tmp_path):
    from lit_rlhf.collection.io import import_label_studio

    export = [
        {
            "id": 7,
            "data": {"prompt": "q", "answer1": "left answer", "answer2": "right answer"},
            "annotations": [
                {"id": 1, "completed_by": 3, "result": [{"type": "pairwise", "value": {"selected": "right"}}]},
                {"id": 2, "completed_by": {"id": 4, "email": "x@y"}, "was_cancelled": True, "result": []},
            ],
        }
    ]
    path = tmp_path / "ls.json"
    path.write_text(json.dumps(export))
    pairs, votes = import_label_studio(path)
    assert pairs[0].response_a == "left answer" and [(v.annotator, v.choice) for v in votes] == [("3", "B")]
    export[0]["annotations"][0]["result"][0]["value"]["selected"] = "up"
    path.write_text(json.dumps(export))
    with pytest.raises(DataError, match=r"task 7.*'left' or 'right'"):
        import_label_studio(path)
