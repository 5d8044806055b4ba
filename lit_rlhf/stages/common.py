"""Pieces every stage's ``run(cfg)`` shares: seeding, building the Trainer, writing results."""

from __future__ import annotations

import inspect
import json
import os
import sys
import types
import typing
from pathlib import Path

import lightning as L
import torch
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import Checkpoint, LearningRateMonitor, ProgressBar
from lightning.pytorch.utilities import rank_zero_info
from omegaconf import DictConfig, ListConfig, OmegaConf

from lit_rlhf.callbacks import LogProgressBar
from lit_rlhf.data.errors import ConfigError
from lit_rlhf.data.jsonl import atomic_write
from lit_rlhf.data.ntp import IndexedBatches
from lit_rlhf.provenance import changes, recipe
from lit_rlhf.systems.checkpoint_io import AtomicCheckpointIO
from lit_rlhf.systems.host_memory import set_mmap_threshold


def seed_and_threads(cfg: DictConfig) -> None:
    """Seed everything (inside the run, not at import), keep CPU threads to the machine's cores and set how
    the host allocator returns freed memory (``malloc_mmap_threshold``)."""
    L.seed_everything(int(cfg.seed), workers=True)
    threads = cfg.get("num_threads")
    if threads:
        torch.set_num_threads(int(threads))
    set_mmap_threshold(cfg.get("malloc_mmap_threshold"))


def build_trainer(cfg: DictConfig, **overrides) -> L.Trainer:
    """A Trainer from ``cfg.trainer`` with the configured loggers and callbacks (each group may be empty)."""
    # An entry without `_target_` is a preset's setting for a callback this config's group leaves out
    # (e.g. `debug=fast` sizing the gold monitor under `callbacks=none`): nothing to build.
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None and "_target_" in c]
    if not checkpointing(cfg):  # Lightning refuses checkpoint callbacks then
        callbacks = [c for c in callbacks if not isinstance(c, Checkpoint)]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    if not loggers:  # a learning-rate monitor has nowhere to write without a logger; Lightning would refuse
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    if cfg.trainer.get("enable_progress_bar", True) is not False and not _interactive_output():
        # a terminal's progress bar redraws one line, which a log file shows late or never
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar) or isinstance(c, LogProgressBar)]
        if not any(isinstance(c, LogProgressBar) for c in callbacks):
            callbacks.append(LogProgressBar())
    overrides.setdefault("plugins", [AtomicCheckpointIO()])
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **overrides)


def _interactive_output() -> bool:
    """Whether stdout is a terminal or a notebook (both show a live progress bar), not a file or a pipe."""
    return sys.stdout.isatty() or type(sys.stdout).__module__.startswith("ipykernel")


CHECKED_TRAINER_KEYS = (
    "accelerator",
    "devices",
    "num_nodes",
    "precision",
    "max_epochs",
    "min_epochs",
    "max_steps",
    "min_steps",
    "accumulate_grad_batches",
    "gradient_clip_val",
    "log_every_n_steps",
    "check_val_every_n_epoch",
    "val_check_interval",
    "limit_train_batches",
    "limit_val_batches",
    "limit_test_batches",
    "limit_predict_batches",
    "num_sanity_val_steps",
    "enable_progress_bar",
    "enable_checkpointing",
    "fast_dev_run",
)
# Smallest accepted integer of the count-like keys (-1 means "no limit" where Lightning allows it).
TRAINER_MINIMA = {
    "max_epochs": -1,
    "min_epochs": 0,
    "max_steps": -1,
    "min_steps": 0,
    "num_nodes": 1,
    "accumulate_grad_batches": 1,
    "log_every_n_steps": 0,
    "check_val_every_n_epoch": 1,
    "num_sanity_val_steps": -1,
}


def check_trainer_config(cfg: DictConfig) -> None:
    """Raise ``ConfigError`` naming the key when ``cfg.trainer`` cannot build a Trainer here, before any work.

    Checks: no key the Trainer does not take; the keys of ``CHECKED_TRAINER_KEYS`` against the Trainer's own
    signature annotations (``trainer.max_epochs=abc`` -> "trainer.max_epochs must be an integer or null");
    counts and ``limit_*_batches`` in range; the accelerator (and FSDP1's GPU) available on this machine.
    Every stage that trains calls it first.
    """
    trainer_cfg = cfg.get("trainer")
    if trainer_cfg is None:
        return
    target = trainer_cfg.get("_target_")
    parameters = inspect.signature(get_class(target) if target else L.Trainer).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        unknown = [k for k in trainer_cfg if not str(k).startswith("_") and k not in parameters]
        if unknown:
            raise ConfigError(f"trainer.{unknown[0]} is not an argument of {target or 'lightning.Trainer'}")
    for key in CHECKED_TRAINER_KEYS:
        if key not in trainer_cfg or key not in parameters:
            continue
        value = trainer_cfg[key]
        value = OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value
        annotation = parameters[key].annotation
        if isinstance(annotation, str) or annotation is inspect.Parameter.empty:
            continue  # an annotation this check cannot read: Lightning checks the value itself
        if not _matches(value, annotation):
            raise ConfigError(f"trainer.{key} must be {_describe(annotation)}, got {value!r}")
        _check_range(key, value)
    check_accelerator(trainer_cfg)


