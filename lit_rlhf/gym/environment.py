"""``AlignmentGym``: one seeded object that hands out prompts, demonstrations, the judge and annotators."""

from __future__ import annotations

import random
from collections import Counter

from lit_rlhf.data.errors import ConfigError
from lit_rlhf.gym.annotators import SimulatedAnnotator, annotator_pool
from lit_rlhf.gym.judge import GoldJudge
from lit_rlhf.gym.prompt_bank import GymPrompt, all_prompts, split_prompts
from lit_rlhf.gym.responses import flawed_response, ideal_response
from lit_rlhf.gym.world import CATEGORIES

# Share of SFT demonstrations that are ideal, per category. Below one on purpose: SFT on
# these learns the task but keeps the flaws, which leaves headroom for RLHF.
DEFAULT_DEMO_QUALITY = {"math": 0.5, "format": 0.4, "harmful": 0.5, "identity": 0.45, "writing": 0.3}


class AlignmentGym:
    """Seeded gym. ``split`` is one of "train", "val", "test"; the three never share a prompt."""

    SPLITS = ("train", "val", "test")

    def __init__(
        self,
        seed: int = 0,
        split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
        demo_quality: dict[str, float] | None = None,
        categories: tuple[str, ...] | list[str] = CATEGORIES,
    ):
        unknown = set(categories) - set(CATEGORIES)
        if unknown:
            raise ConfigError(f"unknown gym categories {sorted(unknown)}; known: {list(CATEGORIES)}")
        quality = dict(DEFAULT_DEMO_QUALITY, **(demo_quality or {}))
        bad = {k: v for k, v in quality.items() if k not in CATEGORIES or not 0.0 <= v <= 1.0}
        if bad:
            raise ConfigError(f"demo_quality needs known categories and values in [0, 1], got {bad}")
        self.seed = seed
        self.categories = tuple(categories)
        self.demo_quality = quality
        self.judge = GoldJudge()
        wanted = [p for p in all_prompts() if p.category in self.categories]
        self._splits = split_prompts(wanted, tuple(split_fractions), seed)

    def prompts(self, split: str = "train", categories: list[str] | None = None) -> list[GymPrompt]:
        if split not in self.SPLITS:
            raise ConfigError(f"split must be one of {self.SPLITS}, got {split!r}")
        return [p for p in self._splits[split] if categories is None or p.category in categories]

    def demonstrations(
        self, split: str = "train", per_prompt: int = 4, categories: list[str] | None = None
    ) -> list[dict[str, str]]:
        """Imperfect SFT data: ``per_prompt`` responses per prompt (of ``categories``, or all), ideal with the
        category's quality rate."""
        rows = []
        for prompt in self.prompts(split, categories):
            rng = random.Random(f"{self.seed}:demo:{prompt.text}")
            for _ in range(per_prompt):
                good = rng.random() < self.demo_quality[prompt.category]
                response = ideal_response(prompt, rng) if good else flawed_response(prompt, rng)
                rows.append({"prompt": prompt.text, "response": response, "category": prompt.category})
        return rows

    def ideal_response(self, prompt: GymPrompt) -> str:
        return ideal_response(prompt)

    def annotators(self, n: int = 3, **kwargs) -> list[SimulatedAnnotator]:
        return annotator_pool(n, seed=self.seed, **kwargs)

    def summary(self) -> dict[str, dict[str, int]]:
        """Prompt counts per split and category."""
        return {s: dict(Counter(p.category for p in self._splits[s])) for s in self.SPLITS}
