"""PPO stage: SFT policy + trained reward model -> PPO policy, evaluated against SFT by the gold judge."""

from __future__ import annotations

import random
from pathlib import Path

import torch
from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_info
from omegaconf import DictConfig, OmegaConf

from lit_rlhf.core.rewards import prompt_reward_spread
from lit_rlhf.data.errors import ConfigError
from lit_rlhf.data.resumable import ResumableDataLoader
from lit_rlhf.evaluation.compare import compare_with_start
from lit_rlhf.evaluation.heldout import check_judge
from lit_rlhf.models import save_hf_checkpoint
from lit_rlhf.models.adapters import frozen_reference
from lit_rlhf.ppo.reward_offsets import OffsetReward
from lit_rlhf.ppo.reward_parts import build_reward_parts
from lit_rlhf.ppo.rl_prompts import filter_by_reward_variance, reference_baseline, sampled_rewards
from lit_rlhf.ppo.value_model import SharedBaseCritic, ValueModel
from lit_rlhf.provenance import clear_if_made_otherwise, input_id
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


def collate_prompts(rows: list[dict]) -> dict:
    return {"prompt": [r["prompt"] for r in rows], "category": [r.get("category", "all") for r in rows]}


def prompt_loader(rows: list[dict], prompts_per_iteration: int) -> ResumableDataLoader:
    """Shuffled batches of ``prompts_per_iteration`` prompt rows, one per PPO iteration (an incomplete last batch
    is dropped). Resumable: a run killed mid-epoch continues with the prompts the uninterrupted run drew next."""
    return ResumableDataLoader(
        rows, batch_size=prompts_per_iteration, shuffle=True, drop_last=True, collate_fn=collate_prompts
    )


def run(cfg: DictConfig) -> dict:
    check_trainer_config(cfg)  # before any model is loaded: a bad Trainer setting fails in one line
    seed_and_threads(cfg)
    out = Path(cfg.output_dir)
    options = cfg.ppo
    check_judge(options.eval, "ppo.eval")  # before training: the comparison comes after it
    if options.eval.get("judge") == "gold" and (options.get("prompts") or {}).get("path"):
        raise ConfigError(
            "ppo.eval.judge=gold scores the gym's prompts only, and ppo.prompts.path gives your own: "
            "use experiment=ppo (or ppo.eval.judge=reward_model)"
        )
    banner(f"PPO -> {out}")
    policy, tokenizer = instantiate(cfg.model)
    reference = frozen_reference(policy)  # LoRA: the policy's base with its adapters off, not a copy
    reward_model = RewardModel.load(options.reward_model, dtype=options.get("reward_model_dtype"))
    reward = build_reward_parts(options.get("reward_parts"), reward_model.score)  # a bad part fails here
    rank_zero_info(f"PPO's reward: {reward!r}")
    config = OmegaConf.to_object(cfg.module.config)  # a PPOConfig, checked; the module builds the same one
    with_critic = config.advantage_estimator == "gae"  # the critic-free estimators build none
    if with_critic:
        check_critic_init(options.critic_init, reward_model, tokenizer, policy)  # before the prompt filter's generation
    reports: dict = {}
    rows, heldout, gym = _rl_prompts(cfg, reports)
    rows, reward_fn, ref_scores = _prepare_prompts(cfg, config, reference, tokenizer, reward, rows, reports)
    ntp = ntp_batches(cfg, config, tokenizer)
    critic = _critic(options.critic_init, policy, reward_model) if with_critic else None
    monitor = None
    if gym is not None:  # the gold judge knows the gym's prompts only
        judge = gym.judge
        monitor = lambda ps, rs: [judge.score(p, r).overall for p, r in zip(ps, rs)]  # noqa: E731
    module = instantiate(
        cfg.module,
        policy=policy,
        tokenizer=tokenizer,
        reward_fn=reward_fn,
        reference=reference,
        critic=critic,
        ref_scores=ref_scores,
        ntp_batches=ntp,
        monitor=monitor,
    )
    loader = prompt_loader(rows, options.prompts_per_iteration)
    trainer = build_trainer(cfg)
    if options.get("reward_model_device", "auto") not in ("auto", "cpu"):
        raise ConfigError(f"ppo.reward_model_device must be auto or cpu, got {options.reward_model_device!r}")
    if options.get("reward_model_device", "auto") != "cpu":  # cpu: scored there, off the accelerator's memory
        reward_model.model.to(trainer.strategy.root_device)
    trainer.fit(module, train_dataloaders=loader, ckpt_path=resume_checkpoint_path(cfg))
    if not trainer.is_global_zero:  # one rank writes the checkpoint and runs the evaluation
        return {}
    checkpoint = save_hf_checkpoint(module.policy, tokenizer, out / "checkpoint")
    summary = {
        "checkpoint": str(checkpoint),
        "reward_model": str(options.reward_model),
        "prompts": len(rows),
        **reports,
        "train_metrics": trainer_metrics(trainer),
    }
    summary.update(compare_with_start(cfg, module.policy, reference, tokenizer, gym, heldout, "ppo"))
    write_json(out / "results.json", summary)
    return summary


