"""The whole collection on the gym, as plain functions: prompts -> sampled pairs -> votes -> filtered data set.

The stage, the notebook and the tests call these; each step can be replaced (human votes from the
annotation server, pairs imported from a file) because they only exchange ``Comparison`` and ``Vote``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lit_rlhf.collection.aggregate import drop_report, filter_pairs, preference_rows
from lit_rlhf.collection.agreement import agreement_report, length_statistics
from lit_rlhf.collection.io import save_hf, write_pairs, write_votes
from lit_rlhf.collection.prompt_selection import Prompt, SelectionReport
from lit_rlhf.collection.response_pairs import (
    Comparison,
    Decoding,
    build_comparisons,
    sample_responses,
)
from lit_rlhf.collection.votes import Vote
from lit_rlhf.data.errors import SkipReport
from lit_rlhf.data.jsonl import write_jsonl


@dataclass
class Collection:
    """Everything one collection run produced, in order."""

    samples: list[dict]
    pairs: list[Comparison]
    votes: list[Vote]
    rows: list[dict]
    report: dict = field(default_factory=dict)


def gym_prompts(gym, split: str = "train") -> list[Prompt]:
    return [Prompt(p.text, p.category) for p in gym.prompts(split)]


def sample_pairs(
    model, tokenizer, prompts: Sequence[Prompt], k: int, decoding: Decoding, seed: int, checkpoint: str
) -> tuple[list[dict], list[Comparison], SkipReport]:
    samples = sample_responses(model, tokenizer, prompts, k=k, decoding=decoding, seed=seed, checkpoint=checkpoint)
    skips = SkipReport()
    return samples, build_comparisons(samples, skips), skips


def filter_and_report(
    pairs: Sequence[Comparison],
    votes: Sequence[Vote],
    min_agreement: float = 0.6,
    drop_cycles: bool = True,
    judge=None,
    provenance: dict | None = None,
    pair_skips: SkipReport | None = None,
    selection: SelectionReport | None = None,
) -> tuple[list[dict], dict]:
    """Aggregate votes, filter, and build the report (drops per reason, agreement, length statistics)."""
    verdicts = filter_pairs(pairs, votes, min_agreement=min_agreement, drop_cycles=drop_cycles)
    rows = preference_rows(pairs, verdicts, votes, provenance)
    report = {
        "prompts": selection.as_dict() if selection else None,
        "pairs": {"built": len(pairs), "skipped": dict(pair_skips.counts) if pair_skips else {}},
        "filtering": drop_report(verdicts),
        "votes": {"total": len(votes), "annotators": len({v.annotator for v in votes})},
        "agreement": agreement_report(votes),
        "length": length_statistics(pairs, votes, judge),
        "kept_length": _kept_length_summary(rows),
        "categories": _category_counts(rows),
    }
    return rows, report


def _kept_length_summary(rows: Sequence[dict]) -> dict:
    longer = [r["chosen_len"] > r["rejected_len"] for r in rows if r["chosen_len"] != r["rejected_len"]]
    return {"rows": len(rows), "chosen_is_longer": sum(longer) / len(longer) if longer else math.nan}


def _category_counts(rows: Sequence[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r["category"]] = out.get(r["category"], 0) + 1
    return dict(sorted(out.items()))


def write_collection(out_dir: str | Path, collection: Collection, hf: bool = False) -> dict[str, str]:
    """Write samples, pairs, votes, the preference set (``preferences.jsonl``) and, optionally, an HF copy."""
    out = Path(out_dir)
    paths = {
        "samples": write_jsonl(out / "samples.jsonl", collection.samples),
        "pairs": write_pairs(out / "pairs.jsonl", collection.pairs),
        "votes": write_votes(out / "votes.jsonl", collection.votes),
        "preferences": write_jsonl(out / "preferences.jsonl", collection.rows),
    }
    if hf:
        paths["preferences_hf"] = save_hf(collection.rows, out / "preferences_hf")
    return {k: str(v) for k, v in paths.items()}


def format_report(report: dict) -> str:
    """A short human-readable version of the report, for the console."""
    lines = []
    prompts = report.get("prompts")
    if prompts:
        lines.append(
            "prompts per category (before -> after): "
            + ", ".join(f"{c} {prompts['before'].get(c, 0)}->{prompts['after'].get(c, 0)}" for c in prompts["before"])
        )
        lines.append(f"prompts dropped: {prompts['dropped_total'] or 'none'}")
    pairs, filtering = report["pairs"], report["filtering"]
    lines.append(f"pairs built: {pairs['built']} (skipped: {pairs['skipped'] or 'none'})")
    lines.append(f"pairs kept: {filtering['kept']} of {filtering['pairs']}; dropped: {filtering['dropped']}")
    agreement = report["agreement"]
    lines.append(
        f"votes: {report['votes']['total']} from {report['votes']['annotators']} annotators; "
        f"pairwise agreement {agreement['pairwise_agreement']:.3f}, "
        f"Fleiss kappa {agreement['fleiss_kappa']:.3f}, mean Cohen kappa {agreement['cohen_kappa_mean']:.3f}"
    )
    length = report["length"]
    lines.append("longer response wins (votes" + (" | gold judge" if "gold" in length else "") + "), by length gap:")
    for bucket, stats in length["votes"].items():
        gold = length.get("gold", {}).get(bucket)
        gold_part = f" | {gold['longer_wins']:.3f} (n={gold['n']})" if gold else ""
        lines.append(f"  {bucket:>6}: {stats['longer_wins']:.3f} (n={stats['n']}){gold_part}")
    if "fitted_length_bias" in length:
        fit = length["fitted_length_bias"]
        per = ", ".join(f"{a} {f['length_bias']:.2f}" for a, f in fit["per_annotator"].items())
        lines.append(
            f"fitted length bias (utility per 10 words): median over annotators {fit['length_bias']:.3f} "
            f"[{per}]; pooled {fit['pooled_length_bias']:.3f} (n={fit['n']})"
        )
    lines.append(f"preference rows per category: {report['categories']}")
    return "\n".join(lines)
