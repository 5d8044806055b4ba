"""Pairwise comparison of two policies: win / tie / loss per category with bootstrap confidence intervals."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence


def outcomes(scores_a: list[float], scores_b: list[float], tie_margin: float = 1e-6) -> list[int]:
    """+1 where A scores higher than B by more than ``tie_margin``, -1 where lower, 0 for a tie."""
    if len(scores_a) != len(scores_b):
        raise ValueError(f"got {len(scores_a)} scores for A but {len(scores_b)} for B")
    return [0 if abs(a - b) <= tie_margin else (1 if a > b else -1) for a, b in zip(scores_a, scores_b)]


def bootstrap_interval(
    values: list[int], resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values``."""
    if not values:
        return (float("nan"), float("nan"))
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(rng.choice(values) for _ in range(n)) / n for _ in range(resamples))
    lo = means[int((1 - level) / 2 * resamples)]
    hi = means[min(resamples - 1, int((1 + level) / 2 * resamples))]
    return (lo, hi)


def by_category(values: Sequence, categories: Sequence[str]) -> dict[str, list]:
    """Values grouped per category, plus ``all`` holding every value once, categories in sorted order.

    A value whose category is ``"all"`` (prompts without a category default to it) belongs to the
    ``all`` group only, not twice.
    """
    groups: dict[str, list] = defaultdict(list)
    for value, category in zip(values, categories, strict=True):
        if category != "all":
            groups[category].append(value)
        groups["all"].append(value)
    return dict(sorted(groups.items()))


def win_tie_loss(results: list[int], categories: list[str], resamples: int = 2000, seed: int = 0) -> dict:
    """Per category and ``all``: win/tie/loss rates, wins minus losses (in points) and its 95% interval."""
    table = {}
    for category, values in by_category(results, categories).items():
        n = len(values)
        lo, hi = bootstrap_interval(values, resamples, seed=seed)
        table[category] = {
            "n": n,
            "win": values.count(1) / n,
            "tie": values.count(0) / n,
            "loss": values.count(-1) / n,
            "win_minus_loss": 100 * sum(values) / n,
            "ci95": [100 * lo, 100 * hi],
        }
    return table


def format_table(table: dict, name_a: str, name_b: str) -> str:
    lines = [f"{name_a} vs {name_b}: win / tie / loss, wins minus losses in points [95% bootstrap interval]"]
    for category, row in table.items():
        lines.append(
            f"  {category:<9} n={row['n']:<4} {row['win']:.2f} / {row['tie']:.2f} / {row['loss']:.2f}   "
            f"{row['win_minus_loss']:+6.1f} [{row['ci95'][0]:+.1f}, {row['ci95'][1]:+.1f}]"
        )
    return "\n".join(lines)