def _prepare_prompts(
    cfg: DictConfig, config, reference, tokenizer, reward, rows: list[dict], reports: dict
) -> tuple[list[dict], object, dict | None]:
    """Before training: the prompt filter, the reward PPO trains on (with ``ppo.reward_offsets``) and the
    reference baseline's r(x, y_ref) per prompt. Returns the kept rows, the reward function and the
    baseline scores (None without the baseline); the filter's and the spread's reports go into ``reports``."""
    options, new_tokens = cfg.ppo, config.max_new_tokens
    sampled = None
    if options.prompt_filter.enabled:
        sampled = sampled_rewards(
            reference,
            tokenizer,
            reward,
            [r["prompt"] for r in rows],
            options.prompt_filter.k,
            new_tokens,
            seed=cfg.seed,
        )
        kept, reports["prompt_filter"] = filter_by_reward_variance(
            reference,
            tokenizer,
            reward,
            rows,
            options.prompt_filter.k,
            options.prompt_filter.min_variance,
            new_tokens,
            seed=cfg.seed,
            scores=sampled,
        )
        keep = {r["prompt"] for r in kept}
        sampled = [s for r, s in zip(rows, sampled) if r["prompt"] in keep]
        rows = kept
    reward_fn, offset = _offset_reward(options.get("reward_offsets"), reward, rows)
    if not config.reference_baseline:
        return rows, reward_fn, None
    answers = options.get("reference_answers") or {}
    cache_path = Path(cfg.output_dir) / "reference_baseline.jsonl"
    made_from = {
        "reward_model": input_id(str(options.reward_model)),
        "reference": input_id(str(cfg.model.source)),
        "reward_parts": OmegaConf.to_container(options.reward_parts) if options.get("reward_parts") else None,
    }
    if clear_if_made_otherwise(cache_path, made_from):
        rank_zero_info(f"{cache_path} was scored by another reward model or policy: computing it again")
    cache = reference_baseline(
        reference,
        tokenizer,
        reward,
        [r["prompt"] for r in rows],
        cache_path,
        new_tokens,
        greedy=answers.get("greedy", True),
        seed=cfg.seed,
        samples=answers.get("samples", 1),
    )
    ref_scores = {r["prompt"]: cache[r["prompt"]]["score"] + offset(r["prompt"]) for r in rows}
    if sampled is not None:
        sampled = [[s + offset(r["prompt"]) for s in scores] for r, scores in zip(rows, sampled)]
        reports["reward_spread"] = _reward_spread(rows, sampled, ref_scores)
    return rows, reward_fn, ref_scores


def _rl_prompts(cfg: DictConfig, reports: dict) -> tuple[list[dict], list[dict], object]:
    """``(training prompts, held-out prompts, gym)``, rows of ``{prompt, category}``.

    From ``ppo.prompts.path`` when set (its skip report goes into ``reports``): ``ppo.heldout.fraction`` of the
    file is kept out of training for the comparison at the end, drawn by ``ppo.heldout.seed``; the gym is None.
    Else the gym's train prompts of ``ppo.categories``; its test split is the held-out set.
    """
    options = cfg.ppo
    categories = list(options.categories) if options.categories else None
    source = options.get("prompts")
    if source is None or source.get("path") is None:
        gym = instantiate(cfg.gym)
        return [{"prompt": p.text, "category": p.category} for p in gym.prompts("train", categories)], [], gym
    rows = instantiate(source, categories=categories)
    rank_zero_info(f"RL prompts from {source.path}: {rows.report.summary()}")
    reports["prompt_file"] = {"path": str(source.path), "kept": rows.report.kept, "skipped": dict(rows.report.counts)}
    train, heldout = split_heldout(list(rows), float(options.heldout.fraction), int(options.heldout.seed))
    reports["prompt_file"].update({"train": len(train), "heldout": len(heldout)})
    return train, heldout, None