def _matches(value, annotation) -> bool:
    """Whether ``value`` (a plain value from a config) fits a type annotation of the Trainer's signature."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in args)
    if origin is typing.Literal:
        return not isinstance(value, bool) and value in args
    if annotation is type(None):
        return value is None
    if origin in (list, tuple):
        return isinstance(value, (list, tuple)) and all(_matches(v, args[0]) for v in value) if args else True
    if origin is dict:
        return isinstance(value, dict)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True  # Any and other annotations: nothing to check here


def _describe(annotation) -> str:
    """``Optional[int]`` -> "an integer or null"; literals are listed as the values they allow."""
    args = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else ()
    parts, literals = [], []
    for arg in args or (annotation,):
        if typing.get_origin(arg) is typing.Literal:
            literals += [repr(v) for v in typing.get_args(arg)]
        elif typing.get_origin(arg) in (list, tuple):
            parts.append("a list")
        else:
            names = {
                type(None): "null",
                int: "an integer",
                float: "a number",
                str: "a string",
                bool: "true or false",
                dict: "a mapping",
            }
            parts.append(names.get(typing.get_origin(arg) or arg, getattr(arg, "__name__", str(arg))))
    if "a number" in parts and "an integer" in parts:  # Union[int, float]: any number
        parts.remove("an integer")
    if literals:
        parts.insert(0, "one of " + ", ".join(literals))
    return " or ".join(dict.fromkeys(parts))


def _check_range(key: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if key in TRAINER_MINIMA and value < TRAINER_MINIMA[key]:
        raise ConfigError(f"trainer.{key} must be at least {TRAINER_MINIMA[key]}, got {value!r}")
    if key.startswith("limit_") and (value < 0 or (isinstance(value, float) and value > 1)):
        raise ConfigError(f"trainer.{key} must be a fraction in [0, 1] or a number of batches >= 0, got {value!r}")
    if key == "devices" and value != -1 and value < 1:
        raise ConfigError(
            f"trainer.devices must be -1 (all), a count >= 1, a list of device ids or 'auto', got {value!r}"
        )


def check_accelerator(trainer_cfg: DictConfig) -> None:
    """``ConfigError`` when ``trainer.accelerator`` (or FSDP1, which runs on CUDA only) needs a device this machine
    lacks, or asks for more CUDA devices than are visible; e.g. ``trainer.accelerator=gpu but no CUDA device is
    available; use trainer=cpu``."""
    from lightning.pytorch.accelerators import AcceleratorRegistry, MPSAccelerator

    accelerator = trainer_cfg.get("accelerator", "auto")
    if not isinstance(accelerator, str):
        return  # an Accelerator object: built by the user, who chose it
    name, cuda = accelerator.lower(), torch.cuda.is_available()
    known = sorted({"auto", "gpu", *AcceleratorRegistry.available_accelerators()})
    if name not in known:
        raise ConfigError(f"trainer.accelerator={accelerator} is not one of {known}")
    if (name == "cuda" and not cuda) or (name == "gpu" and not (cuda or MPSAccelerator.is_available())):
        raise ConfigError(
            f"trainer.accelerator={accelerator} but no CUDA device is available; use trainer=cpu "
            "(or trainer.accelerator=cpu)"
        )
    if name not in ("auto", "cpu", "gpu", "cuda") and not AcceleratorRegistry[name]["accelerator"].is_available():
        raise ConfigError(f"trainer.accelerator={accelerator} but no such device is available; use trainer=cpu")
    uses_cuda = cuda and name in ("auto", "gpu", "cuda")
    devices = trainer_cfg.get("devices", "auto")
    devices = OmegaConf.to_container(devices) if isinstance(devices, ListConfig) else devices
    wanted = len(devices) if isinstance(devices, list) else devices if isinstance(devices, int) else None
    if uses_cuda and wanted is not None and wanted > torch.cuda.device_count():
        raise ConfigError(f"trainer.devices={devices} but only {torch.cuda.device_count()} CUDA device(s) are visible")
    if _is_fsdp1(trainer_cfg.get("strategy")) and not uses_cuda:
        why = "no CUDA device is available" if name == "auto" else f"trainer.accelerator={accelerator}"
        raise ConfigError(
            f"strategy=fsdp (FSDP1) runs on CUDA GPUs only, but {why}; use strategy=fsdp2 or strategy=ddp on CPU"
        )


def _is_fsdp1(strategy) -> bool:
    """Whether the configured strategy is Lightning's FSDPStrategy: a registered name or a ``_target_`` building one."""
    if isinstance(strategy, str):
        return strategy in ("fsdp", "fsdp_cpu_offload")
    if isinstance(strategy, DictConfig) and "_target_" in strategy:
        from lightning.pytorch.strategies import FSDPStrategy

        return isinstance(instantiate(strategy), FSDPStrategy)  # building a strategy object is cheap; nothing starts
    return False


