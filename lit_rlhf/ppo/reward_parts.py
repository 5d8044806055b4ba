"""The reward RL trains on, as weighted parts: a reward model, rule-based verifiers, a length penalty, your own.

Each part is a callable ``(prompts, responses) -> list[float]``; the reward is ``Σ weight · part``. Built from
``ppo.reward_parts`` (``build_reward_parts``)::

    ppo:
      reward_parts:
        reward_model: {weight: 1.0}                                     # the loaded ppo.reward_model
        math: {_target_: lit_rlhf.gym.verifiers.MathAnswer, weight: 2.0}   # a rule: 1 for the right number
        length: {_target_: lit_rlhf.ppo.reward_parts.LengthPenalty, per_word: 0.02, free_words: 12}
        mine: {_target_: my_project.rewards.politeness, _partial_: true, weight: 0.5}   # any callable
"""

from __future__ import annotations

from collections.abc import Callable

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lit_rlhf.data.errors import ConfigError

Part = Callable[[list[str], list[str]], list[float]]


class RewardParts:
    """``Σ_i weight_i · part_i(prompts, responses)``. After each call ``last`` maps every part's name to its mean
    unweighted score over the batch (``PPOModule`` logs them as ``reward/part/<name>``)."""

    def __init__(self, parts: dict[str, Part], weights: dict[str, float] | None = None):
        if not parts:
            raise ConfigError("reward parts: at least one part is needed")
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(parts))
        if unknown:
            raise ConfigError(f"reward parts: weights for unknown parts {unknown}; parts are {sorted(parts)}")
        self.parts, self.weights = dict(parts), {name: float(weights.get(name, 1.0)) for name in parts}
        self.last: dict[str, float] = {}

    def combine(self, by_part: dict[str, list[float]]) -> list[float]:
        """The weighted sum of each part's scores (``{name: [B]}`` -> ``[B]``); notes the parts' means."""
        lengths = {name: len(scores) for name, scores in by_part.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"reward parts returned different numbers of scores: {lengths}")
        self.last = {name: sum(scores) / max(1, len(scores)) for name, scores in by_part.items()}
        rows = zip(*(by_part[name] for name in self.parts))
        return [sum(self.weights[name] * float(s) for name, s in zip(self.parts, row)) for row in rows]

    def __call__(self, prompts: list[str], responses: list[str]) -> list[float]:
        return self.combine({name: list(part(prompts, responses)) for name, part in self.parts.items()})

    def __repr__(self) -> str:
        return "RewardParts(" + ", ".join(f"{self.weights[n]:g}·{n}" for n in self.parts) + ")"


class LengthPenalty:
    """``-per_word · max(0, words - free_words)`` per response: a cost on length beyond ``free_words`` words."""

    def __init__(self, per_word: float = 0.01, free_words: int = 0):
        if per_word < 0 or free_words < 0:
            raise ConfigError(f"LengthPenalty: per_word and free_words must be >= 0, got {per_word}, {free_words}")
        self.per_word, self.free_words = float(per_word), int(free_words)

    def __call__(self, prompts: list[str], responses: list[str]) -> list[float]:
        return [-self.per_word * max(0, len(r.split()) - self.free_words) for r in responses]


def build_reward_parts(spec: DictConfig | dict | None, reward_model_score: Part) -> Part:
    """``reward_model_score`` itself without ``spec``; else a ``RewardParts``. Each entry of ``spec`` is
    ``reward_model`` (the loaded reward model) or a ``_target_`` Hydra builds, with an optional ``weight``."""
    if not spec:
        return reward_model_score
    parts, weights = {}, {}
    for name, entry in (OmegaConf.to_container(spec) if isinstance(spec, DictConfig) else dict(spec)).items():
        entry = dict(entry or {})
        weights[name] = entry.pop("weight", 1.0)
        if name == "reward_model" and "_target_" not in entry:
            if entry:
                raise ConfigError(f"ppo.reward_parts.reward_model takes only a weight, got {sorted(entry)}")
            parts[name] = reward_model_score
        elif "_target_" in entry:
            parts[name] = instantiate(entry)
            if not callable(parts[name]):
                raise ConfigError(f"ppo.reward_parts.{name}: {entry['_target_']} built {parts[name]!r}, not a callable")
        else:
            raise ConfigError(f"ppo.reward_parts.{name} needs a _target_ (or is named reward_model)")
    return RewardParts(parts, weights)
