from lit_rlhf.data.errors import SkipReport
from lit_rlhf.gym import AlignmentGym
from lit_rlhf.gym.annotators import Label
from lit_rlhf.gym.comparisons import gold_margins, gym_preference_rows, majority_vote

FIELDS = {"prompt", "chosen", "rejected", "category", "chosen_len", "rejected_len", "votes", "provenance"}


def test_majority_vote_and_ties():
    def labels(*choices):
        return [Label(f"a{i}", c, {}, {}) for i, c in enumerate(choices)]

    assert majority_vote(labels("A", "B", "A")) == ("A", {"A": 2, "B": 1, "tie": 0})
    assert majority_vote(labels("A", "B", "tie"))[0] == "tie"
    assert majority_vote(labels("tie", "tie", "B"))[0] == "B"


def test_rows_have_the_collection_schema_and_are_seeded():
    gym = AlignmentGym(seed=0)
    report = SkipReport()
    rows = gym_preference_rows(gym, "val", n_annotators=2, seed=1, report=report)
    assert rows and all(set(r) == FIELDS for r in rows)
    assert all(r["chosen"] != r["rejected"] and r["chosen_len"] == len(r["chosen"].split()) for r in rows)
    assert report.counts["majority tie"] > 0  # two annotators disagree often enough
    assert report.kept == len(rows) and rows.report is report
    assert rows == gym_preference_rows(gym, "val", n_annotators=2, seed=1)
    assert rows != gym_preference_rows(gym, "val", n_annotators=2, seed=2)
    val_prompts = {p.text for p in gym.prompts("val")}
    assert {r["prompt"] for r in rows} <= val_prompts


def test_length_bias_makes_longer_answers_win_more_often():
    gym = AlignmentGym(seed=0)

    def longer_win_share(bias):
        rows = gym_preference_rows(gym, "train", categories=["writing"], length_bias=bias, n_annotators=3)
        decided = [r for r in rows if r["chosen_len"] != r["rejected_len"]]
        return sum(r["chosen_len"] > r["rejected_len"] for r in decided) / len(decided)

    assert longer_win_share(1.0) > longer_win_share(0.0) + 0.2


def test_gold_margins_agree_with_unbiased_majorities_mostly():
    gym = AlignmentGym(seed=0)
    rows = gym_preference_rows(gym, "train", n_annotators=5, temperature=0.1)
    margins = [m for m in gold_margins(gym.judge, rows) if m != 0]
    assert sum(m > 0 for m in margins) / len(margins) > 0.8
