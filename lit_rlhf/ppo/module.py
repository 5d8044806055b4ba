"""PPO with the ChatGLM-RLHF practices: reference-baseline reward, NTP regulariser, fused actor-critic update."""

from __future__ import annotations

import functools
import random
from collections.abc import Callable

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn

from lit_rlhf.core.kl import kl_estimate
from lit_rlhf.core.kl_controllers import build_kl_controller
from lit_rlhf.core.logprobs import entropy_from_logits
from lit_rlhf.core.masked import masked_aggregate, masked_mean, masked_var
from lit_rlhf.core.ppo_losses import clipped_policy_loss, clipped_value_loss
from lit_rlhf.core.reward_normalization import build_reward_normalizer
from lit_rlhf.core.rewards import kl_penalized_rewards, reference_baseline_reward
from lit_rlhf.core.sft_loss import masked_lm_loss, masked_reference_kl
from lit_rlhf.data.errors import ConfigError
from lit_rlhf.models.adapters import frozen_reference
from lit_rlhf.models.modes import eval_mode
from lit_rlhf.ppo.config import PPOConfig
from lit_rlhf.ppo.estimators import baselined_returns, rollout_advantages
from lit_rlhf.ppo.rollout import (
    Rollout,
    decode_responses,
    minibatch_indices,
    response_logprobs,
    response_values,
    rollout_rewards,
    sample_rollout,
)
from lit_rlhf.ppo.value_model import ValueModel
from lit_rlhf.systems.adamw import actor_critic_param_groups, adamw_settings
from lit_rlhf.systems.fused_optimizer import FusedBackwardAdamW
from lit_rlhf.systems.optimizers import build_optimizer
from lit_rlhf.systems.precision import clip_grad_norm_before_step, prepare_optimizer

RewardFn = Callable[[list[str], list[str]], list[float]]
# The optimizer of a module built without one: the rates of conf/module/ppo.yaml, for pretrained models (a test
# keeps the two equal). A model trained from scratch (the gym's) wants far higher ones: pass `optimizer=`.
DEFAULT_OPTIMIZER = functools.partial(torch.optim.AdamW, lr=1e-6)
DEFAULT_PARAM_GROUPS = {"critic": {"lr": 5e-6}}


