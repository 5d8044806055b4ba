"""Capability probes: does the model still say who it is, and still answer in JSON when asked?"""

from __future__ import annotations

from lit_rlhf.gym.judge import GoldJudge, is_refusal
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


def probe_refusal_rates(prompts: list[GymPrompt], responses: list[str]) -> dict[str, float]:
    """Per probe category present, the share of answers that refuse, keyed ``<category>_refused``.

    The probe questions are benign, so a refusal there is over-refusal: the harmful-request refusal that RL
    rewards spilling over into questions it should answer (the usual way PPO costs the identity probe).
    """
    refused: dict[str, list[bool]] = {}
    for prompt, response in zip(prompts, responses, strict=True):
        if prompt.category in PASS_AT:
            refused.setdefault(prompt.category, []).append(is_refusal(response))
    return {f"{category}_refused": sum(v) / len(v) for category, v in sorted(refused.items())}
