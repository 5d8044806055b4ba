"""Pairs labelled best/worst by a reward: selection, skips, sampling, and reuse of the written file."""

import json

import pytest

from lit_rlhf.data.errors import SkipReport
from lit_rlhf.dpo.policy_pairs import best_worst_pairs, load_or_build_pairs, policy_pairs, sample_and_score

ROWS = [
    {"prompt": "p0", "category": "math"},
    {"prompt": "p1", "category": "writing"},
    {"prompt": "p2"},
    {"prompt": "p3"},
]


def test_best_becomes_chosen_worst_rejected_and_ties_are_skipped_and_counted():
    responses = [["a", "b", "c"], ["x", "y", "z"], ["same", "same", "same"], ["u", "v", "u"]]
    scores = [[0.1, 0.9, -0.5], [1.0, 1.0, 1.0], [0.0, 0.5, 1.0], [2.0, 0.0, 2.0]]
    report = SkipReport()
    pairs = best_worst_pairs(ROWS, responses, scores, report)
    assert [(p["prompt"], p["chosen"], p["rejected"]) for p in pairs] == [("p0", "b", "c"), ("p3", "u", "v")]
    assert pairs[0]["category"] == "math" and pairs[1]["category"] == "all"
    assert pairs[0]["margin"] == pytest.approx(1.4) and pairs[0]["chosen_score"] == pytest.approx(0.9)
    assert report.counts == {"tied scores": 1, "identical responses": 1} and report.kept == 2
    assert report.examples["tied scores"] == ["prompt 1"]


def test_mismatched_inputs_are_rejected():
    with pytest.raises(ValueError, match="need >= 2 responses"):
        best_worst_pairs(ROWS[:1], [["only"]], [[1.0]])
    with pytest.raises(ValueError, match="prompts"):
        best_worst_pairs(ROWS, [["a", "b"]], [[1.0, 2.0]])


def word_count(prompts, responses):  # a toy reward: longer is better
    return [float(len(r.split())) for r in responses]


def test_policy_pairs_pick_the_longest_and_shortest_sample_and_are_seeded(policy, gym):
    model, tokenizer = policy
    rows = [{"prompt": p.text, "category": p.category} for p in gym.prompts("train", ["harmful"])[:6]]
    responses, scores = sample_and_score(
        model, tokenizer, word_count, [r["prompt"] for r in rows], 3, seed=5, max_new_tokens=8
    )
    assert all(len(r) == 3 for r in responses) and scores == [[float(len(t.split())) for t in r] for r in responses]
    pairs, report = policy_pairs(model, tokenizer, word_count, rows, n=3, seed=5, max_new_tokens=8)
    assert report.kept + report.skipped == len(rows) and report.kept == len(pairs)
    for pair in pairs:
        texts = responses[[r["prompt"] for r in rows].index(pair["prompt"])]
        assert len(pair["chosen"].split()) == max(len(t.split()) for t in texts)
        assert len(pair["rejected"].split()) == min(len(t.split()) for t in texts)
    again, _ = policy_pairs(model, tokenizer, word_count, rows, n=3, seed=5, max_new_tokens=8)
    assert again == pairs


def test_pairs_file_is_reused_with_the_same_settings_and_refused_with_others(tmp_path):
    calls = []

    def build():
        calls.append(1)
        report = SkipReport()
        return best_worst_pairs(ROWS[:1], [["a", "b"]], [[0.0, 1.0]], report), report

    path = tmp_path / "pairs.jsonl"
    rows, report = load_or_build_pairs(path, {"n": 2}, build)
    assert report["reused"] is False and path.exists()
    again, report = load_or_build_pairs(path, {"n": 2}, build)
    assert len(calls) == 1 and report["reused"] is True and report["kept"] == 1
    assert [(r["chosen"], r["rejected"]) for r in again] == [("b", "a")]
    assert json.loads((tmp_path / "pairs.jsonl.meta.json").read_text())["settings"] == {"n": 2}
    # other settings (e.g. a retrained reward model's id): built again, never reused
    rows, report = load_or_build_pairs(path, {"n": 3}, build)
    assert len(calls) == 2 and report["reused"] is False
    assert json.loads((tmp_path / "pairs.jsonl.meta.json").read_text())["settings"] == {"n": 3}


def test_a_pairs_file_without_its_meta_file_is_rebuilt(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"prompt": "half", "chosen": "written", "rejected": "file"}\n')

    def build():
        report = SkipReport()
        return best_worst_pairs(ROWS[:1], [["a", "b"]], [[0.0, 1.0]], report), report

    rows, report = load_or_build_pairs(path, {"n": 2}, build)
    assert report["reused"] is False and rows[0]["prompt"] == "p0"
