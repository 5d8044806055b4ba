"""Prompt selection: rule filters, a pluggable quality scorer, and per-category caps.

Real usage logs hold very short prompts, exact and near-duplicates, and prompts with no
clear intent. ``select_prompts`` drops them in a fixed order (too short, duplicate,
near-duplicate, low quality, over the category cap) and counts every drop by reason and
category, so the report shows what the filters did.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


@dataclass(frozen=True)
class Prompt:
    text: str
    category: str


@dataclass(frozen=True)
class PromptQuality:
    """Scores in [0, 1] for the three criteria of the prompt classifier."""

    intent_clarity: float
    semantic_clarity: float
    answerability: float

    @property
    def lowest(self) -> float:
        return min(self.intent_clarity, self.semantic_clarity, self.answerability)


class QualityScorer(Protocol):
    """Anything that scores a batch of prompt texts (a trained classifier, an LLM judge, a heuristic)."""

    def score(self, texts: Sequence[str]) -> list[PromptQuality]: ...


_QUESTION_WORDS = {"what", "who", "how", "why", "when", "where", "which", "is", "are", "can", "do", "does"}
_IMPERATIVES = {
    "write",
    "describe",
    "tell",
    "explain",
    "compute",
    "add",
    "answer",
    "reply",
    "list",
    "give",
    "show",
    "help",
    "introduce",
    "summarise",
    "summarize",
    "translate",
    "make",
}


class HeuristicQualityScorer:
    """A rule-based stand-in for a prompt classifier, for text without a trained one.

    Intent: a question word, a question mark or an imperative verb. Semantic clarity: share of
    words that are alphanumeric and not a character run like "aaaa". Answerability: length
    between 2 and ``max_words`` words.
    """

    def __init__(self, max_words: int = 400):
        self.max_words = max_words

    def score_one(self, text: str) -> PromptQuality:
        words = normalized_words(text)
        if not words:
            return PromptQuality(0.0, 0.0, 0.0)
        intent = (
            1.0
            if (words[0] in _QUESTION_WORDS | _IMPERATIVES or "?" in words or any(w in _IMPERATIVES for w in words[:4]))
            else 0.3
        )
        alnum = [w for w in words if w[0].isalnum()]
        clean = [w for w in alnum if not re.fullmatch(r"(.)\1{3,}", w)]
        semantic = len(clean) / max(1, len(alnum)) if alnum else 0.0
        answerable = 1.0 if 2 <= len(alnum) <= self.max_words else 0.2
        return PromptQuality(intent, semantic, answerable)

    def score(self, texts: Sequence[str]) -> list[PromptQuality]:
        return [self.score_one(t) for t in texts]


class GymQualityScorer(HeuristicQualityScorer):
    """The gym's scorer: a prompt the gym can parse is clear and answerable; anything else is scored by
    the heuristics with answerability 0, because no gold judge can grade answers to it."""

    def score(self, texts: Sequence[str]) -> list[PromptQuality]:
        from lit_rlhf.gym import parse_prompt

        out = []
        for text in texts:
            try:
                parse_prompt(text)
                out.append(PromptQuality(1.0, 1.0, 1.0))
            except ValueError:
                q = self.score_one(text)
                out.append(PromptQuality(q.intent_clarity, q.semantic_clarity, 0.0))
        return out


def normalized_words(text: str) -> list[str]:
    """Lower-case words and punctuation marks, whitespace-insensitive: the key for duplicate checks."""
    return _WORD.findall(text.lower())


def shingles(words: list[str]) -> set[tuple[str, ...]]:
    """Word bigrams (a single word for one-word prompts); bigrams keep "3 plus 4" apart from "4 plus 3"."""
    return {tuple(words[i : i + 2]) for i in range(max(1, len(words) - 1))}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


@dataclass
class SelectionReport:
    """Counts per category before and after, and drops by reason and category."""

    before: Counter = field(default_factory=Counter)
    after: Counter = field(default_factory=Counter)
    dropped: dict[str, Counter] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def drop(self, reason: str, prompt: Prompt) -> None:
        self.dropped.setdefault(reason, Counter())[prompt.category] += 1
        if len(self.examples.setdefault(reason, [])) < 3:
            self.examples[reason].append(prompt.text)

    def as_dict(self) -> dict:
        return {
            "before": dict(sorted(self.before.items())),
            "after": dict(sorted(self.after.items())),
            "dropped": {r: dict(sorted(c.items())) for r, c in self.dropped.items()},
            "dropped_total": {r: sum(c.values()) for r, c in self.dropped.items()},
            "examples": self.examples,
        }


def select_prompts(
    prompts: Sequence[Prompt],
    min_words: int = 3,
    near_duplicate_threshold: float | None = 0.8,
    scorer: QualityScorer | None = None,
    min_quality: float = 0.5,
    max_per_category: int | None = None,
    balance: bool = False,
    seed: int = 0,
) -> tuple[list[Prompt], SelectionReport]:
    """Filter prompts; the first of duplicates is kept. ``balance`` caps every category at the smallest one's count.

    ``min_quality`` applies to the lowest of the three quality scores. The near-duplicate check
    compares word-bigram sets (Jaccard) within categories, O(n^2) per category with a length
    bound that skips pairs that cannot reach the threshold.
    """
    report = SelectionReport(before=Counter(p.category for p in prompts))
    kept: list[Prompt] = []
    seen: set[tuple[str, ...]] = set()
    for p in prompts:
        words = normalized_words(p.text)
        if sum(w[0].isalnum() for w in words) < min_words:
            report.drop("too_short", p)
        elif tuple(words) in seen:
            report.drop("duplicate", p)
        else:
            seen.add(tuple(words))
            kept.append(p)
    if near_duplicate_threshold is not None:
        kept = _drop_near_duplicates(kept, near_duplicate_threshold, report)
    if scorer is not None:
        qualities = scorer.score([p.text for p in kept])
        if len(qualities) != len(kept):
            raise ValueError(f"quality scorer returned {len(qualities)} scores for {len(kept)} prompts")
        for p, q in zip(kept, qualities):
            if q.lowest < min_quality:
                report.drop("low_quality", p)
        kept = [p for p, q in zip(kept, qualities) if q.lowest >= min_quality]
    kept = _cap_categories(kept, max_per_category, balance, seed, report)
    report.after = Counter(p.category for p in kept)
    return kept, report


def _drop_near_duplicates(prompts: list[Prompt], threshold: float, report: SelectionReport) -> list[Prompt]:
    kept_by_category: dict[str, list[tuple[int, set]]] = {}
    out = []
    for p in prompts:
        grams = shingles(normalized_words(p.text))
        peers = kept_by_category.setdefault(p.category, [])
        # Jaccard(a, b) <= min(|a|, |b|) / max(|a|, |b|), so far-apart sizes can be skipped.
        if any(
            min(n, len(grams)) >= threshold * max(n, len(grams)) and jaccard(grams, g) >= threshold for n, g in peers
        ):
            report.drop("near_duplicate", p)
            continue
        peers.append((len(grams), grams))
        out.append(p)
    return out


def _cap_categories(
    prompts: list[Prompt], cap: int | None, balance: bool, seed: int, report: SelectionReport
) -> list[Prompt]:
    counts = Counter(p.category for p in prompts)
    if balance and counts:
        cap = min([*counts.values(), *([cap] if cap is not None else [])])
    if cap is None:
        return prompts
    keep: set[int] = set()
    for category in counts:
        indices = [i for i, p in enumerate(prompts) if p.category == category]
        random.Random(f"{seed}:cap:{category}").shuffle(indices)
        keep.update(indices[:cap])
    for i, p in enumerate(prompts):
        if i not in keep:
            report.drop("category_cap", p)
    return [p for i, p in enumerate(prompts) if i in keep]


def noisy_usage_log(prompts: Sequence[Prompt], share: float = 0.2, seed: int = 0) -> list[Prompt]:
    """The gym's prompts plus the noise a real usage log has: re-typed duplicates, near-duplicates,
    too-short and unanswerable prompts (about ``share`` of the total, appended after the originals)."""
    rng = random.Random(f"{seed}:noise")
    n_noise = round(len(prompts) * share)
    noise = []
    for _ in range(n_noise):
        source = rng.choice(list(prompts))
        kind = rng.randrange(4)
        if kind == 0:
            text = "  ".join(source.text.split()).upper()  # the same prompt typed differently
        elif kind == 1:
            text = "please " + source.text  # a near-duplicate
        elif kind == 2:
            text = rng.choice(["hi", "ok ?", "hello .", "test"])
        else:
            text = " ".join(rng.sample(["potato", "carpet", "engine", "pencil", "socket", "ladder"], 3)) + " ?"
        noise.append(Prompt(text, source.category))
    return [*prompts, *noise]
