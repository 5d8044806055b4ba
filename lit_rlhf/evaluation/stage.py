"""Evaluation stage (``lit-rlhf-eval``): candidate checkpoints vs a baseline on held-out prompts, and the report.

Judges: ``gold`` (the gym's gold judge), ``reward_model`` (a trained reward model) or ``human``
(a blind round on the annotation page: the first run writes the pairs and stops, a later run reads
the labels). With gym prompts it adds AlignBench-style 1-10 scores and the capability probes.
Writes ``results.json``, ``report.md`` and PNG plots to ``output_dir``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_info
from omegaconf import DictConfig, ListConfig

from lit_rlhf.data.errors import ConfigError, DataError
from lit_rlhf.data.jsonl import prompt_row, read_rows
from lit_rlhf.evaluation import human
from lit_rlhf.evaluation.answers import (
    absolute_scores,
    flatten,
    gold_judge,
    judge_rounds,
    length_stats,
    reward_model_judge,
    sample_rounds,
)
from lit_rlhf.evaluation.compare import probe_rates
from lit_rlhf.evaluation.heldout import provenance_overlap
from lit_rlhf.evaluation.pairwise import format_table, outcomes, win_tie_loss
from lit_rlhf.evaluation.report import write_report
from lit_rlhf.models import build_policy
from lit_rlhf.stages.common import banner, seed_and_threads, write_json

JUDGES = ("gold", "reward_model", "human")


def run(cfg: DictConfig) -> dict:
    seed_and_threads(cfg)
    options, out, seed = cfg.eval, Path(cfg.output_dir), int(cfg.seed)
    if options.judge not in JUDGES:
        raise ConfigError(f"eval.judge must be one of {list(JUDGES)}, got {options.judge!r}")
    banner(f"evaluation ({options.judge} judge) -> {out}")
    gym = instantiate(cfg.gym) if options.prompts is None else None
    if gym is None and options.judge == "gold":
        raise ConfigError("eval.judge=gold scores gym prompts only; with eval.prompts set, use reward_model or human")
    texts, categories, source = eval_prompts(options, gym)
    human_dir = Path(options.human.dir)
    if options.judge == "human" and (human_dir / human.KEY_FILE).exists():
        return human_results(cfg, texts, categories, source)
    checkpoints = {
        options.baseline.name: [str(options.baseline.path)],
        **{name: _as_list(paths) for name, paths in options.candidates.items()},
    }
    check_held_out(checkpoints, texts, source)
    answers, probes = sample_models(checkpoints, options, texts, gym if options.probes else None, seed)
    if options.judge == "human":
        return start_human_round(options, texts, categories, answers, checkpoints, seed)
    judge = gold_judge(gym.judge) if options.judge == "gold" else reward_model_judge(_reward_model(options))
    results = header(cfg, texts, source)
    results["pairwise"], results["per_checkpoint"] = pairwise_tables(
        judge, texts, categories, answers, checkpoints, options
    )
    results["lengths"] = {name: length_stats(categories, answers[name]) for name in checkpoints}
    if gym is not None:
        results["absolute"] = {
            name: absolute_scores(gym.judge, texts, categories, answers[name]) for name in checkpoints
        }
    if probes:
        results["probes"] = probes
    return finish(cfg, results)


def check_held_out(checkpoints: dict[str, list[str]], texts: list[str], source: str) -> None:
    """Refuse to score a checkpoint on prompts that it, or any run it was built from, trained on.

    Every stage writes its ``config.yaml`` beside its checkpoint; :func:`provenance_overlap` follows those to
    the prompts each run read (e.g. a PPO run with another gym seed drew its RL prompts from another split).
    """
    for name, paths in checkpoints.items():
        for path in paths:
            overlap = provenance_overlap(Path(path).parent, texts)
            if overlap:
                found = "; ".join(f"{where} ({n})" for where, n in sorted(overlap.items()))
                raise ConfigError(
                    f"eval: {name} checkpoint {path} comes from runs that trained on prompts of "
                    f"{source}, so they are not held out: {found}. Evaluate on prompts no stage trained "
                    "on (the same gym.seed for every stage, eval.split=test)"
                )


def _as_list(paths) -> list[str]:
    """A candidate is one checkpoint, or a list of them (one method's runs with different training seeds)."""
    return [str(p) for p in paths] if isinstance(paths, (list, ListConfig)) else [str(paths)]


def sample_models(
    checkpoints: dict[str, list[str]], options: DictConfig, texts, gym, seed: int
) -> tuple[dict[str, list[list[str]]], dict[str, dict[str, float]]]:
    """Every checkpoint's answers (``samples_per_prompt`` rounds each, one model after another, so a
    candidate with several checkpoints has their rounds in order) and, with a gym, mean probe pass rates."""
    answers, probes = {}, {}
    for name, paths in checkpoints.items():
        answers[name], rates = [], []
        for path in paths:
            model, tokenizer = load_model(name, path, options)
            answers[name] += sample_rounds(
                model, tokenizer, texts, options.samples_per_prompt, options.max_new_tokens, seed
            )
            if gym is not None:
                rates.append(probe_rates(model, tokenizer, gym, options, seed))
        if rates:
            probes[name] = {k: sum(r[k] for r in rates) / len(rates) for k in rates[0]}
    return answers, probes


def pairwise_tables(judge, texts, categories, answers, checkpoints, options) -> tuple[dict, dict]:
    """Win/tie/loss of each candidate against the baseline, pooled over the candidate's checkpoints
    (each checkpoint's rounds against the baseline's same rounds), and the ``all`` row of each checkpoint."""
    base = options.baseline.name
    margin = max(float(options.tie_margin), 1e-6)
    rounds = len(answers[base])
    base_scores, flat_categories = flatten(judge_rounds(judge, texts, answers[base]), categories)
    pooled, per_checkpoint = {}, {}
    for name in options.candidates:
        scores = judge_rounds(judge, texts, answers[name])
        results = [
            outcomes(flatten(scores[i : i + rounds], categories)[0], base_scores, margin)
            for i in range(0, len(scores), rounds)
        ]
        pooled[name] = win_tie_loss([o for r in results for o in r], flat_categories * len(results))
        per_checkpoint[name] = [
            {"checkpoint": path, **win_tie_loss(r, flat_categories)["all"]}
            for path, r in zip(checkpoints[name], results)
        ]
        each = ", ".join(f"{t['win_minus_loss']:+.1f}" for t in per_checkpoint[name])
        rank_zero_info(
            format_table(pooled[name], name, base) + (f"\n  per checkpoint: {each}" if len(results) > 1 else "")
        )
    return pooled, per_checkpoint


def eval_prompts(options: DictConfig, gym) -> tuple[list[str], list[str], str]:
    """Prompt texts and categories: the gym's ``eval.split``, or a JSONL file of ``{prompt, category?}`` rows."""
    if gym is not None:
        prompts = gym.prompts(options.split)
        return [p.text for p in prompts], [p.category for p in prompts], f"the gym's {options.split} split"
    path = str(options.prompts)
    rows = read_rows(path, prompt_row)
    return [r["prompt"] for r in rows], [r["category"] for r in rows], path


def load_model(name: str, path: str, options: DictConfig):
    try:
        model, tokenizer = build_policy(
            str(path), trust_remote_code=bool(options.trust_remote_code), dtype=options.dtype
        )
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"eval model {name!r} ({path}): {err}. Train it first, or set eval.candidates / eval.baseline.path"
        ) from None
    return model.to(eval_device(options.get("device", "auto"))).eval(), tokenizer


