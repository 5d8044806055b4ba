"""Supervised batches for the next-token-prediction regulariser (L = L_RL + λ·L_NTP), shared by PPO and DPO."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import Dataset

from lit_rlhf.data.errors import ConfigError, DataError


class IndexedBatches:
    """``batches(k)`` is batch number ``k``, a pure function of ``k`` and the seed.

    Pass ``e = k // batches_per_pass`` uses a permutation seeded by ``(seed, e)``; so a
    resumed run that restores ``k`` draws exactly the batches the uninterrupted run would.
    """

    def __init__(self, dataset: Dataset, collate_fn: Callable, batch_size: int, seed: int = 0):
        if len(dataset) == 0:
            raise DataError("the NTP data set is empty")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.dataset, self.collate_fn, self.seed = dataset, collate_fn, seed
        self.batch_size = min(batch_size, len(dataset))
        self.batches_per_pass = len(dataset) // self.batch_size

    def __call__(self, k: int) -> dict:
        epoch, index = divmod(k, self.batches_per_pass)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(len(self.dataset), generator=generator)
        rows = order[index * self.batch_size : (index + 1) * self.batch_size].tolist()
        return self.collate_fn([self.dataset[i] for i in rows])

    @classmethod
    def from_datamodule(cls, datamodule, seed: int = 0) -> IndexedBatches:
        """From an ``SFTDataModule`` (its training set, collator and batch size)."""
        datamodule.setup("fit")
        return cls(datamodule.train_set, datamodule.collate, datamodule.batch_size, seed)
