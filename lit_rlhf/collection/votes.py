"""Annotator votes on comparison pairs, and labelling pairs with the gym's simulated annotators."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from lit_rlhf.collection.response_pairs import Comparison

CHOICES = ("A", "B", "tie")
CRITERIA = ("helpfulness", "harmlessness", "fluency")
RATING_RANGE = (1, 5)


@dataclass(frozen=True)
class Vote:
    """One annotator's verdict on one pair, in canonical A/B terms (whatever order the pair was shown in).

    ``shown_order`` is "AB" when A was shown on the left, "BA" when B was; times are Unix seconds.
    """

    pair_id: str
    annotator: str
    choice: str
    ratings_a: dict[str, int] = field(default_factory=dict)
    ratings_b: dict[str, int] = field(default_factory=dict)
    source: str = "simulated"
    shown_order: str = "AB"
    shown_at: float | None = None
    submitted_at: float | None = None

    def to_row(self) -> dict:
        return asdict(self)


def check_choice(choice) -> str:
    if choice not in CHOICES:
        raise ValueError(f"choice must be one of {list(CHOICES)}, got {choice!r}")
    return choice


def check_ratings(ratings) -> dict[str, int]:
    """Ratings must give every criterion an integer 1-5; an empty dict means "not rated"."""
    if not isinstance(ratings, dict):
        raise ValueError(f"ratings must be an object, got {type(ratings).__name__}")
    if not ratings:
        return {}
    lo, hi = RATING_RANGE
    unknown = set(ratings) - set(CRITERIA)
    if unknown or set(ratings) != set(CRITERIA):
        raise ValueError(f"ratings need exactly the criteria {list(CRITERIA)}, got {sorted(ratings)}")
    for key, value in ratings.items():
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"rating {key!r} must be an integer {lo}-{hi}, got {value!r}")
    return dict(ratings)


def annotate_with_simulators(
    pairs: Sequence[Comparison],
    annotators: Sequence,
    judge,
    per_pair: int | None = None,
    seed: int = 0,
) -> list[Vote]:
    """Label every pair with ``per_pair`` annotators drawn from the pool (all of them when None).

    Which annotators see a pair is seeded by the pair id; each pair is shown in a random order
    (recorded), as a human would see it, and the verdict is mapped back to A/B.
    """
    if per_pair is not None and not 1 <= per_pair <= len(annotators):
        raise ValueError(f"per_pair must be in [1, {len(annotators)}], got {per_pair}")
    votes = []
    for pair in pairs:
        rng = random.Random(f"{seed}:assign:{pair.pair_id}")
        chosen = list(annotators) if per_pair is None else rng.sample(list(annotators), per_pair)
        for annotator in chosen:
            flipped = rng.random() < 0.5
            left, right = (pair.response_b, pair.response_a) if flipped else (pair.response_a, pair.response_b)
            label = annotator.label(pair.prompt, left, right, judge, seed=seed)
            choice = {"A": "B", "B": "A", "tie": "tie"}[label.choice] if flipped else label.choice
            ratings_a, ratings_b = (label.ratings_b, label.ratings_a) if flipped else (label.ratings_a, label.ratings_b)
            votes.append(
                Vote(
                    pair.pair_id,
                    label.annotator,
                    choice,
                    ratings_a,
                    ratings_b,
                    source="simulated",
                    shown_order="BA" if flipped else "AB",
                )
            )
    return votes