def eval_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _reward_model(options: DictConfig):
    from lit_rlhf.reward.model import RewardModel

    return RewardModel.load(options.reward_model, device=str(eval_device(options.get("device", "auto"))))


def header(cfg: DictConfig, texts: list[str], source: str) -> dict:
    options = cfg.eval
    return {
        "judge": options.judge,
        "split": options.split,
        "samples_per_prompt": int(options.samples_per_prompt),
        "tie_margin": float(options.tie_margin),
        "seed": int(cfg.seed),
        "prompts": {"n": len(texts), "source": source},
        "baseline": {"name": options.baseline.name, "path": str(options.baseline.path)},
        "candidates": {k: _as_list(v) for k, v in options.candidates.items()},
        "pairwise": {},
    }


def finish(cfg: DictConfig, results: dict) -> dict:
    """Add what the earlier stages wrote (reward-model accuracy, PPO curves), then write results and report."""
    report = cfg.eval.report
    rm_results = Path(report.reward_model_results) if report.reward_model_results else None
    if rm_results and rm_results.exists():
        import json

        results["reward_model"] = json.loads(rm_results.read_text())
    results["training_runs"] = {k: str(v) for k, v in (report.training_runs or {}).items()}
    out = Path(cfg.output_dir)
    write_json(out / "results.json", results)
    path = write_report(results, out, report.ablations)
    rank_zero_info(f"report: {path}")
    return results


def start_human_round(options: DictConfig, texts, categories, answers: dict, checkpoints: dict, seed: int) -> dict:
    base = options.baseline.name
    candidates = {n: answers[n] for n in options.candidates}
    # a candidate with several checkpoints meets the baseline's same rounds once per checkpoint
    baseline = {n: answers[base] * len(checkpoints[n]) for n in options.candidates}
    written = human.write_blind_pairs(options.human.dir, texts, categories, (base, baseline), candidates, seed)
    db = Path(options.human.dir) / human.DB_FILE
    rank_zero_info(
        f"human evaluation: {written['pairs']} blind pairs to label ({written['identical_answers']} "
        f"identical answer pairs count as ties). Serve them with\n"
        f"  lit-rlhf-annotate serve --db {db} --pairs {written['pairs_file']}\n"
        "then run this evaluation again to read the labels."
    )
    return {"status": "awaiting labels", **written}


def human_results(cfg: DictConfig, texts, categories, source: str) -> dict:
    from lit_rlhf.collection.storage import AnnotationStore

    options = cfg.eval
    db = Path(options.human.dir) / human.DB_FILE
    if not db.exists():
        raise FileNotFoundError(
            f"no labels yet: {db} does not exist. Serve the pairs with "
            f"lit-rlhf-annotate serve --db {db} --pairs {Path(options.human.dir) / human.PAIRS_FILE}"
        )
    store = AnnotationStore(db)
    try:
        by_candidate = human.human_outcomes(
            Path(options.human.dir) / human.KEY_FILE, store.votes(), float(options.human.min_agreement)
        )
    finally:
        store.close()
    results = header(cfg, texts, source)
    results["human_counts"] = {}
    for name, entry in by_candidate.items():
        if not entry["outcomes"]:
            raise DataError(f"no labelled pairs for {name!r} in {db} yet ({entry['counts']})")
        results["pairwise"][name] = win_tie_loss(entry["outcomes"], entry["categories"])
        results["human_counts"][name] = entry["counts"]
        rank_zero_info(format_table(results["pairwise"][name], name, options.baseline.name) + f"\n  {entry['counts']}")
    return finish(cfg, results)
