"""Gym prompts: generated from templates, parsed back into their task, split without overlap."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from lit_rlhf.data.errors import ConfigError
from lit_rlhf.gym import world


@dataclass(frozen=True)
class GymPrompt:
    """A prompt and what the gold judge needs to know about it.

    ``target`` holds the task's key: the sum for math, the expected json value for
    format, the act for harmful, the topic for writing, "" for identity.
    """

    text: str
    category: str
    target: str = ""
    subject: str = ""  # the country, thing or topic the prompt is about


_MATH_TEMPLATES = ["what is {a} plus {b} ?", "compute {a} plus {b} .", "add {a} and {b} ."]
_FORMAT_PREFIXES = ["answer in json :", "reply with json :"]
_IDENTITY_PREFIXES = ["", "hello , ", "hi , "]
_WRITING_SUFFIXES = ["", " at night", " in spring"]


def all_prompts() -> list[GymPrompt]:
    """Every prompt the gym can ask, in a fixed order (five categories)."""
    out: list[GymPrompt] = []
    for template in _MATH_TEMPLATES:
        for a in range(10):
            for b in range(10):
                out.append(GymPrompt(template.format(a=a, b=b), "math", str(a + b), f"{a} {b}"))
    for prefix in _FORMAT_PREFIXES:
        for country, capital in world.CAPITALS.items():
            out.append(GymPrompt(f"{prefix} what is the capital of {country} ?", "format", capital, country))
        for thing, colour in world.COLOURS.items():
            out.append(GymPrompt(f"{prefix} what colour is a {thing} ?", "format", colour, thing))
    for opener in world.HARMFUL_OPENERS:
        for act in world.HARMFUL_ACTS:
            out.append(GymPrompt(f"{opener} {act} ?", "harmful", act, act))
    for prefix in _IDENTITY_PREFIXES:
        for question in world.IDENTITY_QUESTIONS:
            out.append(GymPrompt(f"{prefix}{question}", "identity", world.ASSISTANT_NAME, ""))
    for verb in world.WRITING_VERBS:
        for topic in world.TOPICS:
            for suffix in _WRITING_SUFFIXES:
                out.append(GymPrompt(f"{verb} {topic}{suffix} .", "writing", topic, topic))
    return out


_PROMPT_INDEX: dict[str, GymPrompt] | None = None


def parse_prompt(text: str) -> GymPrompt:
    """Recover the task behind a gym prompt's text.

    Raises ``ValueError`` naming the text when it is not a gym prompt, so a judge
    is never silently asked to score a prompt it does not understand.
    """
    global _PROMPT_INDEX
    if _PROMPT_INDEX is None:  # built lazily: no work at import time
        _PROMPT_INDEX = {p.text: p for p in all_prompts()}
    key = re.sub(r"\s+", " ", text.strip())
    if key not in _PROMPT_INDEX:
        raise ValueError(f"not a gym prompt: {text!r}")
    return _PROMPT_INDEX[key]


def split_prompts(
    prompts: list[GymPrompt], fractions: tuple[float, float, float], seed: int
) -> dict[str, list[GymPrompt]]:
    """Split prompts into train/val/test per category, seeded; no text is in two splits."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ConfigError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    by_category: dict[str, list[GymPrompt]] = {}
    for p in dict((p.text, p) for p in prompts).values():  # dedupe by text first
        by_category.setdefault(p.category, []).append(p)
    splits: dict[str, list[GymPrompt]] = {"train": [], "val": [], "test": []}
    for category in sorted(by_category):
        items = sorted(by_category[category], key=lambda p: p.text)
        random.Random(f"{seed}:split:{category}").shuffle(items)
        n_train = round(fractions[0] * len(items))
        n_val = round(fractions[1] * len(items))
        splits["train"] += items[:n_train]
        splits["val"] += items[n_train : n_train + n_val]
        splits["test"] += items[n_train + n_val :]
    return splits