def split_heldout(rows: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """``(train, held out)``: every distinct prompt lands on one side, ``fraction`` of them held out (at least one
    when ``fraction > 0``), drawn by ``seed`` alone, so training seeds never move the split."""
    if not 0 <= fraction < 1:
        raise ConfigError(f"ppo.heldout.fraction must be in [0, 1), got {fraction}")
    prompts = sorted({r["prompt"] for r in rows})
    random.Random(f"{seed}:rl-heldout").shuffle(prompts)
    n = max(1, round(fraction * len(prompts))) if fraction > 0 else 0
    held = set(prompts[:n])
    train = [r for r in rows if r["prompt"] not in held]
    if not train:
        raise ConfigError(f"ppo.heldout.fraction={fraction} leaves no training prompts of {len(prompts)}")
    return train, [r for r in rows if r["prompt"] in held]


def _reward_spread(rows: list[dict], sampled: list[list[float]], ref_scores: dict[str, float]) -> dict:
    """Between- and within-prompt reward variance of the SFT model's sampled answers, without and with the
    reference baseline (the baseline's answers are drawn apart from these samples)."""
    scores = torch.tensor(sampled)
    baseline = torch.tensor([ref_scores[r["prompt"]] for r in rows])
    spread = {"raw": prompt_reward_spread(scores), "baselined": prompt_reward_spread(scores, baseline)}
    rank_zero_info(
        f"reward variance across prompts of the SFT answers: {spread['raw']['between']:.3f} raw, "
        f"{spread['baselined']['between']:.3f} with the reference baseline "
        f"(within a prompt: {spread['raw']['within']:.3f})"
    )
    return spread


def _offset_reward(offsets, reward, rows: list[dict]):
    """The reward PPO trains on and the constant it adds per prompt: ``reward`` itself, or that plus
    ``ppo.reward_offsets`` (``per_category``, ``per_prompt_std``, ``seed``; see ``OffsetReward``). The offsets
    enter after the prompt filter (a constant per prompt leaves variances alone) and on top of the baseline
    cache, which keeps the reward model's own scores."""
    if not offsets:
        return reward, lambda prompt: 0.0
    unknown = sorted(set(offsets) - {"per_category", "per_prompt_std", "seed"})
    if unknown:
        raise ConfigError(f"ppo.reward_offsets: unknown key(s) {unknown}; expected per_category, per_prompt_std, seed")
    shifted = OffsetReward(
        reward,
        {r["prompt"]: r["category"] for r in rows},
        offsets.get("per_category"),
        offsets.get("per_prompt_std", 0.0),
        offsets.get("seed", 0),
        name="ppo.reward_offsets",
    )
    rank_zero_info(f"rewards shifted: {shifted!r}")
    return shifted, shifted.offset


# Where the critic starts: a copy of the policy, a copy of the reward model, or (a LoRA policy) its own base.
CRITIC_INITS = ("policy", "reward_model", "shared")


def check_critic_init(init: str, reward_model: RewardModel, tokenizer, policy) -> None:
    """``ConfigError`` unless ``ppo.critic_init`` is ``policy``, ``reward_model`` with the policy's tokenizer
    (the critic reads the policy's token ids), or ``shared`` with a LoRA policy."""
    if init not in CRITIC_INITS:
        raise ConfigError(f"ppo.critic_init must be one of {', '.join(CRITIC_INITS)}; got {init!r}")
    if init == "shared":
        SharedBaseCritic.check(policy)
    if init == "reward_model" and reward_model.tokenizer.get_vocab() != tokenizer.get_vocab():
        raise ConfigError(
            "ppo.critic_init=reward_model needs the reward model to share the policy's tokenizer; "
            "use ppo.critic_init=policy"
        )


def _critic(init: str, policy, reward_model: RewardModel):
    """The value model ``ppo.critic_init`` names; ``run`` has checked it with :func:`check_critic_init`."""
    if init == "policy":
        return ValueModel.from_policy(policy)
    if init == "shared":
        return SharedBaseCritic(policy)
    # the critic trains: in the policy's dtype, even from a reward model loaded in bf16 to save memory
    return ValueModel.from_reward_model(reward_model.model).to(next(policy.parameters()).dtype)
