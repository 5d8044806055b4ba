"""SFT stage: fine-tune the policy on demonstrations, save an HF checkpoint, compare with the starting model."""

from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_info
from omegaconf import DictConfig, OmegaConf

from lit_rlhf.evaluation.compare import compare_with_start
from lit_rlhf.evaluation.gold import ceiling_scores, gold_scores
from lit_rlhf.evaluation.heldout import check_judge
from lit_rlhf.evaluation.plots import plot_category_scores
from lit_rlhf.models import save_hf_checkpoint
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
    check_trainer_config(cfg)  # before any model is loaded: a bad Trainer setting fails in one line
    seed_and_threads(cfg)
    out = Path(cfg.output_dir)
    banner(f"SFT -> {out}")
    options = OmegaConf.select(cfg, "sft.eval") or OmegaConf.create({"judge": None})
    check_judge(options, "sft.eval")
    model, tokenizer = instantiate(cfg.model)
    datamodule = instantiate(cfg.data, tokenizer=tokenizer)
    module = instantiate(cfg.module, model=model, tokenizer=tokenizer)
    gym = instantiate(cfg.gym) if options.judge == "gold" else None
    before = _gold_scores(model, tokenizer, gym, options, cfg.seed)[0] if gym else None
    trainer = build_trainer(cfg)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_checkpoint_path(cfg))
    checkpoint = save_hf_checkpoint(module.model, tokenizer, out / "checkpoint")
    summary = {
        "checkpoint": str(checkpoint),
        "train_metrics": trainer_metrics(trainer),
        "truncated": datamodule.train_set.truncated if datamodule.train_set else {},
        "skipped": {name: report.summary() for name, report in datamodule.skip_reports.items()},
    }
    for name, report in datamodule.skip_reports.items():
        rank_zero_info(f"{name} data: {report.summary()}")
    if gym is not None:
        after, rows = _gold_scores(module.model, tokenizer, gym, options, cfg.seed)
        ceiling = ceiling_scores(gym, options.split)
        table = {
            name: {c: v["overall"] for c, v in scores.items()}
            for name, scores in (("untrained", before), ("sft", after), ("ceiling", ceiling))
        }
        summary["gold"] = table
        plot_category_scores(table, out / "gold_scores.png", "gold judge on held-out prompts")
        write_json(out / "samples.json", {"samples": rows[:200]})
        rank_zero_info(_format_table(table))
    elif options.get("reward_model"):
        start, _ = instantiate(cfg.model)  # the model SFT started from, again (not kept during training)
        summary.update(compare_with_start(cfg, module.model, start, tokenizer, None, datamodule.val_rows, "sft"))
    else:
        rank_zero_info("no comparison with the starting model: set sft.eval.reward_model to judge one")
    write_json(out / "results.json", summary)
    return summary


def _gold_scores(model, tokenizer, gym, options: DictConfig, seed: int):
    return gold_scores(
        model,
        tokenizer,
        gym,
        options.split,
        int(options.samples_per_prompt),
        seed,
        max_new_tokens=options.max_new_tokens,
        temperature=options.get("temperature", 1.0),
    )


def _format_table(table: dict[str, dict[str, float]]) -> str:
    categories = sorted(next(iter(table.values())))
    lines = ["gold judge score (held-out prompts)", f"{'category':<10}" + "".join(f"{n:>11}" for n in table)]
    for c in categories:
        lines.append(f"{c:<10}" + "".join(f"{table[n][c]:>11.3f}" for n in table))
    return "\n".join(lines)