class PPOModule(L.LightningModule):
    """Manual-optimization PPO over a policy (trained), a critic (trained), a frozen reference and a reward function.

    ``reward_fn(prompts, responses) -> list[float]`` is typically ``RewardModel.score``; a ``RewardModel``
    that shares the policy's tokenizer then scores the rollout's token ids, with no decode/re-encode.
    ``ref_scores`` maps each training prompt to r(x, y_ref) (see ``lit_rlhf.ppo.rl_prompts``).
    ``ntp_batches(k)`` returns the k-th SFT batch (``input_ids``, ``attention_mask``, ``labels``),
    e.g. ``lit_rlhf.data.ntp.IndexedBatches``; one is drawn per update when ``config.ntp_coef > 0`` (and then
    it is required).
    Batches from the dataloader are dicts with a ``prompt`` list (and optionally ``category``); each is cut
    into exactly ``config.num_minibatches`` minibatches per epoch (see ``minibatch_indices``).

    Dropout, per forward: the rollout is read without it. Sampling, the old log-probs, the values and
    the reference log-probs run in eval mode, each model put back in its own mode afterwards, so they
    are deterministic and, while the policy's weights equal the reference's, the KL penalty is exactly
    0. The update (PPO losses and the NTP term) runs in the mode the module is in: under ``fit`` that
    is train mode, so a model with dropout trains with it and the first minibatch's ratio differs from
    1 by the dropout noise alone. A model built with zero dropout sees a ratio of exactly 1 there.
    """

    def __init__(
        self,
        policy,
        tokenizer,
        reward_fn: RewardFn,
        config: PPOConfig | None = None,
        reference=None,
        critic: torch.nn.Module | None = None,
        ref_scores: dict[str, float] | None = None,
        ntp_batches: Callable[[int], dict] | None = None,
        monitor: Callable | None = None,
        optimizer: Callable | None = None,
        param_groups: dict[str, dict] | None = None,
        weight_decay: float = 0.0,
        fused_optimizer: bool | str = "auto",
    ):
        super().__init__()
        self.automatic_optimization = False
        self.config = config or PPOConfig()
        # One optimizer steps policy and critic after one backward; ``param_groups`` gives a group (``policy``,
        # ``critic``) settings of its own, e.g. the critic's higher learning rate.
        self.optimizer_factory = optimizer or DEFAULT_OPTIMIZER
        self.param_groups = DEFAULT_PARAM_GROUPS if param_groups is None else dict(param_groups)
        self.weight_decay, self.fused_optimizer = weight_decay, fused_optimizer
        self.policy, self.tokenizer, self.reward_fn = policy, tokenizer, reward_fn
        # an adapted (LoRA) policy's reference is its own base with the adapters off: no second copy
        self.reference = reference if reference is not None else frozen_reference(policy)
        if isinstance(self.reference, torch.nn.Module):
            self.reference.requires_grad_(False).eval()
        if self.config.advantage_estimator != "gae":
            if critic is not None:
                raise ConfigError(f"advantage_estimator={self.config.advantage_estimator} trains no critic; pass none")
            self.critic = None  # critic-free: the baseline comes from other answers, not a value model
        else:
            self.critic = critic if critic is not None else ValueModel.from_policy(policy)
        if self.config.reference_baseline and not ref_scores:
            raise ConfigError(
                "reference_baseline=True needs ref_scores (r(x, y_ref) per prompt); "
                "build them with lit_rlhf.ppo.rl_prompts.reference_baseline or set reference_baseline=False"
            )
        self.ref_scores = dict(ref_scores or {})
        if self.config.ntp_coef > 0 and ntp_batches is None:
            raise ConfigError(
                f"ntp_coef={self.config.ntp_coef} > 0 needs ntp_batches (e.g. "
                "lit_rlhf.data.ntp.IndexedBatches over SFT data); set ntp_coef=0 to train without it"
            )
        self.ntp_batches = ntp_batches
        self.ntp_step = 0  # which NTP batch comes next; checkpointed for exact resume
        self.monitor = monitor  # e.g. the gym's gold judge: logged, never optimised
        c = self.config
        self.kl_controller = build_kl_controller(c.kl_coef, c.adaptive_kl, c.kl_target, c.kl_horizon)
        # Running reward statistics are summed over ranks, so every rank normalises alike.
        self.normalizer = build_reward_normalizer(c.reward_normalization, all_reduce_sum=self._sum_over_ranks)
        self._compiled_losses = None

    def configure_optimizers(self):
        c = self.config
        if self.critic is None and self.param_groups.get("critic"):
            rank_zero_warn(
                f"param_groups.critic is unused: advantage_estimator={c.advantage_estimator} trains no critic"
            )
        groups = actor_critic_param_groups(self.policy, self.critic, self.param_groups)
        if c.fused_backward:
            optimizer = FusedBackwardAdamW(
                groups,
                weight_decay=self.weight_decay,
                fused=self.fused_optimizer,
                **adamw_settings(self.optimizer_factory, "fused_backward"),
            )
        else:
            optimizer = build_optimizer(self.optimizer_factory, groups, self.weight_decay, self.fused_optimizer)
        # Refuses Trainer settings the in-backward optimizer cannot honour; readies clipping under AMP.
        return prepare_optimizer(optimizer, self.trainer, gradient_clip_val=c.max_grad_norm)

    def configure_model(self) -> None:
        """Under FSDP2 (``strategy=fsdp2``) shard policy, critic and reference block by block."""
        shard = getattr(self.trainer.strategy, "shard_models", None) if self._trainer is not None else None
        if shard is not None:
            shard(self.policy, *[m for m in (self.critic, self.reference) if isinstance(m, torch.nn.Module)])

    # ---- rollout -------------------------------------------------------------------------------
    @torch.no_grad()
    def make_experience(self, prompts: list[str]) -> tuple[Rollout, dict]:
        """One rollout over ``samples_per_prompt`` answers to each prompt (rows grouped by prompt)."""
        c = self.config
        prompts = [p for p in prompts for _ in range(c.samples_per_prompt)]
        rollout = sample_rollout(self.policy, self.tokenizer, prompts, c.max_new_tokens, c.temperature, c.top_p)
        # Without dropout (see the class docstring): the stored log-probs and values are the models' own
        # numbers, not one noisy draw, and policy == reference gives a KL of exactly 0.
        with eval_mode(self.policy), eval_mode(self.reference):
            rollout.logprobs = response_logprobs(self.policy, rollout, c.temperature)
            rollout.ref_logprobs = response_logprobs(self.reference, rollout, c.temperature)
        if self.critic is not None:
            with eval_mode(self.critic):
                rollout.values = response_values(self.critic, rollout)
        responses = decode_responses(self.tokenizer, rollout)
        raw = self._scores(prompts, responses, rollout)
        parts = {f"reward/part/{n}": torch.tensor(v) for n, v in getattr(self.reward_fn, "last", {}).items()}
        scores = raw
        if c.reference_baseline:
            missing = [p for p in prompts if p not in self.ref_scores]
            if missing:
                raise KeyError(f"no reference-baseline score for {len(missing)} prompts, e.g. {missing[0]!r}")
            ref = torch.tensor([self.ref_scores[p] for p in prompts], dtype=torch.float32, device=self.device)
            scores = reference_baseline_reward(raw, ref)
        scores = self.normalizer(scores)
        mask = rollout.response_mask
        beta = self.kl_controller.value if c.kl_penalty == "reward" else 0.0  # else a loss term in the update
        rewards, kl = kl_penalized_rewards(scores, rollout.logprobs, rollout.ref_logprobs, mask, beta, c.kl_estimator)
        greedy = self._greedy_scores(prompts) if c.advantage_estimator == "remax" else None
        rollout.advantages, rollout.returns = rollout_advantages(c, rewards, mask, rollout.values, greedy)
        stats = {
            "reward/raw": raw.mean(),
            "reward/raw_std": raw.std(unbiased=False),
            "reward/used": scores.mean(),
            "reward/used_std": scores.std(unbiased=False),
            # what the estimator's baseline leaves: the variance its policy gradient carries
            "reward/baselined_std": baselined_returns(c, rewards, mask, rollout.values, greedy).std(unbiased=False),
            "objective/kl": kl.sum(-1).mean(),
            "objective/kl_coef": torch.tensor(self.kl_controller.value),
            "rollout/response_length": mask.sum(-1).float().mean(),
            **parts,  # each part's mean, before ReMax's greedy answers are scored too
        }
        return rollout, {"stats": stats, "responses": responses, "raw": raw, "prompts": prompts}

    def _scores(self, prompts: list[str], responses: list[str], rollout: Rollout) -> torch.Tensor:
        # A reward model sharing the policy's tokenizer reads the rollout's ids; others get the text.
        scores = rollout_rewards(self.reward_fn, self.tokenizer, prompts, responses, rollout)
        return torch.tensor(scores, dtype=torch.float32, device=self.device)

    def _greedy_scores(self, prompts: list[str]) -> torch.Tensor:
        """ReMax's baseline: the score of the current policy's greedy answer, once per distinct prompt."""
        distinct = list(dict.fromkeys(prompts))
        greedy = sample_rollout(self.policy, self.tokenizer, distinct, self.config.max_new_tokens, greedy=True)
        by_prompt = dict(zip(distinct, self._scores(distinct, decode_responses(self.tokenizer, greedy), greedy)))
        return torch.stack([by_prompt[p] for p in prompts])

    # ---- update --------------------------------------------------------------------------------
    def _ppo_losses(self, mb: Rollout) -> tuple[torch.Tensor, dict]:
        c = self.config
        logprobs, logits = response_logprobs(self.policy, mb, c.temperature, with_logits=True)
        mask = mb.response_mask
        policy = clipped_policy_loss(logprobs, mb.logprobs, mb.advantages, mask, c.clip_range, c.loss_aggregation)
        # The entropy of the distribution responses are sampled from: the temperature-scaled one.
        entropy = masked_mean(entropy_from_logits(logits if c.entropy_coef else logits.detach(), c.temperature), mask)
        loss = policy.loss - c.entropy_coef * entropy
        stats = {
            "policy/loss": policy.loss.detach(),
            "policy/clipfrac": policy.clip_fraction,
            "policy/approx_kl": policy.approx_kl,
            "policy/entropy": entropy.detach(),
        }
        if self.critic is not None:
            values = response_values(self.critic, mb)
            value = clipped_value_loss(values, mb.values, mb.returns, mask, c.value_clip_range)
            loss = loss + c.value_loss_coef * value.loss
            stats.update({"critic/loss": value.loss.detach(), "critic/clipfrac": value.clip_fraction})
        if c.kl_penalty == "loss":  # GRPO's: the current policy's KL to the reference, with gradient
            kl = masked_aggregate(kl_estimate(logprobs, mb.ref_logprobs, c.kl_estimator), mask, c.loss_aggregation)
            loss = loss + self.kl_controller.value * kl
            stats["policy/kl_loss"] = kl.detach()
        return loss, stats

    def _update_losses(self, mb: Rollout) -> tuple[torch.Tensor, dict]:
        if not self.config.compile_update:
            return self._ppo_losses(mb)
        if self._compiled_losses is None:
            # The function is compiled, not the models: parameter names, checkpoints and the
            # ``logits_to_keep`` check on the model's class stay as they are.
            self._compiled_losses = torch.compile(type(self)._ppo_losses)
        return self._compiled_losses(self, mb)

    def _ntp_loss(self) -> torch.Tensor | None:
        if self.config.ntp_coef == 0:
            return None
        batch = {k: v.to(self.device) for k, v in self.ntp_batches(self.ntp_step).items()}
        self.ntp_step += 1
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "use_cache": False}
        logits = self.policy(**inputs).logits
        if self.config.ntp_target == "reference":
            with torch.no_grad(), eval_mode(self.reference):
                ref_logits = self.reference(**inputs).logits
            return masked_reference_kl(logits, ref_logits, batch["labels"])
        return masked_lm_loss(logits, batch["labels"])

    def training_step(self, batch: dict, batch_idx: int) -> None:
        c = self.config
        optimizer = self.optimizers()
        rollout, info = self.make_experience(list(batch["prompt"]))
        prompts = info["prompts"]  # each prompt samples_per_prompt times
        n = len(prompts)
        totals: dict[str, float] = {}
        updates = 0
        for _ in range(c.ppo_epochs):
            for index in minibatch_indices(torch.randperm(n, device=self.device), c.num_minibatches):
                mb = rollout.select(index)
                loss, stats = self._update_losses(mb)
                ntp = self._ntp_loss()
                if ntp is not None:
                    loss = loss + c.ntp_coef * ntp
                    stats["ntp/loss"] = ntp.detach()
                optimizer.zero_grad(set_to_none=True)
                # One backward for actor and critic (fused update); with fused_backward the
                # parameters are already stepped when it returns and step() only closes the update.
                self.manual_backward(loss)
                if c.max_grad_norm:
                    clip_grad_norm_before_step(self, optimizer, c.max_grad_norm)
                optimizer.step()
                for k, v in stats.items():
                    totals[k] = totals.get(k, 0.0) + float(v)
                updates += 1
        self.kl_controller.update(float(self._mean_over_ranks(info["stats"]["objective/kl"])), n * self._world())
        metrics = {k: float(v) for k, v in info["stats"].items()}
        metrics.update({k: v / updates for k, v in totals.items()})
        if self.critic is not None:
            metrics.update(self._critic_quality(rollout))
        gold = self.monitor(prompts, info["responses"]) if self.monitor is not None else None
        if gold is not None:
            metrics["gold/rollout"] = float(sum(gold) / n)
        self.log_dict(metrics, prog_bar=False, on_step=True, on_epoch=False, batch_size=n, sync_dist=True)
        if "category" in batch:
            # Which category drifts first: rank zero's own prompts only (another rank may lack a category, and
            # a key logged on some ranks alone would stall a synced reduction).
            per_category = {
                "reward/raw": info["raw"].tolist(),
                "rollout/response_length": rollout.response_mask.sum(-1).tolist(),
                **({"gold/rollout": gold} if gold is not None else {}),
            }
            categories = [c for c in batch["category"] for _ in range(self.config.samples_per_prompt)]
            for name, values in per_category.items():
                self.log_dict(
                    category_means(name, values, categories),
                    on_step=True,
                    on_epoch=False,
                    batch_size=n,
                    rank_zero_only=True,
                )
        self.log("reward", metrics["reward/raw"], prog_bar=True, on_step=True, batch_size=n, sync_dist=True)
        self.last_rollout = {"prompts": prompts, "responses": info["responses"], "raw": info["raw"].tolist()}

    @property
    def model(self):
        """The policy, under the name callbacks shared with ``SFTModule`` look for."""
        return self.policy

    def _world(self) -> int:
        return self.trainer.world_size if self._trainer is not None else 1

    def _mean_over_ranks(self, value: torch.Tensor) -> torch.Tensor:
        if self._world() == 1:
            return value
        return self.trainer.strategy.reduce(value.detach().clone().to(self.device), reduce_op="mean")

    def _sum_over_ranks(self, value: torch.Tensor) -> torch.Tensor:
        if self._world() == 1:
            return value
        return self.trainer.strategy.reduce(value.to(self.device), reduce_op="sum").to(value.device)

    @staticmethod
    def _critic_quality(rollout: Rollout) -> dict[str, float]:
        mask = rollout.response_mask
        error = masked_mean((rollout.values - rollout.returns).square(), mask)
        explained = 1 - masked_var(rollout.returns - rollout.values, mask) / masked_var(rollout.returns, mask).clamp(
            min=1e-8
        )
        return {"critic/value_error": float(error), "critic/explained_variance": float(explained)}

    # ---- checkpoint: the RL state beyond parameters and optimizer ----------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["ppo_state"] = {
            "kl_controller": self.kl_controller.state_dict(),
            "normalizer": self.normalizer.state_dict(),
            "ref_scores": self.ref_scores,
            "ntp_step": self.ntp_step,
            # Sampling and minibatch shuffling draw from these; restoring them makes a resumed run exact.
            "rng": {
                "torch": torch.get_rng_state(),
                "python": random.getstate(),
                "numpy": _numpy_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            },
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("ppo_state", {})
        if state:
            self.kl_controller.load_state_dict(state["kl_controller"])
            self.normalizer.load_state_dict(state["normalizer"])
            self.ref_scores = state["ref_scores"]
            self.ntp_step = state["ntp_step"]
            rng = state["rng"]
            torch.set_rng_state(rng["torch"])
            random.setstate(rng["python"])
            kind, keys, pos, has_gauss, cached = rng["numpy"]
            np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
            if rng["cuda"] is not None and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])


def category_means(name: str, values: list[float], categories: list[str]) -> dict[str, float]:
    """``{"<name>/<category>": mean of values}`` over the categories present, e.g. ``reward/raw/writing``."""
    groups: dict[str, list[float]] = {}
    for value, category in zip(values, categories, strict=True):
        groups.setdefault(category, []).append(float(value))
    return {f"{name}/{category}": sum(v) / len(v) for category, v in sorted(groups.items())}


def _numpy_state() -> tuple:
    """NumPy's RNG state as plain Python values: checkpoints load with ``weights_only=True``."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return kind, keys.tolist(), int(pos), int(has_gauss), float(cached)
