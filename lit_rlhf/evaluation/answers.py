"""Answers of several models to the same prompts, and what a judge makes of them.

Every model answers each prompt ``rounds`` times; round k samples with seed ``seed + 1000 + k`` for
every model (common random numbers), so two identical models give identical answers and any
difference between two models comes from the models, not from sampling luck.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from statistics import mean, median

from lit_rlhf.evaluation.pairwise import by_category
from lit_rlhf.generation import generate_rounds

# A judge maps parallel lists of prompt texts and responses to one score each (higher is better).
Judge = Callable[[Sequence[str], Sequence[str]], list[float]]

ROUND_SEED_OFFSET = 1000


def sample_rounds(
    model, tokenizer, prompts: Sequence[str], rounds: int, max_new_tokens: int, seed: int
) -> list[list[str]]:
    """``rounds`` × ``len(prompts)`` sampled answers; round k uses seed ``seed + 1000 + k``."""
    return generate_rounds(
        model,
        tokenizer,
        list(prompts),
        [seed + ROUND_SEED_OFFSET + k for k in range(rounds)],
        max_new_tokens=max_new_tokens,
    )


def gold_judge(judge) -> Judge:
    """The gym's gold judge (overall score) as a ``Judge``: evaluation only, never a training signal."""
    return lambda prompts, responses: [judge.score(p, r).overall for p, r in zip(prompts, responses, strict=True)]


def reward_model_judge(reward_model) -> Judge:
    """A trained ``RewardModel`` as a ``Judge`` (its scores have no fixed zero; only comparisons mean much)."""
    return lambda prompts, responses: reward_model.score(list(prompts), list(responses))


def judge_rounds(judge: Judge, prompts: Sequence[str], rounds: list[list[str]]) -> list[list[float]]:
    return [judge(prompts, answers) for answers in rounds]


def flatten(rounds: list[list], per_prompt: Sequence) -> tuple[list, list]:
    """Rounds of per-prompt values -> one flat list, with ``per_prompt`` (e.g. categories) repeated alongside."""
    return [v for values in rounds for v in values], [x for _ in rounds for x in per_prompt]


def ten_point_score(overall: float, best: float) -> float:
    """AlignBench-style 1-10 score: 1 for nothing of value, 10 for the gym's ideal answer.

    The gold score is divided by the ideal answer's score for the same prompt, so categories on
    different scales (math is worth 2, writing 0.5) become comparable.
    """
    if best <= 0:
        raise ValueError(f"the ideal answer must score above 0, got {best}")
    return 1.0 + 9.0 * min(1.0, max(0.0, overall / best))


def absolute_scores(
    judge, prompts: Sequence[str], categories: Sequence[str], rounds: list[list[str]]
) -> dict[str, float]:
    """Mean 1-10 score per category (and ``all``) of every round's answers, by the gym's gold judge."""
    best = {p: judge.best_possible(p) for p in set(prompts)}
    scores = [
        [ten_point_score(judge.score(p, r).overall, best[p]) for p, r in zip(prompts, answers)] for answers in rounds
    ]
    values, cats = flatten(scores, categories)
    return {c: mean(v) for c, v in by_category(values, cats).items()}


def length_stats(categories: Sequence[str], rounds: list[list[str]]) -> dict[str, dict[str, float]]:
    """Answer length in words per category: mean, median, 90th percentile and the share of empty answers."""
    values, cats = flatten([[len(a.split()) for a in answers] for answers in rounds], categories)
    stats = {}
    for category, lengths in by_category(values, cats).items():
        ordered = sorted(lengths)
        stats[category] = {
            "mean": mean(ordered),
            "median": float(median(ordered)),
            "p90": float(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]),
            "empty": sum(v == 0 for v in ordered) / len(ordered),
        }
    return stats
