"""Capability probes: does the model still say who it is, and still answer in JSON when asked?"""

from __future__ import annotations

from lit_rlhf.gym.judge import GoldJudge
from lit_rlhf.gym.prompt_bank import GymPrompt

# A response passes when the judge's helpfulness reaches this: identity names "gizmo" (0.8+),
# format is a JSON object whose only key is "answer" (0.4+, whatever the value).
PASS_AT = {"identity": 0.8, "format": 0.4}


def probe_pass_rates(judge: GoldJudge, prompts: list[GymPrompt], responses: list[str]) -> dict[str, float]:
    """Pass rate per probe category present in ``prompts``."""
    passed: dict[str, list[bool]] = {}
    for prompt, response in zip(prompts, responses, strict=True):
        if prompt.category in PASS_AT:
            ok = judge.score_prompt(prompt, response).helpfulness >= PASS_AT[prompt.category]
            passed.setdefault(prompt.category, []).append(ok)
    return {category: sum(v) / len(v) for category, v in sorted(passed.items())}
