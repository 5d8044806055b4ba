"""DPO pairs as ChatGLM-RLHF builds them: sample n responses per prompt from the policy, label by the reward model.

For each prompt the best-scored response becomes ``chosen`` and the worst ``rejected``. A
prompt whose samples all score the same, or whose best and worst texts are identical, teaches
nothing and is skipped; skips are counted by reason in a ``SkipReport``. This decouples DPO's
data from human annotation. Human or collected pairs (prompt/chosen/rejected JSONL, HH-RLHF)
are read with :func:`lit_rlhf.data.preference_files.read_preferences` instead.

Pairs are written atomically to a JSONL file next to a ``.meta.json`` of the settings that
made them; a later run with the same settings reuses the file (so a killed run resumes without
sampling again), and one with different settings refuses rather than mixing them up.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_info

from lit_rlhf.data.errors import ConfigError, DataError, SkipReport
from lit_rlhf.data.jsonl import write_jsonl
from lit_rlhf.data.preference_files import read_preference_jsonl
from lit_rlhf.generation import generate

ScoreFn = Callable[[list[str], list[str]], list[float]]


def best_worst_pairs(
    rows: list[dict], responses: list[list[str]], scores: list[list[float]], report: SkipReport | None = None
) -> list[dict]:
    """One pair per prompt: ``responses[i]``/``scores[i]`` are the n samples of ``rows[i]`` (``{prompt, category?}``).

    Ties go to the earliest sample, so the result is deterministic. Skips are counted in ``report``
    as "tied scores" or "identical responses".
    """
    if not len(rows) == len(responses) == len(scores):
        raise ValueError(f"got {len(rows)} prompts, {len(responses)} response lists, {len(scores)} score lists")
    report = report if report is not None else SkipReport()
    pairs = []
    for i, (row, texts, values) in enumerate(zip(rows, responses, scores)):
        if len(texts) != len(values) or len(texts) < 2:
            raise ValueError(f"prompt {i}: need >= 2 responses with one score each, got {len(texts)}/{len(values)}")
        best = max(range(len(values)), key=lambda k: values[k])
        worst = min(range(len(values)), key=lambda k: values[k])
        if values[best] == values[worst]:
            report.skip("tied scores", f"prompt {i}")
            continue
        if texts[best].strip() == texts[worst].strip():
            report.skip("identical responses", f"prompt {i}")
            continue
        pairs.append(
            {
                "prompt": row["prompt"],
                "chosen": texts[best],
                "rejected": texts[worst],
                "category": row.get("category", "all"),
                "chosen_score": float(values[best]),
                "rejected_score": float(values[worst]),
                "margin": float(values[best] - values[worst]),
            }
        )
    report.kept += len(pairs)
    return pairs


def sample_and_score(
    policy, tokenizer, score_fn: ScoreFn, prompts: list[str], n: int, seed: int = 0, **decoding
) -> tuple[list[list[str]], list[list[float]]]:
    """``n`` sampled responses per prompt (sample k seeded with ``seed + k``) and their scores, per prompt."""
    if n < 2:
        raise ConfigError(f"best/worst pairs need n >= 2 samples per prompt, got {n}")
    by_round = [generate(policy, tokenizer, prompts, seed=seed + k, **decoding) for k in range(n)]
    flat_scores = score_fn([p for _ in range(n) for p in prompts], [r for texts in by_round for r in texts])
    m = len(prompts)
    responses = [[by_round[k][i] for k in range(n)] for i in range(m)]
    scores = [[float(flat_scores[k * m + i]) for k in range(n)] for i in range(m)]
    return responses, scores


def policy_pairs(
    policy, tokenizer, score_fn: ScoreFn, rows: list[dict], n: int = 4, seed: int = 0, **decoding
) -> tuple[list[dict], SkipReport]:
    """Sample, score and pick best/worst for every ``{prompt, category}`` row."""
    report = SkipReport()
    responses, scores = sample_and_score(policy, tokenizer, score_fn, [r["prompt"] for r in rows], n, seed, **decoding)
    return best_worst_pairs(rows, responses, scores, report), report


def load_or_build_pairs(
    path: str | os.PathLike, settings: dict, build: Callable[[], tuple[list[dict], SkipReport]]
) -> tuple[list[dict], dict]:
    """Pairs from ``path`` if it was written with the same ``settings``, else ``build()`` and write them.

    ``settings`` should name everything the pairs depend on (the policy's and reward model's ids
    included, see ``lit_rlhf.provenance.input_id``): pairs made with other settings are rebuilt, and the
    log names the settings that changed. Returns ``(rows, report)`` with the skip counts of the run that
    built the pairs and whether they were ``reused``.
    """
    path = Path(path)
    meta_path = path.with_name(path.name + ".meta.json")
    meta = json.loads(meta_path.read_text()) if path.exists() and meta_path.exists() else None
    if meta is not None and meta["settings"] != settings:
        changed = sorted(
            k for k in meta["settings"].keys() | settings.keys() if meta["settings"].get(k) != settings.get(k)
        )
        rank_zero_info(f"DPO pairs: {path} was built with other {', '.join(changed)}; building them again")
        meta = None
    if meta is not None:
        rows = read_preference_jsonl(path)
        rank_zero_info(f"DPO pairs: reusing {len(rows)} pairs from {path}")
        return list(rows), {**meta["report"], "reused": True}
    rows, skips = build()
    if not rows:
        raise DataError(f"no DPO pairs were built ({skips.summary()})")
    report = {"kept": skips.kept, "skipped": dict(skips.counts), "examples": skips.examples}
    write_jsonl(path, rows)
    # The meta file comes second: a run killed between the two writes rebuilds instead of trusting a stray file.
    tmp = meta_path.with_name(f".{meta_path.name}.tmp")
    tmp.write_text(json.dumps({"settings": settings, "report": report}, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, meta_path)
    rank_zero_info(f"DPO pairs: {skips.summary()} -> {path}")
    return rows, {**report, "reused": False}
