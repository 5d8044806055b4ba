"""Simulated annotators: noisy Bradley-Terry choices on the gold utility, with length bias, ties and inconsistency."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from lit_rlhf.data.errors import ConfigError
from lit_rlhf.gym.judge import GoldJudge, JudgeScore


@dataclass(frozen=True)
class Label:
    """One annotator's verdict on a pair: "A", "B" or "tie", plus 1-5 ratings per criterion per side."""

    annotator: str
    choice: str
    ratings_a: dict[str, int]
    ratings_b: dict[str, int]


@dataclass(frozen=True)
class SimulatedAnnotator:
    """P(A preferred) = sigmoid((u_A - u_B + length_bias * (len_A - len_B) / 10) / temperature).

    ``length_bias`` is utility per 10 words of extra length; an inconsistent annotator
    picks A or B at random, which produces contradictions and preference cycles.
    """

    name: str
    temperature: float = 0.3
    length_bias: float = 0.0
    tie_rate: float = 0.0
    consistent: bool = True

    def prefer_a_probability(self, utility_a: float, utility_b: float, len_a: int, len_b: int) -> float:
        margin = utility_a - utility_b + self.length_bias * (len_a - len_b) / 10.0
        return 1.0 / (1.0 + math.exp(-margin / self.temperature))

    def label(self, prompt: str, response_a: str, response_b: str, judge: GoldJudge, seed: int = 0) -> Label:
        # Seeded by the pair's text, so the same annotator gives the same verdict on the same pair.
        rng = random.Random(f"{seed}:{self.name}:{prompt}\x00{response_a}\x00{response_b}")
        score_a, score_b = judge.score(prompt, response_a), judge.score(prompt, response_b)
        if rng.random() < self.tie_rate:
            choice = "tie"
        elif not self.consistent:
            choice = rng.choice("AB")
        else:
            p = self.prefer_a_probability(
                score_a.overall, score_b.overall, len(response_a.split()), len(response_b.split())
            )
            choice = "A" if rng.random() < p else "B"
        return Label(self.name, choice, _ratings(score_a, rng), _ratings(score_b, rng))


def _ratings(score: JudgeScore, rng: random.Random) -> dict[str, int]:
    out = {}
    for criterion in ("helpfulness", "harmlessness", "fluency"):
        value = 1 + 4 * getattr(score, criterion) + rng.gauss(0.0, 0.5)
        out[criterion] = int(min(5, max(1, round(value))))
    return out


def annotator_pool(
    n: int,
    temperature: float = 0.3,
    length_bias: float = 0.0,
    tie_rate: float = 0.0,
    inconsistent_share: float = 0.0,
    seed: int = 0,
) -> list[SimulatedAnnotator]:
    """``n`` annotators with noise around ``temperature``; ``round(n * inconsistent_share)`` are inconsistent."""
    for key, value, lo, hi in (("tie_rate", tie_rate, 0, 1), ("inconsistent_share", inconsistent_share, 0, 1)):
        if not lo <= value <= hi:
            raise ConfigError(f"{key} must be in [{lo}, {hi}], got {value}")
    if n < 1 or temperature <= 0:
        raise ConfigError(f"need n >= 1 and temperature > 0, got n={n}, temperature={temperature}")
    rng = random.Random(f"{seed}:pool")
    n_bad = round(n * inconsistent_share)
    return [
        SimulatedAnnotator(
            name=f"sim-{i:02d}",
            temperature=temperature * rng.uniform(0.7, 1.3),
            length_bias=length_bias,
            tie_rate=tie_rate,
            consistent=i >= n_bad,
        )
        for i in range(n)
    ]
