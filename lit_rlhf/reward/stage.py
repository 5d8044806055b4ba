"""Reward-model stage: train on preference pairs, save an HF checkpoint, report held-out metrics."""

from __future__ import annotations

import copy
from pathlib import Path

from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from omegaconf import DictConfig, OmegaConf, open_dict

from lit_rlhf.reward.metrics import above_chance, accuracy_interval, evaluate_pairs
from lit_rlhf.stages.common import (
    banner,
    build_trainer,
    check_trainer_config,
    resume_checkpoint_path,
    seed_and_threads,
    trainer_metrics,
    write_json,
)


def run(cfg: DictConfig) -> dict:
    """Train ``cfg.module`` on ``cfg.data`` with a Trainer from ``cfg.trainer``; write
    ``<output_dir>/checkpoint`` (HF, reloads with ``AutoModelForSequenceClassification``) and
    ``<output_dir>/results.json``."""
    check_trainer_config(cfg)  # before any model is loaded: a bad Trainer setting fails in one line
    seed_and_threads(cfg)
    out = Path(cfg.output_dir)
    banner(f"reward model -> {out}")
    options = cfg.get("reward") or OmegaConf.create({})
    model, tokenizer = instantiate(cfg.model)
    datamodule = instantiate(cfg.data, tokenizer=tokenizer)
    log_skipped_rows(datamodule.skip_reports)
    module = instantiate(cfg.module, model=model, tokenizer=tokenizer)
    trainer = build_trainer(_without_generation_callbacks(cfg))
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_checkpoint_path(cfg))
    summary = {
        "train_metrics": trainer_metrics(trainer),
        "truncated": datamodule.truncated,
        "skipped": {name: report.summary() for name, report in datamodule.skip_reports.items()},
        "rows_read": {name: report.as_dict() for name, report in datamodule.skip_reports.items()},
        "length_balance": datamodule.balance_report.as_dict() if datamodule.balance_report else None,
        "pairs": {
            "train": len(datamodule.train_set),
            "val": len(datamodule.val_rows),
            "test": len(datamodule.test_rows),
        },
    }
    if datamodule.balance_report is not None:
        rank_zero_info(datamodule.balance_report.format())
    if datamodule.test_rows:  # per-category and per-length-bucket accuracies, as test/reward/...
        summary["test_metrics"] = trainer.test(module, datamodule=datamodule, verbose=False)[0]
    eval_rows = datamodule.test_rows or datamodule.val_rows
    if eval_rows:
        judge = None
        if options.get("gold_eval", False):  # gym experiments: agreement with the gym's gold judge too
            judge, summary["gold_eval"] = gold_judge(cfg, eval_rows)
        summary["heldout"] = evaluate_pairs(module.scorer, eval_rows, judge, tokenizer)
        summary["heldout_split"] = "test" if datamodule.test_rows else "val"
        rank_zero_info(
            f"held-out ({summary['heldout_split']}): "
            + ", ".join(f"{k}={v:.3f}" for k, v in summary["heldout"].items())
        )
        warn_if_near_chance(summary["heldout"])
    stats = summary.get("heldout", {})
    checkpoint = module.scorer.save(
        out / "checkpoint", extra={"score_mean": stats.get("score_mean"), "score_std": stats.get("score_std")}
    )
    summary["checkpoint"] = str(checkpoint)
    write_json(out / "results.json", summary)  # written last: marks the stage as done
    return summary


def warn_if_near_chance(heldout: dict) -> None:
    """Adds ``accuracy_ci95`` to the held-out metrics, and warns when that interval reaches 0.5: PPO or
    best-of-n against such a model follows its noise (on gym 9, PPO's reward for math rose sevenfold while
    the gold judge's fell)."""
    lo, hi = accuracy_interval(heldout["accuracy"], heldout["pairs"])
    heldout["accuracy_ci95"] = [lo, hi]
    if not above_chance((lo, hi)):
        rank_zero_warn(
            f"reward model: held-out accuracy {heldout['accuracy']:.3f} on {heldout['pairs']} pairs, 95% interval "
            f"[{lo:.2f}, {hi:.2f}], is not above chance (0.5); RL against it may optimise noise "
            "(more or cleaner preference pairs, or a stronger backbone, would help)"
        )


def gold_judge(cfg: DictConfig, rows: list[dict]):
    """``(judge, note)``: the gym's gold judge when every held-out prompt is a gym prompt, else ``None``.

    The gold judge knows the task behind each gym prompt and nothing else, so on other data
    (HH-RLHF, one's own JSONL) ``reward.gold_eval`` has nothing to score; the note says so.
    """
    from lit_rlhf.gym import parse_prompt

    outside = 0
    for row in rows:
        try:
            parse_prompt(row["prompt"])
        except ValueError:
            outside += 1
    if outside:
        note = (
            f"skipped: {outside} of {len(rows)} held-out prompts are not gym prompts, "
            "and the gold judge scores gym prompts only"
        )
        rank_zero_info(f"reward.gold_eval {note}")
        return None, note
    return instantiate(cfg.gym).judge, "on"


def log_skipped_rows(reports: dict) -> None:
    """One line per split: a warning naming the reasons and first file:line of each when rows were skipped."""
    for name, report in reports.items():
        if report.skipped:
            rank_zero_warn(f"{name} data: {report.summary()}; counts in results.json['rows_read']")
        else:
            rank_zero_info(f"{name} data: {report.summary()}")


def _without_generation_callbacks(cfg: DictConfig) -> DictConfig:
    """Drop the gold-judge generation monitor: a reward model does not generate."""
    callbacks = cfg.get("callbacks") or {}
    kept = {
        name: c
        for name, c in callbacks.items()
        if c is None or not str(c.get("_target_", "")).endswith("GoldJudgeMonitor")
    }
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.callbacks = kept
    return cfg
