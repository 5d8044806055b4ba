"""Agreement between annotators (pairwise agreement, Cohen's and Fleiss' kappa) and length statistics.

The kappa functions are pure: plain label lists or count tables in, a float out.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence

from lit_rlhf.collection.response_pairs import Comparison
from lit_rlhf.collection.votes import CHOICES, Vote

LENGTH_BUCKETS = ((1, 2), (3, 5), (6, 10), (11, 20), (21, None))


def cohen_kappa(labels_1: Sequence[Hashable], labels_2: Sequence[Hashable]) -> float:
    """Cohen's kappa of two raters over the same items: (p_o - p_e) / (1 - p_e).

    NaN when chance agreement is 1 (both raters always give the same single label): kappa is undefined there.
    """
    if len(labels_1) != len(labels_2) or not labels_1:
        raise ValueError(f"need two equally long, non-empty label lists, got {len(labels_1)} and {len(labels_2)}")
    n = len(labels_1)
    observed = sum(a == b for a, b in zip(labels_1, labels_2)) / n
    m1, m2 = Counter(labels_1), Counter(labels_2)
    expected = sum(m1[c] * m2[c] for c in m1) / (n * n)
    if expected == 1.0:
        return math.nan
    return (observed - expected) / (1.0 - expected)


def fleiss_kappa(table: Sequence[Sequence[int]]) -> float:
    """Fleiss' kappa from an items x categories table of counts; every item needs the same number of raters (>= 2)."""
    if not table:
        raise ValueError("empty table")
    raters = {sum(row) for row in table}
    if len(raters) != 1 or next(iter(raters)) < 2:
        raise ValueError(f"every item needs the same number (>= 2) of raters, got {sorted(raters)}")
    n = next(iter(raters))
    items = len(table)
    per_item = [(sum(c * c for c in row) - n) / (n * (n - 1)) for row in table]
    p_bar = sum(per_item) / items
    shares = [sum(row[j] for row in table) / (items * n) for j in range(len(table[0]))]
    p_e = sum(p * p for p in shares)
    if p_e == 1.0:
        return math.nan
    return (p_bar - p_e) / (1.0 - p_e)


def _labels_by_item(votes: Iterable[Vote]) -> dict[str, dict[str, str]]:
    by_item: dict[str, dict[str, str]] = defaultdict(dict)
    for v in votes:
        by_item[v.pair_id][v.annotator] = v.choice
    return by_item


def agreement_report(votes: Iterable[Vote], min_common: int = 5) -> dict:
    """Overall and per-annotator agreement.

    Overall: share of agreeing annotator pairs on the same item, Fleiss' kappa over the items with the
    most common number of raters, mean Cohen's kappa over annotator pairs with >= ``min_common`` shared items.
    Per annotator: its pairwise agreement with the others, and its mean Cohen's kappa with each other annotator.
    """
    by_item = _labels_by_item(votes)
    agree, total = Counter(), Counter()
    shared: dict[tuple[str, str], tuple[list, list]] = defaultdict(lambda: ([], []))
    for labels in by_item.values():
        for (a1, l1), (a2, l2) in itertools.combinations(sorted(labels.items()), 2):
            for who in (a1, a2):
                total[who] += 1
                agree[who] += l1 == l2
            shared[(a1, a2)][0].append(l1)
            shared[(a1, a2)][1].append(l2)
    pair_kappas = {k: cohen_kappa(*v) for k, v in shared.items() if len(v[0]) >= min_common}
    per_annotator = {}
    for who in sorted({a for labels in by_item.values() for a in labels}):
        kappas = [k for (a1, a2), k in pair_kappas.items() if who in (a1, a2) and not math.isnan(k)]
        per_annotator[who] = {
            "items": sum(who in labels for labels in by_item.values()),
            "pairwise_agreement": agree[who] / total[who] if total[who] else math.nan,
            "cohen_kappa_mean": sum(kappas) / len(kappas) if kappas else math.nan,
        }
    rater_counts = Counter(len(labels) for labels in by_item.values() if len(labels) >= 2)
    fleiss = math.nan
    if rater_counts:
        n = rater_counts.most_common(1)[0][0]
        table = [[Counter(labels.values())[c] for c in CHOICES] for labels in by_item.values() if len(labels) == n]
        fleiss = fleiss_kappa(table)
    valid = [k for k in pair_kappas.values() if not math.isnan(k)]
    n_pairs = sum(total.values()) / 2
    return {
        "pairwise_agreement": sum(agree.values()) / 2 / n_pairs if n_pairs else math.nan,
        "fleiss_kappa": fleiss,
        "fleiss_items": rater_counts.most_common(1)[0][1] if rater_counts else 0,
        "cohen_kappa_mean": sum(valid) / len(valid) if valid else math.nan,
        "per_annotator": per_annotator,
    }


def bucket_of(diff: int, buckets=LENGTH_BUCKETS) -> str | None:
    for lo, hi in buckets:
        if diff >= lo and (hi is None or diff <= hi):
            return f"{lo}-{hi}" if hi is not None else f"{lo}+"
    return None


