"""DPO stage: a policy + preference pairs (a file, or its own samples labelled by a reward model) -> DPO policy,
compared with the starting policy (the gym's gold judge, or a reward model on held-out prompts).

Order of work, each step reusable by a resumed run:
1. pairs: n samples per gym training prompt from the SFT policy, best/worst by the reward model
   (``${output_dir}/pairs.jsonl``, reused when present), or a preference file (``dpo.pairs.source=file``);
2. the reference log-probs of every pair, one pass of the frozen SFT copy, which is then dropped;
3. training with ``L = L_DPO + λ·L_NTP`` (NTP batches from ``cfg.data``, the SFT data);
4. the HF checkpoint, then DPO vs SFT by the gold judge (win/tie/loss) and response lengths.
"""

from __future__ import annotations

import gc
from pathlib import Path

from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_info
from omegaconf import DictConfig, OmegaConf

from lit_rlhf.data.errors import ConfigError
from lit_rlhf.data.jsonl import prompt_row, read_rows
from lit_rlhf.data.preference_files import read_preferences
from lit_rlhf.dpo.data import DPODataModule
from lit_rlhf.dpo.policy_pairs import load_or_build_pairs, policy_pairs
from lit_rlhf.evaluation.compare import compare_with_start
from lit_rlhf.evaluation.heldout import check_judge
from lit_rlhf.models import save_hf_checkpoint
from lit_rlhf.models.adapters import frozen_reference
from lit_rlhf.provenance import input_id
from lit_rlhf.reward.model import RewardModel
from lit_rlhf.stages.common import (
    banner,
    build_trainer,
    check_trainer_config,
    ntp_batches,
    resume_checkpoint_path,
    seed_and_threads,
    trainer_metrics,
    write_json,
)


def run(cfg: DictConfig) -> dict:
    check_trainer_config(cfg)  # before any model is loaded: a bad Trainer setting fails in one line
    seed_and_threads(cfg)
    out = Path(cfg.output_dir)
    options = cfg.dpo
    check_judge(options.eval, "dpo.eval")  # before training: the comparison comes after it
    banner(f"DPO -> {out}")
    policy, tokenizer = instantiate(cfg.model)
    # the gym's prompts for sampled pairs, and its gold judge: gym experiments only
    uses_gym = (options.pairs.source == "policy" and not options.pairs.get("prompts")) or options.eval.judge == "gold"
    gym = instantiate(cfg.gym) if uses_gym else None
    rows, pair_report = build_pairs(
        options.pairs, policy, tokenizer, gym, out, int(cfg.seed), str(cfg.model.get("source", "embedded"))
    )
    datamodule = DPODataModule(tokenizer, rows, **OmegaConf.to_container(options.data), seed=int(cfg.seed))
    reference = frozen_reference(policy)  # LoRA: the policy's base with its adapters off, not a copy
    rank_zero_info(f"reference log-probs: {datamodule.cache_reference_logps(reference)} pairs, computed once")
    del reference  # the cache replaces it during training
    gc.collect()
    config = OmegaConf.to_object(cfg.module.config)  # a DPOConfig, checked; the module builds the same one
    module = instantiate(
        cfg.module, policy=policy, tokenizer=tokenizer, ntp_batches=ntp_batches(cfg, config, tokenizer)
    )
    policy.train()  # from_pretrained returns eval mode; Lightning keeps whatever mode it finds
    trainer = build_trainer(cfg)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_checkpoint_path(cfg))
    checkpoint = save_hf_checkpoint(module.policy, tokenizer, out / "checkpoint")
    summary = {
        "checkpoint": str(checkpoint),
        "pairs": {"n": len(rows), **pair_report},
        "truncated": datamodule.truncated,
        "train_metrics": trainer_metrics(trainer),
    }
    trained = {r["prompt"] for r in datamodule.train_rows}
    heldout = [r for r in datamodule.val_rows if r["prompt"] not in trained]  # a prompt may have several pairs
    start, _ = instantiate(cfg.model)  # the starting policy again, for the comparison (not kept during training)
    summary.update(compare_with_start(cfg, module.policy, start, tokenizer, gym, heldout, "dpo"))
    comparison = summary.get("vs_sft") or summary.get("vs_start")
    if comparison:  # mean length in words per category of the answers the comparison judged
        baseline = "sft" if "vs_sft" in summary else "start"
        summary["response_words"] = {
            name: {c: v["mean"] for c, v in comparison["lengths"][key].items()}
            for name, key in (("dpo", "policy"), (baseline, baseline))
        }
        rank_zero_info(
            "mean response length (words): "
            + ", ".join(f"{name} {v['all']:.2f}" for name, v in summary["response_words"].items())
        )
    write_json(out / "results.json", summary)
    return summary


def build_pairs(
    options: DictConfig, policy, tokenizer, gym, out: Path, seed: int, policy_source: str = ""
) -> tuple[list[dict], dict]:
    """Pairs from the policy and reward model (cached in ``out/pairs.jsonl``), or from a preference file."""
    if options.source == "file":
        rows = read_preferences(options.path, format=options.get("format", "auto"), on_error="skip")
        report = {"kept": rows.report.kept, "skipped": dict(rows.report.counts), "source": str(options.path)}
        return list(rows), report
    if options.source != "policy":
        raise ConfigError(f"dpo.pairs.source must be 'policy' or 'file', got {options.source!r}")
    if not options.get("reward_model"):
        raise ConfigError(
            "dpo.pairs.source=policy needs dpo.pairs.reward_model, the reward model that picks the "
            "best and worst of each prompt's samples"
        )
    categories = list(options.categories) if options.categories else None
    decoding = OmegaConf.to_container(options.decoding)
    settings = {
        "reward_model": str(options.reward_model),
        "reward_model_id": input_id(str(options.reward_model)),
        "policy_id": input_id(policy_source) if policy_source else None,
        "n": int(options.n),
        "seed": seed,
        "categories": categories,
        "decoding": decoding,
        "policy": policy_source,
    }
    if options.get("prompts"):
        settings.update({"prompts": str(options.prompts), "prompts_id": input_id(str(options.prompts))})
    else:
        settings.update({"split": options.split, "gym_seed": gym.seed})

    def build():
        reward_model = RewardModel.load(options.reward_model)
        return policy_pairs(
            policy,
            tokenizer,
            reward_model.score,
            pair_prompts(options, gym, categories),
            int(options.n),
            seed,
            **decoding,
        )

    return load_or_build_pairs(out / "pairs.jsonl", settings, build)


def pair_prompts(options: DictConfig, gym, categories: list[str] | None) -> list[dict]:
    """The prompts to sample pairs for: ``dpo.pairs.prompts`` (a JSONL of ``{prompt, category?}``), else the gym's
    ``dpo.pairs.split``; ``categories`` filters either."""
    if options.get("prompts"):
        rows = read_rows(str(options.prompts), prompt_row)
        return [r for r in rows if categories is None or r["category"] in categories]
    return [{"prompt": p.text, "category": p.category} for p in gym.prompts(options.split, categories)]
