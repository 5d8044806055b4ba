"""DPO stage: SFT policy + pairs labelled by the trained reward model -> DPO policy, judged against SFT by the gold judge.

Order of work, each step reusable by a resumed run:
1. pairs: n samples per gym training prompt from the SFT policy, best/worst by the reward model
   (``${output_dir}/pairs.jsonl``, reused when present), or a preference file (``dpo.pairs.source=file``);
2. the reference log-probs of every pair, one pass of the frozen SFT copy, which is then dropped;
3. training with ``L = L_DPO + λ·L_NTP`` (NTP batches from ``cfg.data``, the SFT data);
4. the HF checkpoint, then DPO vs SFT by the gold judge (win/tie/loss) and response lengths.
"""

from __future__ import annotations

import copy
import gc
from pathlib import Path

from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_info
from omegaconf import DictConfig, OmegaConf

from lit_rlhf.data.errors import ConfigError
from lit_rlhf.data.ntp import IndexedBatches
from lit_rlhf.data.preference_files import read_preferences
from lit_rlhf.dpo.data import DPODataModule
from lit_rlhf.dpo.module import DPOModule
from lit_rlhf.dpo.policy_pairs import load_or_build_pairs, policy_pairs
from lit_rlhf.evaluation.compare import compare_with_gold
from lit_rlhf.models import save_hf_checkpoint
from lit_rlhf.provenance import input_id
from lit_rlhf.reward.model import RewardModel
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
    options = cfg.dpo
    banner(f"DPO -> {out}")
    policy, tokenizer = instantiate(cfg.model)
    gym = instantiate(cfg.gym)
    rows, pair_report = build_pairs(options.pairs, policy, tokenizer, gym, out, int(cfg.seed),
                                    str(cfg.model.get("source", "embedded")))
    datamodule = DPODataModule(tokenizer, rows, **OmegaConf.to_container(options.data), seed=int(cfg.seed))
    reference = copy.deepcopy(policy)
    rank_zero_info(f"reference log-probs: {datamodule.cache_reference_logps(reference)} pairs, computed once")
    del reference  # the cache replaces it during training
    gc.collect()
    config = instantiate(options.config)
    ntp_batches = None
    if config.ntp_coef > 0:
        ntp_batches = IndexedBatches.from_datamodule(instantiate(cfg.data, tokenizer=tokenizer), seed=int(cfg.seed))
    module = DPOModule(policy, tokenizer, config, ntp_batches=ntp_batches, optimizer=instantiate(options.optimizer),
                       weight_decay=float(options.weight_decay))
    policy.train()  # from_pretrained returns eval mode; Lightning keeps whatever mode it finds
    trainer = build_trainer(cfg)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_checkpoint_path(cfg))
    checkpoint = save_hf_checkpoint(module.policy, tokenizer, out / "checkpoint")
    summary = {"checkpoint": str(checkpoint), "pairs": {"n": len(rows), **pair_report},
               "truncated": datamodule.truncated,
               "train_metrics": trainer_metrics(trainer)}
    sft, _ = instantiate(cfg.model)  # the SFT policy again, for the comparison (not kept during training)
    summary["vs_sft"] = compare_with_gold(module.policy, sft, tokenizer, gym, options.eval, int(cfg.seed), name="dpo")
    # mean length in words per category of the answers the comparison judged
    summary["response_words"] = {name: {c: v["mean"] for c, v in summary["vs_sft"]["lengths"][key].items()}
                                 for name, key in (("dpo", "policy"), ("sft", "sft"))}
    rank_zero_info("mean response length (words): " + ", ".join(
        f"{name} {v['all']:.2f}" for name, v in summary["response_words"].items()))
    write_json(out / "results.json", summary)
    return summary


def build_pairs(options: DictConfig, policy, tokenizer, gym, out: Path, seed: int, policy_source: str = ""
                ) -> tuple[list[dict], dict]:
    """Pairs from the policy and reward model (cached in ``out/pairs.jsonl``), or from a preference file."""
    if options.source == "file":
        rows = read_preferences(options.path, format=options.get("format", "auto"), on_error="skip")
        report = {"kept": rows.report.kept, "skipped": dict(rows.report.counts), "source": str(options.path)}
        return list(rows), report
    if options.source != "policy":
        raise ConfigError(f"dpo.pairs.source must be 'policy' or 'file', got {options.source!r}")
    categories = list(options.categories) if options.categories else None
    decoding = OmegaConf.to_container(options.decoding)
    settings = {"reward_model": str(options.reward_model), "reward_model_id": input_id(str(options.reward_model)),
                "policy_id": input_id(policy_source) if policy_source else None, "n": int(options.n), "seed": seed,
                "split": options.split, "gym_seed": gym.seed, "categories": categories, "decoding": decoding,
                "policy": policy_source}

    def build():
        prompt_rows = [{"prompt": p.text, "category": p.category} for p in gym.prompts(options.split, categories)]
        reward_model = RewardModel.load(options.reward_model)
        return policy_pairs(policy, tokenizer, reward_model.score, prompt_rows, int(options.n), seed, **decoding)

    return load_or_build_pairs(out / "pairs.jsonl", settings, build)