def longer_win_rates(comparisons: Iterable[tuple[int, int, str]], buckets=LENGTH_BUCKETS) -> dict[str, dict]:
    """How often the longer response wins, per bucket of |length difference|.

    ``comparisons`` are ``(len_a, len_b, winner)`` with winner "A"/"B"; ties and equal lengths are skipped.
    Returns ``{bucket: {"n": count, "longer_wins": share}}`` plus an "all" entry.
    """
    wins, counts = Counter(), Counter()
    for len_a, len_b, winner in comparisons:
        if winner not in ("A", "B") or len_a == len_b:
            continue
        longer_won = (len_a > len_b) == (winner == "A")
        for key in (bucket_of(abs(len_a - len_b), buckets), "all"):
            if key is not None:
                counts[key] += 1
                wins[key] += longer_won
    order = [bucket_of(lo, buckets) for lo, _ in buckets] + ["all"]
    return {k: {"n": counts[k], "longer_wins": wins[k] / counts[k]} for k in order if counts[k]}


def length_statistics(pairs: Sequence[Comparison], votes: Iterable[Vote], judge=None) -> dict:
    """Longer-wins rates of individual votes, and (with a gold judge) of the gold preference on the same pairs,
    plus logistic fits of the length bias in utility per 10 words (see ``fit_length_bias``): one per
    annotator, their median as ``length_bias``, and a pooled fit over all votes for comparison."""
    by_id = {p.pair_id: p for p in pairs}
    votes = [v for v in votes if v.pair_id in by_id]
    stats = {"votes": longer_win_rates((by_id[v.pair_id].len_a, by_id[v.pair_id].len_b, v.choice) for v in votes)}
    if judge is not None:
        utility = {
            p.pair_id: (judge.score(p.prompt, p.response_a).overall, judge.score(p.prompt, p.response_b).overall)
            for p in pairs
        }
        gold = (
            (p.len_a, p.len_b, "A" if utility[p.pair_id][0] > utility[p.pair_id][1] else "B")
            for p in pairs
            if utility[p.pair_id][0] != utility[p.pair_id][1]
        )
        stats["gold"] = longer_win_rates(gold)
        decisive = [v for v in votes if v.choice in ("A", "B")]

        def fit(subset):
            return fit_length_bias(
                [utility[v.pair_id][0] - utility[v.pair_id][1] for v in subset],
                [by_id[v.pair_id].len_a - by_id[v.pair_id].len_b for v in subset],
                [v.choice == "A" for v in subset],
            )

        # Per annotator, because each has its own noise: pooling annotators of different temperatures
        # (and random ones) shrinks the utility weight more than the length weight and inflates the ratio.
        per_annotator = {
            a: fit([v for v in decisive if v.annotator == a]) for a in sorted({v.annotator for v in decisive})
        }
        estimates = sorted(f["length_bias"] for f in per_annotator.values() if not math.isnan(f["length_bias"]))
        median = (estimates[(len(estimates) - 1) // 2] + estimates[len(estimates) // 2]) / 2 if estimates else math.nan
        stats["fitted_length_bias"] = {
            **fit(decisive),
            "pooled_length_bias": fit(decisive)["length_bias"],
            "length_bias": median,
            "per_annotator": per_annotator,
        }
    return stats


def fit_length_bias(
    delta_utility: Sequence[float], delta_length: Sequence[int], prefers_a: Sequence[bool], steps: int = 200
) -> dict:
    """Fit P(A) = sigmoid(w_u * du + w_l * dlen / 10) by Newton's method; the length bias is w_l / w_u.

    This is the annotator model's own form (bias in utility per 10 extra words), so on the gym the
    estimate recovers the configured ``length_bias``. Returns NaN when there is too little data.
    """
    import torch

    if len(delta_utility) < 10:
        return {"length_bias": math.nan, "w_utility": math.nan, "w_length": math.nan, "n": len(delta_utility)}
    x = torch.tensor([[float(u), float(d) / 10.0] for u, d in zip(delta_utility, delta_length)], dtype=torch.float64)
    y = torch.tensor([float(p) for p in prefers_a], dtype=torch.float64)
    w = torch.zeros(2, dtype=torch.float64)
    for _ in range(steps):
        p = torch.sigmoid(x @ w)
        grad = x.T @ (p - y) + 1e-4 * w  # a tiny ridge keeps separable data finite
        hessian = (x.T * (p * (1 - p))) @ x + 1e-4 * torch.eye(2, dtype=torch.float64)
        step = torch.linalg.solve(hessian, grad)
        w = w - step
        if step.abs().max() < 1e-10:
            break
    w_u, w_l = float(w[0]), float(w[1])
    return {
        "length_bias": w_l / w_u if abs(w_u) > 1e-9 else math.nan,
        "w_utility": w_u,
        "w_length": w_l,
        "n": len(delta_utility),
    }
