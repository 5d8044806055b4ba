"""Supervised fine-tuning: next-token loss on response tokens, prompt and padding masked."""

from __future__ import annotations

import functools
from collections.abc import Callable

import lightning as L
import torch

from lit_rlhf.core.sft_loss import masked_lm_loss
from lit_rlhf.systems.optimizers import optimizers_for

# The optimizer of a module built without one: conf/module/sft.yaml's, for pretrained models (a test keeps the
# two equal). A model trained from scratch wants far higher rates: pass `optimizer=`.
DEFAULT_OPTIMIZER = functools.partial(torch.optim.AdamW, lr=2e-5, betas=(0.9, 0.95))


class SFTModule(L.LightningModule):
    """Wraps a causal LM. ``optimizer`` and ``scheduler`` are partials (Hydra ``_partial_: true``).

    ``scheduler`` receives the optimizer and the total number of training steps, e.g.
    ``lit_rlhf.systems.optimizers.warmup_cosine``.
    """

    def __init__(
        self,
        model,
        tokenizer,
        optimizer: Callable | None = None,
        scheduler: Callable | None = None,
        weight_decay: float = 0.0,
        fused_optimizer: bool | str = "auto",
    ):
        super().__init__()
        self.model, self.tokenizer = model, tokenizer
        self.optimizer_factory = optimizer or DEFAULT_OPTIMIZER
        self.scheduler_factory = scheduler
        self.weight_decay, self.fused_optimizer = weight_decay, fused_optimizer

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits

    def _step(self, batch: dict, prefix: str) -> torch.Tensor:
        logits = self(batch["input_ids"], batch["attention_mask"])
        loss = masked_lm_loss(logits, batch["labels"])
        tokens = (batch["labels"] != -100).sum()
        on_step = prefix == "train"
        self.log(
            f"{prefix}/loss",
            loss,
            prog_bar=True,
            on_step=on_step,
            on_epoch=not on_step,
            batch_size=batch["input_ids"].size(0),
            sync_dist=not on_step,
        )
        self.log(
            f"{prefix}/response_tokens",
            tokens.float(),
            on_step=on_step,
            on_epoch=not on_step,
            batch_size=batch["input_ids"].size(0),
            reduce_fx="sum" if not on_step else "mean",
        )
        return loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def configure_optimizers(self):
        return optimizers_for(
            self,
            self.model.named_parameters(),
            self.optimizer_factory,
            self.scheduler_factory,
            self.weight_decay,
            self.fused_optimizer,
        )
