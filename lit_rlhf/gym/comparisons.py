"""Labelled preference pairs straight from the gym, without running a policy or the collection stage.

For each prompt of a split, two responses are drawn from the gym's own response
distribution (each is ideal with probability ``ideal_share``, else one of the category's
flawed responses), a pool of simulated annotators labels the pair, and the majority
decides. Ties -- an equal number of votes for both sides, including all-tie verdicts -- are
dropped and counted, as are pairs whose two responses stayed identical after ``REDRAWS``
fresh draws of the second one (some prompts have a single ideal answer). Rows use the
schema the collection stage writes: ``prompt, chosen, rejected, category, chosen_len,
rejected_len, votes, provenance`` (lengths in words).
"""

from __future__ import annotations

import random
from collections import Counter

from lit_rlhf.data.errors import ConfigError, SkipReport
from lit_rlhf.data.preference_files import PreferenceRows
from lit_rlhf.gym.responses import flawed_response, ideal_response

REDRAWS = 3


def draw_response(prompt, rng: random.Random, ideal_share: float) -> str:
    """One response from the gym's mixture: ideal (varied) with probability ``ideal_share``, else flawed."""
    return ideal_response(prompt, rng) if rng.random() < ideal_share else flawed_response(prompt, rng)


def majority_vote(labels) -> tuple[str, dict[str, int]]:
    """``("A" | "B" | "tie", counts)`` from annotator labels; equal A and B counts make a tie."""
    counts = Counter(label.choice for label in labels)
    votes = {"A": counts.get("A", 0), "B": counts.get("B", 0), "tie": counts.get("tie", 0)}
    if votes["A"] == votes["B"]:
        return "tie", votes
    return ("A" if votes["A"] > votes["B"] else "B"), votes


def gym_preference_rows(
    gym,
    split: str = "train",
    pairs_per_prompt: int = 1,
    n_annotators: int = 3,
    ideal_share: float = 0.4,
    temperature: float = 0.3,
    length_bias: float = 0.0,
    tie_rate: float = 0.0,
    inconsistent_share: float = 0.0,
    categories: list[str] | None = None,
    seed: int = 0,
    report: SkipReport | None = None,
) -> list[dict]:
    """Preference rows for the prompts of ``split``, labelled by majority vote of ``n_annotators``.

    Seeded: the same arguments give the same rows. ``report`` (a ``SkipReport``) counts
    dropped pairs by reason ("majority tie", "identical responses").
    """
    if not 0.0 <= ideal_share <= 1.0:
        raise ConfigError(f"ideal_share must be in [0, 1], got {ideal_share}")
    if pairs_per_prompt < 1:
        raise ConfigError(f"pairs_per_prompt must be >= 1, got {pairs_per_prompt}")
    report = report if report is not None else SkipReport()
    annotators = gym.annotators(
        n_annotators,
        temperature=temperature,
        length_bias=length_bias,
        tie_rate=tie_rate,
        inconsistent_share=inconsistent_share,
    )
    rows = []
    for prompt in gym.prompts(split, categories):
        rng = random.Random(f"{seed}:comparisons:{split}:{prompt.text}")
        for k in range(pairs_per_prompt):
            a, b = draw_response(prompt, rng, ideal_share), draw_response(prompt, rng, ideal_share)
            for _ in range(REDRAWS):  # some categories have few distinct responses; try again before giving up
                if a != b:
                    break
                b = draw_response(prompt, rng, ideal_share)
            where = f"{split}:{prompt.text!r}#{k}"
            if a == b:
                report.skip("identical responses", where)
                continue
            labels = [ann.label(prompt.text, a, b, gym.judge, seed=seed * 1000 + k) for ann in annotators]
            winner, votes = majority_vote(labels)
            if winner == "tie":
                report.skip("majority tie", where)
                continue
            chosen, rejected = (a, b) if winner == "A" else (b, a)
            rows.append(
                {
                    "prompt": prompt.text,
                    "chosen": chosen,
                    "rejected": rejected,
                    "category": prompt.category,
                    "chosen_len": len(chosen.split()),
                    "rejected_len": len(rejected.split()),
                    "votes": {
                        "chosen": votes[winner],
                        "rejected": votes["B" if winner == "A" else "A"],
                        "tie": votes["tie"],
                    },
                    "provenance": {
                        "source": "gym",
                        "split": split,
                        "seed": seed,
                        "annotators": [ann.name for ann in annotators],
                        "length_bias": length_bias,
                    },
                }
            )
    report.kept += len(rows)
    return PreferenceRows(rows, report)


def gold_margins(judge, rows: list[dict]) -> list[float]:
    """Gold-judge ``overall(chosen) - overall(rejected)`` per row: > 0 where the label agrees with the judge."""
    return [
        judge.score(r["prompt"], r["chosen"]).overall - judge.score(r["prompt"], r["rejected"]).overall for r in rows
    ]
