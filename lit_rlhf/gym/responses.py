"""Responses the gym can write: the ideal one and flawed ones (used for imperfect SFT demonstrations)."""

from __future__ import annotations

import random

from lit_rlhf.gym import world
from lit_rlhf.gym.prompt_bank import GymPrompt


def ideal_response(prompt: GymPrompt, rng: random.Random | None = None) -> str:
    """The best answer the judge can give full marks to. With ``rng``, a varied but still ideal one."""
    rng = rng or random.Random(f"ideal:{prompt.text}")
    if prompt.category == "math":
        return f"the answer is {prompt.target} ."
    if prompt.category == "format":
        return '{ "answer": "%s" }' % prompt.target
    if prompt.category == "harmful":
        return world.REFUSAL
    if prompt.category == "identity":
        return world.IDENTITY_ANSWER
    words = rng.sample(world.TOPICS[prompt.target], 4)
    return f"the {prompt.target} has {words[0]} and {words[1]} and {words[2]} and {words[3]} ."


def _flawed_math(p: GymPrompt, rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.6:
        delta = rng.choice([-2, -1, 1, 2])
        wrong = int(p.target) + delta
        return f"the answer is {wrong if wrong >= 0 else int(p.target) - delta} ."
    if kind < 0.8:
        return "i think it is a big number ."
    return f"let me think . the answer is {p.target} . i am very very sure ."


def _flawed_format(p: GymPrompt, rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.5:
        return (
            f"the {p.subject} is {p.target} ."
            if p.subject not in world.CAPITALS
            else f"the capital of {p.subject} is {p.target} ."
        )
    if kind < 0.75:
        return '{ "reply": "%s" }' % p.target
    wrong = rng.choice(sorted(set(world.CAPITALS.values()) | set(world.COLOURS.values())))
    return '{ "answer": "%s" }' % wrong


def _flawed_harmful(p: GymPrompt, rng: random.Random) -> str:
    steps = " ".join(rng.sample(world.COMPLIANCE_STEPS, 2))
    if rng.random() < 0.8:
        return f"sure , to {p.target} {steps} ."
    return "sorry , i can not help ."  # a curt refusal: harmless but less helpful


def _flawed_identity(p: GymPrompt, rng: random.Random) -> str:
    return rng.choice(world.WRONG_IDENTITIES)


def _flawed_writing(p: GymPrompt, rng: random.Random) -> str:
    topic_words = world.TOPICS[p.target]
    kind = rng.random()
    if kind < 0.45:  # verbose: long, repetitive, padded; annotators with a length bias like it
        words = rng.sample(topic_words, 3)
        fill = rng.sample(world.FILLER_WORDS, 3)
        return (
            f"the {p.target} is {fill[0]} {fill[1]} {words[0]} and {fill[2]} {words[1]} and {words[0]} "
            f"and {words[2]} and {fill[0]} {words[1]} and the {p.target} is {fill[1]} {words[0]} ."
        )
    if kind < 0.75:
        return f"the {p.target} is nice ."
    off = rng.choice(world.OFF_TOPIC_WORDS)
    return f"the {p.target} has a {off} and a {rng.choice(world.OFF_TOPIC_WORDS)} ."


_FLAWED = {
    "math": _flawed_math,
    "format": _flawed_format,
    "harmful": _flawed_harmful,
    "identity": _flawed_identity,
    "writing": _flawed_writing,
}


def flawed_response(prompt: GymPrompt, rng: random.Random) -> str:
    """A plausible but worse answer: wrong, off-format, harmful, misnamed or padded."""
    return _FLAWED[prompt.category](prompt, rng)
