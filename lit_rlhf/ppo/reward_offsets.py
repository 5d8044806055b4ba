"""A reward whose zero point differs from prompt to prompt: the setting the reference baseline is for.

A reward model trained on pairs (Bradley–Terry) only ever sees the difference of two scores for the
same prompt, so adding a constant per prompt changes neither its loss nor its accuracy: every such
shift fits the preference data equally well, and which one training lands on is an accident of the
network. ChatGLM-RLHF reports reward models whose levels differ a lot between tasks. A small reward
model can land with nearly equal levels instead (the gym's does), and then the baseline has little to
remove. ``OffsetReward`` adds known constants, per category and per prompt, to emulate the other
case, so PPO can be compared with and without the baseline under offsets of a chosen size.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping, Sequence

from lit_rlhf.data.errors import ConfigError


def prompt_noise(prompt: str, seed: int = 0) -> float:
    """A standard-normal number fixed by ``prompt`` and ``seed`` (the same in every process and run)."""
    digest = hashlib.sha256(f"{seed}\0{prompt}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big")).gauss(0.0, 1.0)


class OffsetReward:
    """``reward_fn(prompts, responses)`` plus a constant per prompt:
    ``per_category[category of the prompt]`` (0 for unlisted categories) ``+ per_prompt_std · z(prompt)``,
    with ``z`` a standard-normal draw fixed by the prompt's text and ``seed`` (:func:`prompt_noise`).

    A per-category offset is easy for a critic to learn from the prompt's words; a per-prompt one
    is not. ``category_of`` maps every prompt this reward will see to its category. Unknown
    categories in ``per_category`` and unknown prompts are errors, so a typo cannot turn a shift off.
    """

    def __init__(
        self,
        reward_fn: Callable[[Sequence[str], Sequence[str]], Sequence[float]],
        category_of: Mapping[str, str],
        per_category: Mapping[str, float] | None = None,
        per_prompt_std: float = 0.0,
        seed: int = 0,
        name: str = "reward_offsets",
    ):
        per_category = dict(per_category or {})
        known = set(category_of.values())
        unknown = sorted(set(per_category) - known)
        if unknown:
            raise ConfigError(
                f"{name}.per_category: no prompt has category {', '.join(map(repr, unknown))} "
                f"(the prompts' categories: {', '.join(sorted(known))})"
            )
        if per_prompt_std < 0:
            raise ConfigError(f"{name}.per_prompt_std must be >= 0, got {per_prompt_std}")
        self.reward_fn, self.name, self.seed = reward_fn, name, seed
        self.per_category = {c: float(v) for c, v in per_category.items()}
        self.per_prompt_std = float(per_prompt_std)
        self.category_of = dict(category_of)

    def offset(self, prompt: str) -> float:
        """The constant added to every score of ``prompt``."""
        if prompt not in self.category_of:
            raise KeyError(f"{self.name}: prompt {prompt[:60]!r} has no known category")
        shift = self.per_category.get(self.category_of[prompt], 0.0)
        return shift + (self.per_prompt_std * prompt_noise(prompt, self.seed) if self.per_prompt_std else 0.0)

    @property
    def last(self) -> dict[str, float]:
        """The wrapped reward's per-part means of its last call (``RewardParts``), so they are still logged."""
        return getattr(self.reward_fn, "last", {})

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        scores = self.reward_fn(prompts, responses)
        return [float(s) + self.offset(p) for s, p in zip(scores, prompts, strict=True)]

    def __repr__(self) -> str:
        return (
            f"OffsetReward({self.reward_fn!r}, per_category={self.per_category}, "
            f"per_prompt_std={self.per_prompt_std}, seed={self.seed})"
        )
