"""Every PPO knob in one dataclass, checked when built."""

from __future__ import annotations

from dataclasses import dataclass

from lit_rlhf.data.errors import ConfigError

ESTIMATORS = ("gae", "grpo", "rloo", "reinforce_pp", "remax")
GROUPED = ("grpo", "rloo")  # their baseline is the other answers to the same prompt


@dataclass
class PPOConfig:
    """Hyper-parameters of one PPO iteration (rollout, then ``ppo_epochs`` passes of minibatch updates).

    The one home of PPO's defaults: Hydra composes ``module.config`` from this dataclass (registered as a
    structured config by ``lit_rlhf.conf``), so ``module.config.<field>=...`` overrides any field and the
    experiments state only what differs. Learning rates are the optimizer's (``PPOModule(optimizer=...,
    param_groups=...)``; ``module.optimizer.lr``, ``module.param_groups.critic.lr`` on the command line).
    """

    max_new_tokens: int = 24
    """Longest sampled response, in tokens."""
    temperature: float = 1.0
    """Sampling temperature; log-probs are taken at the same temperature."""
    top_p: float = 1.0
    ppo_epochs: int = 4
    """Passes over each rollout batch."""
    num_minibatches: int = 2
    """Minibatches per pass, exactly (sizes differ by at most one); one optimizer step each. At most the
    prompts per iteration on each rank."""
    clip_range: float = 0.2
    """ε of the clipped policy ratio."""
    value_clip_range: float = 0.2
    """ε of the clipped value update."""
    value_loss_coef: float = 0.5
    """Weight of the critic's loss in the fused actor-critic loss."""
    entropy_coef: float = 0.0
    gamma: float = 1.0
    lam: float = 0.95
    kl_coef: float = 0.05
    """β of the per-token KL penalty against the reference (SFT) policy (the initial β when adaptive)."""
    kl_estimator: str = "k1"
    adaptive_kl: bool = False
    kl_target: float | None = None
    kl_horizon: float = 10000.0
    whiten_advantages: bool = True
    """gae only: whiten the advantages over the batch's tokens (the critic-free estimators scale as their papers do)."""
    reward_normalization: str = "none"
    """none | running | batch. The paper uses the reference baseline and no other normalisation."""
    reference_baseline: bool = True
    """Use r(x, y) - r(x, y_ref) with y_ref the SFT model's own answer (needs ``ref_scores``)."""
    advantage_estimator: str = "gae"
    """gae (PPO with a critic) | grpo | rloo | reinforce_pp | remax: the critic-free ones need no value model
    (``lit_rlhf.core.critic_free`` says what each paper does). The reference baseline composes with each."""
    samples_per_prompt: int = 1
    """k answers sampled per prompt each iteration; grpo and rloo need k >= 2 (their baseline is the group)."""
    kl_penalty: str = "reward"
    """reward: ``-β KL`` on every token of the reward (PPO, RLOO, REINFORCE++, ReMax); loss: ``β KL`` of the
    current policy to the reference as a loss term (GRPO), with ``kl_estimator`` (GRPO takes k3)."""
    loss_aggregation: str = "token"
    """token: the policy loss averages every token of the batch alike; sequence: each answer's token mean first,
    then the answers' mean (GRPO's paper)."""
    grpo_scale: bool = True
    """GRPO divides by the group's std; False only centres (Dr. GRPO)."""
    ntp_coef: float = 0.0
    """λ of L = L_PPO + λ·L_NTP on SFT batches, against capability forgetting; 0 turns it off."""
    ntp_target: str = "labels"
    """What L_NTP fits on those batches. labels: their tokens (cross-entropy; the paper's NTP term). reference:
    the reference's next-token distribution at the same positions (KL(p_ref ‖ p)), which holds the policy's
    answers to those prompts where SFT left them instead of fitting the labels further (docs/ppo.md)."""
    max_grad_norm: float | None = 1.0
    """Global gradient-norm clipping; must be None with ``fused_backward``."""
    fused_backward: bool = False
    """Step each parameter inside backward and free its gradient at once (``FusedBackwardAdamW``):
    lower peak memory; incompatible with global gradient clipping and accumulation."""
    compile_update: bool = False
    """Run the update's forwards and losses through ``torch.compile`` (one graph, backward included). On the
    CPU benchmark about 9 % less time per iteration after half a minute of compiling (a cold cache), so it pays
    for long runs only (docs/ppo_systems.md). Tried on one CPU process only."""

    def __post_init__(self):
        checks = {
            "max_new_tokens": self.max_new_tokens >= 1,
            "temperature": self.temperature > 0,
            "top_p": 0 < self.top_p <= 1,
            "ppo_epochs": self.ppo_epochs >= 1,
            "num_minibatches": self.num_minibatches >= 1,
            "clip_range": self.clip_range > 0,
            "value_clip_range": self.value_clip_range > 0,
            "gamma": 0 <= self.gamma <= 1,
            "lam": 0 <= self.lam <= 1,
            "kl_coef": self.kl_coef >= 0,
            "kl_estimator": self.kl_estimator in ("k1", "k2", "k3"),
            "reward_normalization": self.reward_normalization in ("none", "running", "batch"),
            "ntp_coef": self.ntp_coef >= 0,
            "ntp_target": self.ntp_target in ("labels", "reference"),
            "advantage_estimator": self.advantage_estimator in ESTIMATORS,
            "samples_per_prompt": self.samples_per_prompt >= (2 if self.advantage_estimator in GROUPED else 1),
            "kl_penalty": self.kl_penalty in ("reward", "loss"),
            "loss_aggregation": self.loss_aggregation in ("token", "sequence"),
            "kl_target": not self.adaptive_kl or (self.kl_target or 0) > 0,
            # no moment exists in which all gradients are alive to take their global norm
            "max_grad_norm": not (self.fused_backward and self.max_grad_norm),
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ConfigError("invalid PPO config values: " + ", ".join(f"{k}={getattr(self, k)!r}" for k in bad))
