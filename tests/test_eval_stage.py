"""lit-rlhf-eval: the math of its statistics, the blind human round, and the stage on tiny checkpoints."""

import json

import pytest

from lit_rlhf.collection.votes import Vote
from lit_rlhf.evaluation.answers import length_stats, reward_model_judge, ten_point_score
from lit_rlhf.evaluation.human import human_outcomes, write_blind_pairs
from lit_rlhf.gym import AlignmentGym
from lit_rlhf.models import build_policy, save_hf_checkpoint

TINY = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}
FAST = ["eval.samples_per_prompt=1", "eval.max_new_tokens=4", "eval.probes=false"]


def test_ten_point_score_by_hand():
    assert ten_point_score(1.0, 2.0) == pytest.approx(5.5)  # half the ideal: 1 + 9 * 0.5
    assert ten_point_score(2.0, 2.0) == 10.0
    assert ten_point_score(-0.3, 2.0) == 1.0 and ten_point_score(3.0, 2.0) == 10.0  # clipped to 1-10
    with pytest.raises(ValueError, match="ideal"):
        ten_point_score(1.0, 0.0)


def test_length_stats_by_hand():
    rounds = [["a b", "", "a b c d"], ["a", "a b c", "a b c d e f"]]
    stats = length_stats(["x", "y", "y"], rounds)
    assert stats["x"] == {"mean": 1.5, "median": 1.5, "p90": 2.0, "empty": 0.0}
    assert stats["y"]["mean"] == pytest.approx((0 + 4 + 3 + 6) / 4) and stats["y"]["empty"] == 0.25
    assert stats["all"]["median"] == 2.5


def test_reward_model_judge_passes_prompts_and_responses_through():
    class Scorer:
        def score(self, prompts, responses):
            return [float(len(r)) for r in responses]

    assert reward_model_judge(Scorer())(("p", "q"), ("ab", "abcd")) == [2.0, 4.0]


def test_blind_pairs_hide_the_models_and_votes_map_back(tmp_path):
    prompts, categories = [f"prompt {i}" for i in range(40)], ["a"] * 20 + ["b"] * 20
    ours = [[f"ours {i}" for i in range(40)]]
    theirs = [[f"theirs {i}" if i else "ours 0" for i in range(40)]]  # prompt 0: identical answers
    theirs[0][39] = "  "  # an empty answer is shown as a placeholder, never as an unreadable empty text
    written = write_blind_pairs(tmp_path, prompts, categories, ("sft", theirs), {"ppo": ours}, seed=3)
    assert written["pairs"] == 39 and written["identical_answers"] == 1
    from lit_rlhf.collection.io import read_pairs

    assert "(no answer)" in {p.response_a for p in read_pairs(tmp_path / "pairs.jsonl")} | {
        p.response_b for p in read_pairs(tmp_path / "pairs.jsonl")
    }
    pairs_text = (tmp_path / "pairs.jsonl").read_text()
    assert "ppo" not in pairs_text and "sft" not in pairs_text  # blind: no model names
    key = [json.loads(line) for line in (tmp_path / "key.jsonl").read_text().splitlines()]
    orders = {row["candidate_is_a"] for row in key}
    assert orders == {True, False}  # both orders occur
    # Every labelled pair: the candidate's answer is preferred, except that pair 5 gets a tie and
    # pair 6 two opposite votes (contradictory -> tie); pairs 30+ stay unlabelled.
    votes = []
    for row in key[1:30]:
        i = int(row["prompt"].split()[1])
        ours_side = "A" if row["candidate_is_a"] else "B"
        if i == 5:
            votes.append(Vote(row["pair_id"], "p1", "tie"))
        elif i == 6:
            votes += [Vote(row["pair_id"], "p1", "A"), Vote(row["pair_id"], "p2", "B")]
        else:
            votes.append(Vote(row["pair_id"], "p1", ours_side))
    result = human_outcomes(tmp_path / "key.jsonl", votes)["ppo"]
    assert result["counts"] == {"labelled": 29, "identical": 1, "unlabelled": 10}
    assert result["outcomes"].count(1) == 27 and result["outcomes"].count(0) == 3  # identical, tie, contradictory
    assert result["outcomes"].count(-1) == 0 and len(result["categories"]) == 30


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    paths = {}
    for name, seed in (("a", 0), ("b", 1)):
        model, tokenizer = build_policy("embedded", seed=seed, tiny=TINY)
        paths[name] = str(save_hf_checkpoint(model, tokenizer, root / name))
    return paths