def checkpointing(cfg: DictConfig) -> bool:
    """Whether the run writes checkpoints (``trainer.enable_checkpointing``, on unless set off)."""
    return bool(cfg.trainer.get("enable_checkpointing", True))


def checkpoint_dir(cfg: DictConfig) -> Path:
    """Where the stage's checkpoints go: ``callbacks.checkpoint.dirpath``, else ``<output_dir>/checkpoints``."""
    entry = (cfg.get("callbacks") or {}).get("checkpoint")
    dirpath = entry.get("dirpath") if entry is not None else None
    return Path(dirpath) if dirpath else Path(cfg.output_dir) / "checkpoints"


def resume_checkpoint_path(cfg: DictConfig) -> str | None:
    """The checkpoint ``trainer.fit`` continues from (its ``ckpt_path``), or None to train from the start.

    ``resume: true`` (the default) continues from ``<checkpoint_dir>/last.ckpt`` when the run writes checkpoints
    and that file exists, so running a killed command again picks up where it stopped; ``resume: false`` starts
    over; any other value is the path of a checkpoint file to continue from. Every stage that trains asks here.
    """
    resume = cfg.get("resume", True)
    if isinstance(resume, bool) and checkpointing(cfg):  # an explicit path is the user's choice
        # Only checkpoints of the same recipe (config and inputs, lit_rlhf.provenance) are continued: a retrained
        # reward model or new settings in the same output folder start over instead of resuming a stale run.
        # Starting over empties the folder, so that a run killed before its first save never resumes the old one.
        stale = fresh_checkpoint_dir(checkpoint_dir(cfg), recipe(cfg), start_over=not resume)
        if stale and resume:
            rank_zero_info(
                f"checkpoints in {checkpoint_dir(cfg)} were made from something else "
                f"({', '.join(stale[:5])}{', ...' if len(stale) > 5 else ''}): starting over"
            )
    if resume is False:
        return None
    if resume is True:
        last = checkpoint_dir(cfg) / "last.ckpt"
        if not (checkpointing(cfg) and last.is_file()):
            return None
        rank_zero_info(f"resuming from {last} (resume=false starts over)")
        return str(last)
    if not isinstance(resume, str) or not Path(resume).is_file():
        raise ConfigError(
            f"resume must be true, false or the path of a checkpoint file, got {resume!r}"
            + (": no such file" if isinstance(resume, str) else "")
        )
    rank_zero_info(f"resuming from {resume}")
    return resume


def fresh_checkpoint_dir(directory: Path, made_from: dict, start_over: bool = False) -> list[str]:
    """Empty ``directory`` of checkpoints made from another recipe than ``made_from`` (of any, with
    ``start_over``) and record ``made_from`` there (``made_from.json``); returns what changed ([] when the
    checkpoints, if any, can be continued)."""
    import shutil

    record = directory / "made_from.json"
    before = json.loads(record.read_text()) if record.is_file() else None
    reasons = (["resume=false"] if start_over else changes(before, made_from)) if any(directory.glob("*.ckpt")) else []
    if reasons:
        shutil.rmtree(directory)
    if reasons or before is None or before.get("hash") != made_from["hash"]:
        write_json(record, made_from)
    return reasons


def trainer_metrics(trainer) -> dict[str, float]:
    """The scalar metrics the Trainer last logged, as plain floats for ``results.json``."""
    return {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}


def write_json(path: str | os.PathLike, payload: dict) -> Path:
    """Atomic JSON write (temp file, fsync, rename)."""
    return atomic_write(
        path, lambda handle: handle.write(json.dumps(payload, indent=2, sort_keys=True) + "\n"), mode="w"
    )


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


def ntp_batches(cfg: DictConfig, config, tokenizer) -> IndexedBatches | None:
    """SFT batches of ``cfg.data`` for the NTP term when ``ntp_coef > 0``; ``ConfigError`` when there is no data."""
    if config.ntp_coef == 0:
        return None
    if cfg.get("data") is None:
        raise ConfigError(
            f"module.config.ntp_coef={config.ntp_coef} needs SFT data for the NTP term: "
            "data=jsonl_sft data.train.path=sft.jsonl data.val=null (or ntp_coef=0)"
        )
    return IndexedBatches.from_datamodule(instantiate(cfg.data, tokenizer=tokenizer), seed=cfg.seed)
