"""Held-out reward-model metrics with torchmetrics (synchronised across ranks by torchmetrics itself)."""

from __future__ import annotations

import math

import torch
from torchmetrics import MeanMetric, Metric, PearsonCorrCoef, SpearmanCorrCoef

from lit_rlhf.core.reward_loss import pairwise_correct


class GroupedAccuracy(Metric):
    """Accuracy per group id: ``compute()`` is ``[G]``, NaN for groups that saw no pair."""

    full_state_update = False

    def __init__(self, num_groups: int):
        super().__init__()
        self.num_groups = num_groups
        self.add_state("correct", torch.zeros(num_groups, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros(num_groups, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, correct: torch.Tensor, group: torch.Tensor) -> None:
        keep = (group >= 0) & (group < self.num_groups)  # -1: a category unknown to this metric
        group = group[keep]
        self.correct.index_add_(0, group, correct[keep].to(self.correct.dtype))
        self.total.index_add_(0, group, torch.ones_like(group, dtype=self.total.dtype))

    def compute(self) -> torch.Tensor:
        return self.correct / self.total

    def per_group(self) -> list[float]:
        """``compute()`` as a list of ``num_groups`` floats.

        torchmetrics squeezes a one-element result to a 0-d tensor, so one group would otherwise
        come back as a bare float; reshaping keeps the list for any number of groups.
        """
        return self.compute().reshape(-1).tolist()


class ScoreMoments(Metric):
    """Mean and (population) standard deviation of all scores seen: ``compute() -> (mean, std)``."""

    full_state_update = False

    def __init__(self):
        super().__init__()
        for name in ("count", "total", "total_sq"):
            self.add_state(name, torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, scores: torch.Tensor) -> None:
        scores = scores.detach().to(torch.float64)
        self.count += scores.numel()
        self.total += scores.sum()
        self.total_sq += scores.pow(2).sum()

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.total / self.count
        return mean, (self.total_sq / self.count - mean.pow(2)).clamp_min(0).sqrt()


class RewardMetrics(torch.nn.Module):
    """Pairwise accuracy (overall, per category, per length-difference bucket), score mean/std, and
    Pearson/Spearman correlation between score and response length (both sides of every pair).

    ``compute(prefix)`` returns floats named ``{prefix}/accuracy``, ``{prefix}/accuracy_by_category/<c>``,
    ``{prefix}/accuracy_by_length_diff/<bucket>``, ``{prefix}/score_mean``, ``{prefix}/score_std``,
    ``{prefix}/length_pearson``, ``{prefix}/length_spearman``; groups without pairs are left out.
    """

    def __init__(self, categories: list[str], buckets: list[str]):
        super().__init__()
        self.categories, self.buckets = list(categories), list(buckets)
        self.accuracy = MeanMetric()
        self.by_category = GroupedAccuracy(len(self.categories))
        self.by_bucket = GroupedAccuracy(len(self.buckets))
        self.moments = ScoreMoments()
        self.pearson, self.spearman = PearsonCorrCoef(), SpearmanCorrCoef()

    def update(self, chosen: torch.Tensor, rejected: torch.Tensor, batch: dict) -> None:
        chosen, rejected = chosen.detach().float(), rejected.detach().float()
        correct = pairwise_correct(chosen, rejected)
        self.accuracy.update(correct)
        self.by_category.update(correct, batch["category_id"])
        self.by_bucket.update(correct, batch["bucket_id"])
        scores = torch.cat([chosen, rejected])
        lengths = torch.cat([batch["chosen_len"], batch["rejected_len"]]).float()
        self.moments.update(scores)
        self.pearson.update(scores, lengths)
        self.spearman.update(scores, lengths)

    def compute(self, prefix: str = "reward") -> dict[str, float]:
        if self.accuracy.update_count == 0:
            return {}
        out = {f"{prefix}/accuracy": float(self.accuracy.compute())}
        for kind, names, metric in (
            ("category", self.categories, self.by_category),
            ("length_diff", self.buckets, self.by_bucket),
        ):
            for name, value in zip(names, metric.per_group(), strict=True):
                if not math.isnan(value):  # a group that saw no pair has no accuracy
                    out[f"{prefix}/accuracy_by_{kind}/{name}"] = value
        mean, std = self.moments.compute()
        out[f"{prefix}/score_mean"], out[f"{prefix}/score_std"] = float(mean), float(std)
        if self.moments.count.item() > 2:
            out[f"{prefix}/length_pearson"] = float(self.pearson.compute())
            out[f"{prefix}/length_spearman"] = float(self.spearman.compute())
        return out

    def reset(self) -> None:
        for metric in (self.accuracy, self.by_category, self.by_bucket, self.moments, self.pearson, self.spearman):
            metric.reset()


def accuracy_interval(accuracy: float, pairs: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% for z = 1.96) of an accuracy measured on ``pairs`` pairs: whether a reward
    model is better than a coin on its held-out pairs, without resampling."""
    if pairs <= 0:
        return (math.nan, math.nan)
    spread = z * z / pairs
    centre = (accuracy + spread / 2) / (1 + spread)
    half = z * math.sqrt(accuracy * (1 - accuracy) / pairs + spread / (4 * pairs)) / (1 + spread)
    return (centre - half, centre + half)


def above_chance(interval: list[float] | tuple[float, float]) -> bool:
    """Whether an accuracy's interval (``accuracy_interval``) lies wholly above a coin's 0.5."""
    return interval[0] > 0.5


def evaluate_pairs(scorer, rows: list[dict], judge=None, tokenizer=None, batch_size: int = 64) -> dict[str, float]:
    """Score held-out pairs with ``scorer`` (anything with ``score(prompts, responses)``).

    Returns ``accuracy`` (vs the rows' labels), ``score_mean``/``score_std``, and the
    ``length_pearson``/``length_spearman`` correlation between score and response length
    (tokens of ``tokenizer``, else words) over both sides of every pair. With a gym ``judge``
    also ``gold_accuracy`` (RM vs the gold judge) and ``label_gold_accuracy`` (the labels, i.e.
    the annotators' majority, vs the gold judge), both over pairs the judge does not tie.
    """
    from torchmetrics.functional import pearson_corrcoef, spearman_corrcoef

    from lit_rlhf.reward.length_balance import response_length

    prompts = [r["prompt"] for r in rows]
    chosen = torch.tensor(scorer.score(prompts, [r["chosen"] for r in rows], batch_size), dtype=torch.float64)
    rejected = torch.tensor(scorer.score(prompts, [r["rejected"] for r in rows], batch_size), dtype=torch.float64)
    scores = torch.cat([chosen, rejected])
    lengths = torch.tensor(
        [response_length(r[side], tokenizer) for side in ("chosen", "rejected") for r in rows], dtype=torch.float64
    )
    out = {
        "pairs": len(rows),
        "accuracy": float(pairwise_correct(chosen, rejected).mean()),
        "score_mean": float(scores.mean()),
        "score_std": float(scores.std(unbiased=False)),
        "length_pearson": float(pearson_corrcoef(scores, lengths)),
        "length_spearman": float(spearman_corrcoef(scores, lengths)),
    }
    if judge is not None:
        gold = torch.tensor(
            [
                judge.score(r["prompt"], r["chosen"]).overall - judge.score(r["prompt"], r["rejected"]).overall
                for r in rows
            ],
            dtype=torch.float64,
        )
        decided = gold != 0
        rm_says_chosen = chosen > rejected
        out["gold_decided_pairs"] = int(decided.sum())
        out["gold_accuracy"] = float((rm_says_chosen == (gold > 0))[decided].double().mean())
        out["label_gold_accuracy"] = float((gold[decided] > 0).double().mean())
    return out
