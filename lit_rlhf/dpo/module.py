"""Direct preference optimisation with the NTP regulariser: L = L_DPO + λ·L_NTP."""

from __future__ import annotations

import functools
from collections.abc import Callable

import lightning as L
import torch

from lit_rlhf.core.dpo_loss import implicit_rewards, preference_loss
from lit_rlhf.core.sft_loss import masked_lm_loss
from lit_rlhf.data.errors import ConfigError
from lit_rlhf.dpo.config import DPOConfig
from lit_rlhf.dpo.data import concatenated_logprobs
from lit_rlhf.systems.optimizers import optimizers_for

# The optimizer of a module built without one: conf/module/dpo.yaml's, for pretrained models (a test keeps the
# two equal). A model trained from scratch wants far higher rates: pass `optimizer=`.
DEFAULT_OPTIMIZER = functools.partial(torch.optim.AdamW, lr=5e-7)


class DPOModule(L.LightningModule):
    """Trains ``policy`` on preference batches from :class:`lit_rlhf.dpo.data.DPODataModule`.

    The frozen reference is not part of the module: its log-probs arrive in each batch
    (``ref_logps``, cached once before training by ``DPODataModule.cache_reference_logps``), so
    checkpoints and optimizer state hold the policy only and the reference costs no memory here.
    ``ntp_batches(k)`` returns the k-th SFT batch (``input_ids``, ``attention_mask``, ``labels``),
    e.g. :class:`lit_rlhf.data.ntp.IndexedBatches`; one is drawn per step when ``config.ntp_coef > 0``,
    and the counter ``ntp_step`` is checkpointed so a resumed run draws the same batches.
    ``optimizer`` and ``scheduler`` are partials as in :class:`lit_rlhf.sft.module.SFTModule`.
    """

    def __init__(
        self,
        policy,
        tokenizer,
        config: DPOConfig | None = None,
        ntp_batches: Callable[[int], dict] | None = None,
        optimizer: Callable | None = None,
        scheduler: Callable | None = None,
        weight_decay: float = 0.0,
        fused_optimizer: bool | str = "auto",
    ):
        super().__init__()
        self.policy, self.tokenizer = policy, tokenizer
        self.config = config or DPOConfig()
        if self.config.ntp_coef > 0 and ntp_batches is None:
            raise ConfigError("ntp_coef > 0 needs ntp_batches (e.g. lit_rlhf.data.ntp.IndexedBatches over SFT data)")
        self.ntp_batches = ntp_batches
        self.ntp_step = 0  # which NTP batch comes next; checkpointed for exact resume
        self.optimizer_factory = optimizer or DEFAULT_OPTIMIZER
        self.scheduler_factory = scheduler
        self.weight_decay, self.fused_optimizer = weight_decay, fused_optimizer

    @property
    def model(self):
        """The policy, under the name callbacks shared with ``SFTModule`` look for."""
        return self.policy

    def dpo_losses(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean preference loss over the batch's pairs and the namespaced ``dpo/*`` statistics."""
        if "ref_logps" not in batch:
            raise KeyError(
                "the batch has no 'ref_logps': cache the reference log-probs before training "
                "(DPODataModule.cache_reference_logps or lit_rlhf.dpo.data.cache_reference_logps)"
            )
        c = self.config
        policy_chosen, policy_rejected = concatenated_logprobs(self.policy, batch, c.average_logprobs)
        ref = batch["ref_logps"].to(policy_chosen.dtype)
        if c.average_logprobs:  # the cache holds sums; divide by the same token counts as the policy side
            ref = ref / batch["response_mask"][:, 1:].sum(-1).clamp(min=1)
        ref_chosen, ref_rejected = ref.chunk(2)
        losses = preference_loss(
            policy_chosen, policy_rejected, ref_chosen, ref_rejected, c.beta, c.loss_type, c.label_smoothing
        )
        chosen_reward = implicit_rewards(policy_chosen.detach(), ref_chosen, c.beta)
        rejected_reward = implicit_rewards(policy_rejected.detach(), ref_rejected, c.beta)
        lengths = batch["response_mask"].sum(-1).float().chunk(2)
        stats = {
            "dpo/loss": losses.mean().detach(),
            "dpo/reward_accuracy": (chosen_reward > rejected_reward).float().mean(),
            "dpo/reward_margin": (chosen_reward - rejected_reward).mean(),
            "dpo/chosen_reward": chosen_reward.mean(),
            "dpo/rejected_reward": rejected_reward.mean(),
            "dpo/logps_chosen": policy_chosen.detach().mean(),
            "dpo/logps_rejected": policy_rejected.detach().mean(),
            "dpo/chosen_length": lengths[0].mean(),
            "dpo/rejected_length": lengths[1].mean(),
        }
        return losses.mean(), stats

    def ntp_loss(self) -> torch.Tensor:
        """Next-token loss on SFT batch number ``ntp_step`` (then advance the counter)."""
        batch = {k: v.to(self.device) for k, v in self.ntp_batches(self.ntp_step).items()}
        self.ntp_step += 1
        logits = self.policy(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False
        ).logits
        return masked_lm_loss(logits, batch["labels"])

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, stats = self.dpo_losses(batch)
        if self.config.ntp_coef > 0:
            ntp = self.ntp_loss()
            loss = loss + self.config.ntp_coef * ntp
            stats["ntp/loss"] = ntp.detach()
        stats["train/loss"] = loss.detach()
        pairs = batch["input_ids"].size(0) // 2
        self.log_dict(stats, on_step=True, on_epoch=False, batch_size=pairs)
        self.log("margin", stats["dpo/reward_margin"], prog_bar=True, on_step=True, on_epoch=False, batch_size=pairs)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        _, stats = self.dpo_losses(batch)
        self.log_dict(
            {f"val/{k}": v for k, v in stats.items()},
            on_step=False,
            on_epoch=True,
            batch_size=batch["input_ids"].size(0) // 2,
            sync_dist=True,
        )

    def configure_optimizers(self):
        return optimizers_for(
            self,
            self.policy.named_parameters(),
            self.optimizer_factory,
            self.scheduler_factory,
            self.weight_decay,
            self.fused_optimizer,
        )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["dpo_state"] = {"ntp_step": self.ntp_step}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.ntp_step = int(checkpoint.get("dpo_state", {}).get("ntp_step", 0))
