"""Preparing RL prompts: reading them, the reference-baseline cache and reward-variance prompt filtering."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from statistics import pvariance

from lightning.pytorch.utilities import rank_zero_info

from lit_rlhf.data.errors import ConfigError, DataError, ReportedRows, SkipReport
from lit_rlhf.data.jsonl import prompt_row, read_jsonl, read_rows, write_jsonl
from lit_rlhf.generation import generate_rounds

# Sampled references use their own seeds, so they are independent of the prompt filter's samples.
_REFERENCE_SEED_OFFSET = 10_000


def read_prompts_jsonl(
    path: str | os.PathLike,
    prompt_key: str = "prompt",
    categories: list[str] | None = None,
    on_error: str = "raise",
    report: SkipReport | None = None,
) -> ReportedRows:
    """RL prompts ``{prompt, category}`` from JSONL rows with a ``prompt`` (and optionally a ``category``, else "all").

    Rows are read as ``lit-rlhf-eval`` reads its prompt files (``prompt_row``). A row without a usable prompt or
    with a category that is not a non-empty string raises ``DataError`` naming file:line and field; with
    ``on_error="skip"`` it is counted in ``report`` instead. Rows outside ``categories`` (when
    given) are counted as skipped too, so the report accounts for every line.
    """

    def parse(row: dict, source: str, line: int) -> dict:
        return {**prompt_row(row, source, line, prompt_key), "line": line}

    report = report if report is not None else SkipReport()
    rows = []
    for row in read_rows(path, parse, on_error, report):
        line = row.pop("line")
        if categories and row["category"] not in categories:
            report.skip(f"category not in {sorted(categories)}", f"{path}:{line}")
        else:
            rows.append(row)
    report.kept = len(rows)
    if not rows:
        raise DataError(f"{path}: no usable prompt in the categories {sorted(categories or [])} ({report.summary()})")
    return ReportedRows(rows, report)


def reference_baseline(
    reference,
    tokenizer,
    reward_fn,
    prompts: list[str],
    path: str | os.PathLike | None = None,
    max_new_tokens: int = 32,
    greedy: bool = True,
    seed: int = 0,
    samples: int = 1,
    temperature: float = 1.0,
) -> dict[str, dict]:
    """``{prompt: {"response": y_ref, "score": r(x, y_ref), ...}}`` from the SFT (reference) model.

    ``greedy=True`` (the paper's y_ref): one greedy answer per prompt. ``greedy=False``: ``samples``
    answers sampled at ``temperature``; ``score`` is then their mean, an estimate of the SFT model's
    expected reward on the prompt (a greedy answer can sit far from it, and one sample is noisy);
    the row also keeps every ``responses``/``scores``.

    Computed once before training and cached as JSONL at ``path``; a later run (or a resumed one)
    reads the cache and only generates for prompts it lacks, so the baseline never changes under a
    run. A cache made with other settings is refused rather than mixed in.
    """
    if samples < 1 or (greedy and samples != 1):
        raise ConfigError(
            f"reference baseline: samples must be 1 with greedy decoding and >= 1 otherwise, "
            f"got greedy={greedy} samples={samples}"
        )
    decoding = "greedy" if greedy else "sample"
    cache = _read_baseline_cache(path, decoding, samples) if path is not None else {}
    missing = [p for p in dict.fromkeys(prompts) if p not in cache]
    if missing:
        rank_zero_info(
            f"reference baseline: {samples} {decoding} y_ref per prompt for {len(missing)} prompts "
            f"({len(cache)} cached)"
        )
        seeds = [seed] if greedy else [seed + _REFERENCE_SEED_OFFSET + i for i in range(samples)]
        rounds = generate_rounds(
            reference,
            tokenizer,
            missing,
            seeds,
            max_new_tokens=max_new_tokens,
            do_sample=not greedy,
            temperature=temperature,
        )
        scores = [reward_fn(missing, responses) for responses in rounds]
        for j, prompt in enumerate(missing):
            row_scores = [float(s[j]) for s in scores]
            cache[prompt] = {
                "response": rounds[0][j],
                "score": sum(row_scores) / samples,
                "decoding": decoding,
                "samples": samples,
            }
            if samples > 1:
                cache[prompt].update(responses=[r[j] for r in rounds], scores=row_scores)
        if path is not None:
            write_jsonl(path, ({"prompt": p, **v} for p, v in cache.items()))
    return cache


def _read_baseline_cache(path: str | os.PathLike, decoding: str, samples: int) -> dict[str, dict]:
    if not Path(path).exists():
        return {}
    cache = {}
    for line, row in read_jsonl(path):
        made = (row.get("decoding", "greedy"), int(row.get("samples", 1)))  # rows without them are greedy
        if made != (decoding, samples):
            raise ConfigError(
                f"{path}:{line}: reference baseline cached with decoding={made[0]} samples={made[1]}, "
                f"this run asks for decoding={decoding} samples={samples}; delete the file or use "
                "another output directory"
            )
        cache[row["prompt"]] = {k: v for k, v in row.items() if k != "prompt"}
    return cache


def sampled_rewards(
    policy,
    tokenizer,
    reward_fn,
    prompts: list[str],
    k: int,
    max_new_tokens: int = 32,
    temperature: float = 1.0,
    seed: int = 0,
) -> list[list[float]]:
    """Rewards ``[P][k]`` of k answers sampled for each prompt (round i sampled with seed ``seed + i``)."""
    rounds = generate_rounds(
        policy, tokenizer, prompts, [seed + i for i in range(k)], max_new_tokens=max_new_tokens, temperature=temperature
    )
    scores = [reward_fn(prompts, responses) for responses in rounds]
    return [[float(s[i]) for s in scores] for i in range(len(prompts))]


def filter_by_reward_variance(
    policy,
    tokenizer,
    reward_fn,
    rows: list[dict],
    k: int = 4,
    min_variance: float = 1e-3,
    max_new_tokens: int = 32,
    temperature: float = 1.0,
    seed: int = 0,
    scores: list[list[float]] | None = None,
) -> tuple[list[dict], dict]:
    """Keep prompts whose k sampled responses get rewards with variance of at least ``min_variance``.

    A prompt whose answers all score alike gives PPO no signal (every advantage is
    about zero), so it only costs generation time. ``rows`` are ``{prompt, category}``
    dicts; returns the kept rows and a report with counts per category. ``scores`` (``[P][k]``, from
    :func:`sampled_rewards`) skips the sampling when the caller already has them.
    """
    if k < 2:
        raise ConfigError(f"reward-variance filtering needs k >= 2 samples per prompt, got {k}")
    if scores is None:
        scores = sampled_rewards(
            policy, tokenizer, reward_fn, [r["prompt"] for r in rows], k, max_new_tokens, temperature, seed
        )
    if len(scores) != len(rows) or any(len(s) != k for s in scores):
        raise ValueError(f"scores must hold k={k} rewards for each of the {len(rows)} prompts")
    variances = [pvariance(s) for s in scores]
    kept = [r for r, v in zip(rows, variances) if v >= min_variance]
    if rows and not kept:
        raise DataError(
            f"the prompt filter kept none of {len(rows)} prompts: the reward variance of every prompt's "
            f"{k} sampled answers is below min_variance={min_variance} (largest {max(variances):.3g}); "
            "lower ppo.prompt_filter.min_variance, or turn the filter off (ppo.prompt_filter.enabled=false)"
        )
    before = Counter(r.get("category", "all") for r in rows)
    after = Counter(r.get("category", "all") for r in kept)
    report = {
        "k": k,
        "min_variance": min_variance,
        "before": len(rows),
        "kept": len(kept),
        "dropped": len(rows) - len(kept),
        "per_category": {
            c: {"before": before[c], "kept": after[c], "dropped": before[c] - after[c]} for c in sorted(before)
        },
    }
    rank_zero_info(
        f"prompt filter: kept {len(kept)} of {len(rows)} prompts (reward variance >= {min_variance} "
        f"over {k} samples); dropped per category: "
        + ", ".join(f"{c}={v['dropped']}" for c, v in report["per_category"].items())
    )
    return kept, report
