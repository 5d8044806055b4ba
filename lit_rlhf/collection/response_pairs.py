"""Sampling k responses per prompt from a policy checkpoint and turning them into comparison pairs."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from lit_rlhf.collection.prompt_selection import Prompt
from lit_rlhf.data.errors import SkipReport


def word_count(text: str) -> int:
    """Response length in whitespace words: tokenizer-independent, and what the gym's annotators see."""
    return len(text.split())


@dataclass(frozen=True)
class Decoding:
    max_new_tokens: int = 32
    temperature: float = 1.0
    top_p: float = 1.0
    batch_size: int = 64

    def __post_init__(self):
        if self.max_new_tokens < 1 or self.temperature <= 0 or not 0 < self.top_p <= 1 or self.batch_size < 1:
            raise ValueError(
                f"bad decoding settings {self}: need max_new_tokens >= 1, temperature > 0, "
                "0 < top_p <= 1, batch_size >= 1"
            )


@dataclass(frozen=True)
class Comparison:
    """Two responses to one prompt, to be labelled "A", "B" or "tie"."""

    pair_id: str
    prompt: str
    category: str
    response_a: str
    response_b: str
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def len_a(self) -> int:
        return word_count(self.response_a)

    @property
    def len_b(self) -> int:
        return word_count(self.response_b)

    def to_row(self) -> dict:
        return asdict(self)


def pair_id_for(prompt: str, response_a: str, response_b: str) -> str:
    """Content hash: the same pair gets the same id on every machine and run."""
    digest = hashlib.sha1(f"{prompt}\x00{response_a}\x00{response_b}".encode()).hexdigest()
    return digest[:16]


def sample_responses(
    model,
    tokenizer,
    prompts: Sequence[Prompt],
    k: int = 2,
    decoding: Decoding = Decoding(),
    seed: int = 0,
    checkpoint: str = "",
) -> list[dict]:
    """``k`` sampled responses per prompt (batched generation, KV cache, left padding), seeded.

    Returns rows ``{prompt, category, responses, lengths, checkpoint, decoding, seed}``. Sample
    ``j`` of every prompt comes from one ``generate`` pass seeded with ``seed + j``: the output is
    the same for the same model, prompts, seed and batch size.
    """
    from lit_rlhf.generation import generate

    if k < 2:
        raise ValueError(f"k must be >= 2 to form pairs, got {k}")
    texts = [p.text for p in prompts]
    samples = [
        generate(
            model,
            tokenizer,
            texts,
            max_new_tokens=decoding.max_new_tokens,
            do_sample=True,
            temperature=decoding.temperature,
            top_p=decoding.top_p,
            batch_size=decoding.batch_size,
            seed=seed + j,
        )
        for j in range(k)
    ]
    rows = []
    for i, p in enumerate(prompts):
        responses = [samples[j][i] for j in range(k)]
        rows.append(
            {
                "prompt": p.text,
                "category": p.category,
                "responses": responses,
                "lengths": [word_count(r) for r in responses],
                "checkpoint": checkpoint,
                "decoding": asdict(decoding),
                "seed": seed,
            }
        )
    return rows


def build_comparisons(sample_rows: Sequence[dict], skips: SkipReport | None = None) -> list[Comparison]:
    """All ``k*(k-1)/2`` pairs of distinct, non-empty responses per prompt (needed for cycle checks when k >= 3).

    Empty responses and identical responses cannot be compared meaningfully; they are counted in ``skips``.
    A pair that repeats an earlier one of the same prompt (the same two responses, in either order, which
    happens when two of the k samples are equal) is one comparison, not two: it is kept once and the
    repeats are counted as ``repeated_pair``. So every pair id is unique, as the annotation store needs.
    """
    skips = skips if skips is not None else SkipReport()
    out: list[Comparison] = []
    for row_no, row in enumerate(sample_rows):
        seen: set[frozenset[str]] = set()
        for i, j in itertools.combinations(range(len(row["responses"])), 2):
            a, b = row["responses"][i], row["responses"][j]
            where = f"prompt {row_no} responses {i},{j}"
            key = frozenset((" ".join(a.split()), " ".join(b.split())))
            if not a.strip() or not b.strip():
                skips.skip("empty_response", where)
            elif len(key) == 1:
                skips.skip("identical_responses", where)
            elif key in seen:
                skips.skip("repeated_pair", where)
            else:
                seen.add(key)
                meta = {"checkpoint": row.get("checkpoint", ""), "response_indices": [i, j]}
                out.append(Comparison(pair_id_for(row["prompt"], a, b), row["prompt"], row["category"], a, b, meta))
                skips.kept += 1
    return out
