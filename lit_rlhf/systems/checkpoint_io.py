"""Checkpoint writes that are atomic: a run killed while saving leaves the previous checkpoint intact."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from lit_rlhf.data.jsonl import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes to a temporary file in the same folder, fsyncs it, then renames it over the target."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        atomic_write(path, lambda handle: torch.save(checkpoint, handle))
