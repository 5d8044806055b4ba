"""Pieces every stage's ``run(cfg)`` shares: seeding, building the Trainer, writing results."""

from __future__ import annotations

import json
import os
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info
from omegaconf import DictConfig

from lit_rlhf.data.jsonl import atomic_write
from lit_rlhf.systems.checkpoint_io import AtomicCheckpointIO


def seed_and_threads(cfg: DictConfig) -> None:
    """Seed everything (inside the run, not at import) and keep CPU threads to the machine's cores."""
    L.seed_everything(int(cfg.seed), workers=True)
    threads = cfg.get("num_threads")
    if threads:
        torch.set_num_threads(int(threads))


def build_trainer(cfg: DictConfig, **overrides) -> L.Trainer:
    """A Trainer from ``cfg.trainer`` with the configured loggers and callbacks (each group may be empty)."""
    # An entry without `_target_` is a preset's setting for a callback this config's group leaves out
    # (e.g. `debug=fast` sizing the gold monitor under `callbacks=none`): nothing to build.
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None and "_target_" in c]
    if not cfg.trainer.get("enable_checkpointing", True):  # Lightning refuses checkpoint callbacks then
        callbacks = [c for c in callbacks if not isinstance(c, ModelCheckpoint)]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    if not loggers:  # a learning-rate monitor has nowhere to write without a logger; Lightning would refuse
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    overrides.setdefault("plugins", [AtomicCheckpointIO()])
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **overrides)


def trainer_metrics(trainer) -> dict[str, float]:
    """The scalar metrics the Trainer last logged, as plain floats for ``results.json``."""
    return {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}


def write_json(path: str | os.PathLike, payload: dict) -> Path:
    """Atomic JSON write (temp file, fsync, rename)."""
    return atomic_write(path, lambda handle: handle.write(json.dumps(payload, indent=2, sort_keys=True) + "\n"),
                        mode="w")


RUN_CONFIG = "config.yaml"


def write_run_config(cfg: DictConfig) -> Path:
    """Write the composed, resolved config next to the stage's ``results.json`` before the stage starts, so that
    every number can be traced to the exact settings it ran with (and a killed run shows what it was running)."""
    from omegaconf import OmegaConf

    text = OmegaConf.to_yaml(cfg, resolve=True)
    return atomic_write(Path(cfg.output_dir) / RUN_CONFIG, lambda handle: handle.write(text), mode="w")


def read_run_config(run_dir: str | os.PathLike) -> DictConfig | None:
    """The config a run in ``run_dir`` wrote with :func:`write_run_config`, or None when it wrote none."""
    from omegaconf import OmegaConf

    path = Path(run_dir) / RUN_CONFIG
    return OmegaConf.load(path) if path.is_file() else None


def banner(text: str) -> None:
    rank_zero_info(f"\n=== {text} ===")
