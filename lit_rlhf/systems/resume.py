"""Checkpoints that a killed run resumes from: the whole training state, written atomically at set intervals.

:class:`ResumeCheckpoint` writes checkpoints through the Trainer, so through its CheckpointIO (the stages use
:class:`~lit_rlhf.systems.checkpoint_io.AtomicCheckpointIO`: a run killed while saving keeps the previous file).
A checkpoint holds what Lightning saves (weights, optimizer and scheduler states, loop progress, the train loader's
position when the loader is stateful, e.g. :class:`~lit_rlhf.data.resumable.ResumableDataLoader`), what the module
and the DataModule add, and the global random generators (torch, CUDA, Python, NumPy), so that a resumed run
draws what the uninterrupted one drew.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.callbacks import Checkpoint

from lit_rlhf.data.errors import ConfigError

LAST = "last.ckpt"
PENDING = "pending.ckpt"


class ResumeCheckpoint(Checkpoint):
    """Keep ``<dirpath>/last.ckpt`` current: a checkpoint every ``every_n_train_steps`` steps, every
    ``every_n_minutes`` minutes, at the end of every ``every_n_epochs``-th epoch and when training ends (0 or None
    turns an interval off).

    Args:
        dirpath: the folder of the checkpoints.
        every_n_train_steps: a step is an optimizer step under automatic optimization (checkpoints fall between
            steps, never inside gradient accumulation) and a training batch under manual optimization (for PPO one
            iteration: a rollout and all its updates).
        every_n_minutes: wall-clock minutes since the last checkpoint, checked after each step (rank 0 decides).
        every_n_epochs: epochs between end-of-epoch checkpoints.
        keep: checkpoints kept on disk: ``last.ckpt`` (the newest) and up to ``keep - 1`` earlier ones, named
            ``epochE-stepS.ckpt`` (hard links to what was ``last.ckpt``: nothing is copied).

    A checkpoint is written to ``pending.ckpt`` where it is due and becomes ``last.ckpt`` at the next hook, once
    Lightning has handed the metrics logged up to that point to the loggers (Lightning logs a step's metrics after
    its ``on_train_batch_end``): a run killed in between resumes from the checkpoint before, and logs that stretch
    again, so no logged step goes missing. A checkpoint due on an epoch's last batch is written at that epoch's
    end instead, after its validation and epoch-end hooks, which a run resumed from the last batch would skip.
    """

    def __init__(
        self,
        dirpath: str | os.PathLike,
        every_n_train_steps: int = 0,
        every_n_minutes: float | None = None,
        every_n_epochs: int = 1,
        keep: int = 1,
    ):
        self.dirpath = Path(dirpath)
        self.every_n_train_steps = _count("every_n_train_steps", every_n_train_steps, minimum=0)
        self.every_n_epochs = _count("every_n_epochs", every_n_epochs, minimum=0)
        self.keep = _count("keep", keep, minimum=1)
        if every_n_minutes is not None and (
            isinstance(every_n_minutes, bool) or not isinstance(every_n_minutes, (int, float)) or every_n_minutes <= 0
        ):
            raise ConfigError(
                f"callbacks.checkpoint.every_n_minutes must be a positive number or null, got {every_n_minutes!r}"
            )
        self.every_n_minutes = every_n_minutes
        self.batches = 0  # training batches over the whole run, resumed parts included
        self._writing: str | None = None  # the name of the checkpoint being written (saved inside it)
        self._pending: str | None = None  # the name of the checkpoint in pending.ckpt, not yet last.ckpt
        self._last: str | None = None  # the name of the checkpoint in last.ckpt
        self._saved_at: tuple[int, int] | None = None  # (global step, batches) of the newest checkpoint
        self._seen_step = 0
        self._due_at_epoch_end = False
        self._last_time = time.monotonic()

    @property
    def last_path(self) -> Path:
        return self.dirpath / LAST

    @property
    def resume_path(self) -> str | None:
        """``last.ckpt`` when it exists, else None: ``trainer.fit(..., ckpt_path=callback.resume_path)``."""
        return str(self.last_path) if self.last_path.is_file() else None

    # ---- when to write ---------------------------------------------------------------------------
    def on_train_start(self, trainer, pl_module) -> None:
        self._seen_step, self._last_time = trainer.global_step, time.monotonic()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self._commit(trainer)

    def on_validation_start(self, trainer, pl_module) -> None:
        self._commit(trainer)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._commit(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.batches += 1
        if pl_module.automatic_optimization:
            step, stepped = trainer.global_step, trainer.global_step != self._seen_step
            self._seen_step = step
            if not stepped:  # inside gradient accumulation: the gradients so far are in no checkpoint
                return
        else:
            step = self.batches
        due = bool(self.every_n_train_steps) and step % self.every_n_train_steps == 0
        due = self._minutes_passed(trainer) or due
        if not due or _skip(trainer):
            return
        if batch_idx + 1 >= trainer.num_training_batches:
            self._due_at_epoch_end = True
            return
        self._write(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        due = self._due_at_epoch_end or (
            bool(self.every_n_epochs) and (trainer.current_epoch + 1) % self.every_n_epochs == 0
        )
        self._due_at_epoch_end = False
        if due and not _skip(trainer):
            self._write(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        self._commit(trainer)
        # A run killed after training (during its evaluation) then resumes with nothing left to train.
        if not _skip(trainer) and self._saved_at != (trainer.global_step, self.batches):
            self._write(trainer)
            self._commit(trainer)

    def _minutes_passed(self, trainer) -> bool:
        if self.every_n_minutes is None:
            return False
        passed = time.monotonic() - self._last_time >= 60 * self.every_n_minutes
        return bool(trainer.strategy.broadcast(passed))  # every rank must save, or none

    # ---- writing ---------------------------------------------------------------------------------
    def _write(self, trainer) -> None:
        self._writing = f"epoch{trainer.current_epoch}-step{trainer.global_step}.ckpt"  # no "=": Hydra reads it
        try:
            trainer.save_checkpoint(self.dirpath / PENDING, weights_only=False)  # the whole state
            self._pending = self._writing
        finally:
            self._writing = None
        self._saved_at = (trainer.global_step, self.batches)
        self._last_time = time.monotonic()

    def _commit(self, trainer) -> None:
        """Make the pending checkpoint ``last.ckpt``, after flushing what the loggers hold."""
        if self._pending is None:
            return
        for logger in trainer.loggers:
            logger.save()
        if trainer.is_global_zero:
            if self.keep > 1:
                self._keep_previous()
            _replace(self.dirpath / PENDING, self.last_path)
        self._last, self._pending = self._pending, None

    def _keep_previous(self) -> None:
        """Link the current ``last.ckpt`` under its own name before it is replaced; drop the oldest beyond ``keep``."""
        previous = self.dirpath / self._last if self._last else None
        if previous is not None and self.last_path.is_file() and not previous.exists():
            os.link(self.last_path, previous)
        earlier = sorted(self.dirpath.glob("epoch*-step*.ckpt"), key=lambda p: p.stat().st_mtime_ns)
        for path in earlier[: max(0, len(earlier) - (self.keep - 1))]:
            path.unlink(missing_ok=True)

    # ---- state inside the checkpoint ---------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"batches": self.batches, "name": self._writing, "rng": rng_state()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.batches = int(state_dict["batches"])
        self._last = state_dict.get("name")
        restore_rng_state(state_dict["rng"])


def _replace(source: Path, target: Path) -> None:
    """Rename ``source`` over ``target``: atomic for files; a sharded checkpoint (a folder) replaces the old one
    after removing it."""
    if source.is_dir() and target.is_dir():
        shutil.rmtree(target)
    os.replace(source, target)


def _skip(trainer) -> bool:
    return bool(trainer.fast_dev_run) or trainer.sanity_checking or trainer.state.fn != "fit"


def _count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"callbacks.checkpoint.{name} must be an integer >= {minimum}, got {value!r}")
    return value


def rng_state() -> dict:
    """The global random generators' states as tensors and plain Python values (loadable with ``weights_only``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": (kind, keys.tolist(), int(pos), int(has_gauss), float(cached)),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def restore_rng_state(state: dict) -> None:
    """Set the global random generators to a :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuples(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(value):
    """``random.setstate`` wants tuples; a checkpoint may hand lists back."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value
