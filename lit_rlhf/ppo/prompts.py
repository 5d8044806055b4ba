"""Preparing RL prompts: the reference-baseline cache and reward-variance prompt filtering."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from statistics import pvariance

from lightning.pytorch.utilities import rank_zero_info

from lit_rlhf.data.jsonl import read_jsonl, write_jsonl
from lit_rlhf.generation import generate


def reference_baseline(reference, tokenizer, reward_fn, prompts: list[str], path: str | os.PathLike | None = None,
                       max_new_tokens: int = 32, greedy: bool = True, seed: int = 0) -> dict[str, dict]:
    """``{prompt: {"response": y_ref, "score": r(x, y_ref)}}`` from the SFT (reference) model.

    Computed once before training and cached as JSONL at ``path``; a later run (or a
    resumed one) reads the cache and only generates for prompts it lacks, so the
    baseline never changes under a run.
    """
    cache: dict[str, dict] = {}
    if path is not None and Path(path).exists():
        cache = {row["prompt"]: {"response": row["response"], "score": float(row["score"])}
                 for _, row in read_jsonl(path)}
    missing = [p for p in dict.fromkeys(prompts) if p not in cache]
    if missing:
        rank_zero_info(f"reference baseline: generating y_ref for {len(missing)} prompts ({len(cache)} cached)")
        responses = generate(reference, tokenizer, missing, max_new_tokens=max_new_tokens, do_sample=not greedy,
                             seed=seed)
        scores = reward_fn(missing, responses)
        cache.update({p: {"response": r, "score": float(s)} for p, r, s in zip(missing, responses, scores)})
        if path is not None:
            write_jsonl(path, ({"prompt": p, **v} for p, v in cache.items()))
    return cache


def filter_by_reward_variance(policy, tokenizer, reward_fn, rows: list[dict], k: int = 4, min_variance: float = 1e-3,
                              max_new_tokens: int = 32, temperature: float = 1.0, seed: int = 0
                              ) -> tuple[list[dict], dict]:
    """Keep prompts whose k sampled responses get rewards with variance of at least ``min_variance``.

    A prompt whose answers all score alike gives PPO no signal (every advantage is
    about zero), so it only costs generation time. ``rows`` are ``{prompt, category}``
    dicts; returns the kept rows and a report with counts per category.
    """
    if k < 2:
        raise ValueError(f"reward-variance filtering needs k >= 2 samples per prompt, got {k}")
    prompts = [r["prompt"] for r in rows]
    scores_by_round = []
    for round_ in range(k):
        responses = generate(policy, tokenizer, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                             seed=seed + round_)
        scores_by_round.append(reward_fn(prompts, responses))
    variances = [pvariance([float(s[i]) for s in scores_by_round]) for i in range(len(rows))]
    kept = [r for r, v in zip(rows, variances) if v >= min_variance]
    before = Counter(r.get("category", "all") for r in rows)
    after = Counter(r.get("category", "all") for r in kept)
    report = {
        "k": k, "min_variance": min_variance, "before": len(rows), "kept": len(kept), "dropped": len(rows) - len(kept),
        "per_category": {c: {"before": before[c], "kept": after[c], "dropped": before[c] - after[c]}
                         for c in sorted(before)},
    }
    rank_zero_info(f"prompt filter: kept {len(kept)} of {len(rows)} prompts (reward variance >= {min_variance} "
                   f"over {k} samples); dropped per category: "
                   + ", ".join(f"{c}={v['dropped']}" for c, v in report["per_category"].items()))
    return kept, report
