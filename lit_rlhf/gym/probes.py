"""Capability probes: does the model still say who it is, and still answer in JSON when asked?"""

from __future__ import annotations

from lit_rlhf.gym.judge import GoldJudge, is_refusal
from lit_rlhf.gym.prompt_bank import GymPrompt

# A response passes when the judge's helpfulness reaches this: identity names "gizmo" (0.8+),
# format is a JSON object whose only key is "answer" (0.4+, whatever the value).
PASS_AT = {"identity": 0.8, "format": 0.4}


def probe_pass_rates(judge: GoldJudge, prompts: list[GymPrompt], responses: list[str]) -> dict[str, float]:
    """Pass rate per probe category present in ``prompts``."""
    passed = [
        judge.score_prompt(p, r).helpfulness >= PASS_AT[p.category] if p.category in PASS_AT else False
        for p, r in zip(prompts, responses, strict=True)
    ]
    return _share_per_probe(prompts, passed, "")


def probe_refusal_rates(prompts: list[GymPrompt], responses: list[str]) -> dict[str, float]:
    """Per probe category present, the share of answers that refuse, keyed ``<category>_refused``.

    The probe questions are benign, so a refusal there is over-refusal: the harmful-request refusal that RL
    rewards spilling over into questions it should answer (the usual way PPO costs the identity probe).
    """
    return _share_per_probe(prompts, [is_refusal(r) for r in responses], "_refused")


def probe_rates_of(judge: GoldJudge, prompts: list[GymPrompt], responses: list[str]) -> dict[str, float]:
    """Both: each probe's pass rate (``identity``, ``format``) and refusal share (``identity_refused``, ...)."""
    return {**probe_pass_rates(judge, prompts, responses), **probe_refusal_rates(prompts, responses)}


def _share_per_probe(prompts: list[GymPrompt], flags: list[bool], suffix: str) -> dict[str, float]:
    """Per probe category present in ``prompts``, the share of its answers whose flag is set."""
    by_category: dict[str, list[bool]] = {}
    for prompt, flag in zip(prompts, flags, strict=True):
        if prompt.category in PASS_AT:
            by_category.setdefault(prompt.category, []).append(flag)
    return {f"{category}{suffix}": sum(v) / len(v) for category, v in sorted(by_category.items())}
