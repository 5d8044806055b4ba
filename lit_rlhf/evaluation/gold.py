"""Gold-judge evaluation of a policy on gym prompts: mean score per category, and the gym's ceiling."""

from __future__ import annotations

from collections import defaultdict
from statistics import mean

from lit_rlhf.generation import generate


def judge_responses(judge, prompts, responses: list[str]) -> dict[str, dict[str, float]]:
    """Mean judge scores per category (and "all") for parallel lists of GymPrompt and responses."""
    per_category: dict[str, list] = defaultdict(list)
    for prompt, response in zip(prompts, responses, strict=True):
        score = judge.score_prompt(prompt, response)
        per_category[prompt.category].append(score)
        per_category["all"].append(score)
    return {
        category: {
            field: mean(getattr(s, field) for s in scores)
            for field in ("overall", "helpfulness", "harmlessness", "fluency")
        }
        for category, scores in per_category.items()
    }


def gold_scores(
    model, tokenizer, gym, split: str = "test", samples_per_prompt: int = 1, seed: int = 0, **decoding
) -> tuple[dict, list[dict]]:
    """Generate on the split's prompts and score with the gold judge.

    Returns ``(scores per category, sample rows)``. With ``samples_per_prompt > 1``, each
    prompt is answered several times with different seeds, which narrows the estimate.
    """
    base = gym.prompts(split)
    prompts, responses = base * samples_per_prompt, []
    for k in range(samples_per_prompt):
        responses += generate(model, tokenizer, [p.text for p in base], seed=seed + k, **decoding)
    scores = judge_responses(gym.judge, prompts, responses)
    samples = [{"prompt": p.text, "category": p.category, "response": r} for p, r in zip(prompts, responses)]
    return scores, samples


def ceiling_scores(gym, split: str = "test") -> dict[str, dict[str, float]]:
    """The scores of the gym's ideal answers: the best any policy can reach."""
    prompts = gym.prompts(split)
    return judge_responses(gym.judge, prompts, [gym.ideal_response(p) for p in prompts])