def test_eval_stage_writes_results_report_and_plots(compose_config, checkpoints, tmp_path):
    from lit_rlhf.run import train

    cfg = compose_config(
        "experiment=gym_eval",
        *FAST,
        "eval.probes=true",
        f"eval.baseline.path={checkpoints['a']}",
        f"+eval.candidates.same={checkpoints['a']}",
        f"eval.candidates.ppo={checkpoints['b']}",
        "~eval.candidates.dpo",
    )
    results = train(cfg)
    assert results["pairwise"]["same"]["all"]["tie"] == 1.0  # a model against itself only ties
    n = len(AlignmentGym(seed=0).prompts("test"))
    assert results["pairwise"]["ppo"]["all"]["n"] == n
    assert set(results["absolute"]) == {"sft", "same", "ppo"}
    assert all(1.0 <= v <= 10.0 for scores in results["absolute"].values() for v in scores.values())
    assert results["absolute"]["same"] == results["absolute"]["sft"]
    assert set(results["probes"]["ppo"]) == {"identity", "format", "identity_refused", "format_refused"}
    out = tmp_path / "eval"
    assert json.loads((out / "results.json").read_text())["pairwise"]["ppo"] == results["pairwise"]["ppo"]
    report = (out / "report.md").read_text()
    assert "### ppo vs sft" in report and "Absolute scores (1-10)" in report
    for png in ("pairwise.png", "absolute_scores.png", "lengths.png"):
        assert (out / png).stat().st_size > 1000


def test_a_candidate_with_several_checkpoints_is_pooled_over_them(compose_config, checkpoints, tmp_path):
    from lit_rlhf.run import train

    single = train(
        compose_config(
            "experiment=gym_eval",
            *FAST,
            f"eval.baseline.path={checkpoints['a']}",
            "~eval.candidates",
            f"+eval.candidates={{b: {checkpoints['b']}}}",
        )
    )
    pooled = train(
        compose_config(
            "experiment=gym_eval",
            *FAST,
            f"eval.baseline.path={checkpoints['a']}",
            "~eval.candidates",
            f"+eval.candidates={{b: [{checkpoints['b']}, {checkpoints['a']}]}}",
        )
    )
    one, both = single["pairwise"]["b"]["all"], pooled["pairwise"]["b"]["all"]
    assert both["n"] == 2 * one["n"]
    # the second checkpoint is the baseline itself: it only ties, so the pooled wins are b's, halved
    assert both["win"] == pytest.approx(one["win"] / 2) and both["loss"] == pytest.approx(one["loss"] / 2)
    runs = pooled["per_checkpoint"]["b"]
    assert [r["checkpoint"] for r in runs] == [checkpoints["b"], checkpoints["a"]]
    assert runs[0]["win_minus_loss"] == one["win_minus_loss"] and runs[1]["tie"] == 1.0
    assert "pooled over 2 training runs" in (tmp_path / "eval" / "report.md").read_text()


def test_human_round_through_the_stage_matches_the_gold_judge_when_people_agree_with_it(
    compose_config, checkpoints, tmp_path
):
    from lit_rlhf.collection.storage import AnnotationStore
    from lit_rlhf.run import train

    overrides = [
        "experiment=gym_eval",
        *FAST,
        f"eval.baseline.path={checkpoints['a']}",
        f"eval.candidates.ppo={checkpoints['b']}",
        "~eval.candidates.dpo",
    ]
    gold = train(compose_config(*overrides))["pairwise"]["ppo"]
    first = train(compose_config(*overrides, "eval.judge=human"))
    assert first["status"] == "awaiting labels"
    store = AnnotationStore(tmp_path / "eval" / "human" / "labels.sqlite")
    from lit_rlhf.collection.io import read_pairs

    store.add_pairs(read_pairs(first["pairs_file"]))
    judge = AlignmentGym(seed=0).judge
    while (pair := store.next_pair("rater")) is not None:  # a rater who agrees with the gold judge
        left, right = (judge.score(pair["prompt"], pair[side]).overall for side in ("left", "right"))
        store.submit(pair["pair_id"], "rater", "tie" if left == right else ("left" if left > right else "right"))
    store.close()
    second = train(compose_config(*overrides, "eval.judge=human"))
    human = second["pairwise"]["ppo"]
    assert second["human_counts"]["ppo"]["unlabelled"] == 0
    assert {k: human["all"][k] for k in ("n", "win", "tie", "loss")} == {
        k: gold["all"][k] for k in ("n", "win", "tie", "loss")
    }
    assert "Human labels:" in (tmp_path / "eval" / "report.md").read_text()


def test_bad_eval_settings_name_what_is_wrong(compose_config, checkpoints, tmp_path):
    from lit_rlhf.data.errors import DataError
    from lit_rlhf.run import train

    base = ["experiment=gym_eval", *FAST, f"eval.baseline.path={checkpoints['a']}", "~eval.candidates.dpo"]
    with pytest.raises(FileNotFoundError, match="eval model 'ppo'"):
        train(compose_config(*base, f"eval.candidates.ppo={tmp_path}/missing"))
    with pytest.raises(ValueError, match="eval.judge must be one of"):
        train(compose_config(*base, "eval.judge=oracle"))
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "hello there", "category": "chat"}\n{"category": "chat"}\n')
    with pytest.raises(ValueError, match="gym prompts only"):
        train(compose_config(*base, f"eval.prompts={prompts}"))
    with pytest.raises(DataError, match=r"prompts.jsonl:2: field 'prompt'"):
        train(compose_config(*base, f"eval.prompts={prompts}", "eval.judge=reward_model"))
