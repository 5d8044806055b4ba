"""Reward modelling: a scalar score per (prompt, response), trained on preference pairs.

Chosen and rejected sequences of a batch go through the model in one forward pass
(concatenated along the batch); the loss is the pairwise Bradley-Terry loss with an
optional margin plus the zero-mean Gaussian prior on scores (``lit_rlhf.core.reward_loss``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import lightning as L
import torch

from lit_rlhf.core.reward_loss import pairwise_correct, reward_loss
from lit_rlhf.data.errors import ConfigError
from lit_rlhf.reward.data import DEFAULT_EDGES
from lit_rlhf.reward.length_balance import bucket_names
from lit_rlhf.reward.metrics import RewardMetrics
from lit_rlhf.reward.model import RewardModel, sequence_scores
from lit_rlhf.systems.optimizers import optimizers_for

# The optimizer of a module built without one: conf/module/reward_model.yaml's, for pretrained models (a test keeps the
# two equal). A model trained from scratch wants far higher rates: pass `optimizer=`.
DEFAULT_OPTIMIZER = functools.partial(torch.optim.AdamW, lr=1e-5, betas=(0.9, 0.95))


class RewardModelModule(L.LightningModule):
    """Wraps a one-output sequence classifier (see ``lit_rlhf.reward.model``).

    ``optimizer``/``scheduler`` are partials (Hydra ``_partial_: true``); the scheduler gets the
    optimizer and ``total_steps``. ``prior_coef`` is lambda of the score prior (0 turns it off);
    ``margin`` is a constant added to each pair's own ``margin`` field (0 when absent).
    ``categories`` and ``bucket_edges`` name the per-group accuracies; by default they come
    from the datamodule (``categories``, ``bucket_edges`` attributes).
    """

    def __init__(
        self,
        model,
        tokenizer,
        optimizer: Callable | None = None,
        scheduler: Callable | None = None,
        weight_decay: float = 0.0,
        fused_optimizer: bool | str = "auto",
        prior_coef: float = 0.01,
        margin: float = 0.0,
        use_data_margin: bool = True,
        categories: list[str] | None = None,
        bucket_edges: list[int] | None = None,
        max_length: int = 256,
        input_format: str = "auto",
    ):
        super().__init__()
        if prior_coef < 0:
            raise ConfigError(f"prior_coef must be >= 0, got {prior_coef}")
        self.model, self.tokenizer = model, tokenizer
        self.optimizer_factory = optimizer or DEFAULT_OPTIMIZER
        self.scheduler_factory = scheduler
        self.weight_decay, self.fused_optimizer = weight_decay, fused_optimizer
        self.prior_coef, self.margin, self.use_data_margin = prior_coef, margin, use_data_margin
        self.categories, self.bucket_edges = categories, bucket_edges
        self.scorer = RewardModel(model, tokenizer, max_length=max_length, input_format=input_format)
        self.val_metrics: RewardMetrics | None = None
        self.test_metrics: RewardMetrics | None = None

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        categories = self.categories or getattr(datamodule, "categories", None) or ["all"]
        edges = self.bucket_edges or getattr(datamodule, "bucket_edges", None) or list(DEFAULT_EDGES)
        if self.val_metrics is None:
            self.val_metrics = RewardMetrics(categories, bucket_names(list(edges)))
            self.test_metrics = RewardMetrics(categories, bucket_names(list(edges)))

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Scores ``[N]`` for sequences ``[N, T]`` (``token_type_ids [N, T]``: segments of the pair format)."""
        return sequence_scores(self.model, input_ids, attention_mask, token_type_ids=token_type_ids)

    def pair_scores(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """``(chosen [B], rejected [B])`` from one forward over ``input_ids [2B, T]``."""
        scores = self(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
        half = scores.size(0) // 2
        return scores[:half], scores[half:]

    def _loss(self, batch: dict, prefix: str):
        chosen, rejected = self.pair_scores(batch)
        margin = self.margin + (batch["margin"] if self.use_data_margin and "margin" in batch else 0.0)
        loss, parts = reward_loss(chosen, rejected, margin, self.prior_coef)
        on_step, size = prefix == "train", chosen.size(0)
        self.log(
            f"{prefix}/loss",
            loss.detach(),
            prog_bar=True,
            on_step=on_step,
            on_epoch=not on_step,
            batch_size=size,
            sync_dist=not on_step,
        )
        logged = {f"{prefix}/reward/bt_loss": parts["bt_loss"], f"{prefix}/reward/prior_loss": parts["prior_loss"]}
        if on_step:
            scores = torch.cat([chosen, rejected]).detach().float()
            logged.update(
                {
                    "train/reward/accuracy": pairwise_correct(chosen.detach(), rejected.detach()).mean(),
                    "train/reward/margin": (chosen - rejected).detach().float().mean(),
                    "train/reward/score_mean": scores.mean(),
                    "train/reward/score_std": scores.std(unbiased=False),
                }
            )
        self.log_dict(logged, on_step=on_step, on_epoch=not on_step, batch_size=size, sync_dist=not on_step)
        return loss, chosen, rejected

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._loss(batch, "train")[0]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        _, chosen, rejected = self._loss(batch, "val")
        self.val_metrics.update(chosen, rejected, batch)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        _, chosen, rejected = self._loss(batch, "test")
        self.test_metrics.update(chosen, rejected, batch)

    def on_validation_epoch_end(self) -> None:
        self._log_metrics(self.val_metrics, "reward")

    def on_test_epoch_end(self) -> None:
        self._log_metrics(self.test_metrics, "test/reward")

    def _log_metrics(self, metrics: RewardMetrics, prefix: str) -> None:
        values = metrics.compute(prefix)
        if values:
            self.log_dict(values, rank_zero_only=True)
        metrics.reset()

    @torch.no_grad()
    def score(self, prompts: list[str], responses: list[str], batch_size: int = 32) -> list[float]:
        """Scores outside training (same encoding as training); see ``RewardModel.score``."""
        return self.scorer.score(prompts, responses, batch_size)

    def configure_optimizers(self):
        return optimizers_for(
            self,
            self.model.named_parameters(),
            self.optimizer_factory,
            self.scheduler_factory,
            self.weight_decay,
            self.fused_optimizer,
        )
