"""What a stage's output was made from, so that nothing stale is reused.

A stage's *recipe* is its resolved config plus an id for each input it reads (policy checkpoint, reward
model, data files). An input written by another stage is identified by that run's ``run_id`` (a fresh id
each time the run finishes, from its ``fingerprint.json``), any other file or folder by a hash of its
content (files over ``HASH_LIMIT`` bytes by size and modification time), and a hub name by itself.

Every stage writes ``<output_dir>/fingerprint.json`` when it finishes. The pipeline reruns a done stage
whose recipe differs from the one it would run with now, and says what changed; a resume checkpoint and
the stages' caches are reused only under the recipe they were made with.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

FINGERPRINT = "fingerprint.json"
HASH_LIMIT = 64 * 2**20
# Config keys that say where a stage reads its inputs; their ids enter the recipe.
INPUT_KEYS = (
    "model.source",
    "ppo.reward_model",
    "ppo.prompts.path",
    "dpo.pairs.reward_model",
    "dpo.pairs.path",
    "dpo.pairs.prompts",
    "data.train.path",
    "data.val.path",
    "data.test.path",
    "sft.eval.reward_model",
    "sft.eval.prompts",
    "ppo.eval.reward_model",
    "dpo.eval.reward_model",
    "eval.baseline.path",
    "eval.reward_model",
    "eval.prompts",
)
# Keys that change how a run is watched, not what it computes.
UNTRACKED = (
    "logger",
    "callbacks.progress_bar",
    "callbacks.checkpoint",
    "callbacks.lr_monitor",
    "callbacks.samples",
    "callbacks.cost",
    "resume",
    "malloc_mmap_threshold",  # where freed host memory goes, not what a run computes
    "hydra",
)


def _tracked(flat: dict) -> dict:
    return {k: v for k, v in flat.items() if not any(k == u or k.startswith(u + ".") for u in UNTRACKED)}


def run_inputs(cfg: DictConfig) -> dict[str, str]:
    """The paths (or hub names) a stage reads, by config key; eval's candidates as ``eval.candidates.<name>[i]``."""
    inputs = {key: str(value) for key in INPUT_KEYS if (value := OmegaConf.select(cfg, key))}
    candidates = OmegaConf.select(cfg, "eval.candidates") or {}
    for name, paths in candidates.items():
        for i, path in enumerate(paths if OmegaConf.is_list(paths) else [paths]):
            inputs[f"eval.candidates.{name}[{i}]"] = str(path)
    return inputs


def _file_hash(path: Path) -> str:
    stat = path.stat()
    if stat.st_size > HASH_LIMIT:
        return f"size={stat.st_size},mtime={stat.st_mtime_ns}"
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_dir_of(path: Path) -> Path:
    """The stage output folder a path lies in: ``X`` for ``X/checkpoint`` or ``X/file``, else the path itself."""
    return path.parent if path.is_file() or path.name == "checkpoint" else path


def input_id(value: str) -> str:
    """An id that changes when the input changes: the producing run's ``run_id``, a content hash, or the name."""
    path = Path(value)
    if not path.exists():
        return f"name:{value}"  # a hub name, "embedded", or a file that does not exist yet
    recorded = run_dir_of(path) / FINGERPRINT
    if recorded.is_file():
        return f"run:{json.loads(recorded.read_text())['run_id']}"
    if path.is_file():
        return f"file:{_file_hash(path)}"
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path)}\0{_file_hash(file)}\0".encode())
    return f"dir:{digest.hexdigest()}"


def _flatten(node, prefix: str = "") -> dict:
    if isinstance(node, dict):
        return {k: v for key, value in node.items() for k, v in _flatten(value, f"{prefix}{key}.").items()}
    return {prefix[:-1]: node}


def recipe(cfg: DictConfig) -> dict:
    """``{"config": {dotted key: value}, "inputs": {key: id}, "hash": ...}`` of a stage config."""
    flat = _flatten(OmegaConf.to_container(cfg, resolve=True))
    config = _tracked(flat)
    inputs = {key: input_id(value) for key, value in run_inputs(cfg).items()}
    text = json.dumps({"config": config, "inputs": inputs}, sort_keys=True, default=str)
    return {"config": config, "inputs": inputs, "hash": hashlib.sha256(text.encode()).hexdigest()}


def changes(before: dict | None, now: dict) -> list[str]:
    """What differs between two recipes: config keys, then ``input <key>``; ``["no fingerprint"]`` without one."""
    if before is None:
        return [f"no {FINGERPRINT}"]
    if before.get("hash") == now["hash"]:
        return []
    # A recipe written before a key joined UNTRACKED still carries it: compare what is tracked now.
    old_config, new_config = _tracked(before.get("config", {})), now["config"]
    keys = sorted(k for k in old_config.keys() | new_config.keys() if old_config.get(k, ...) != new_config.get(k, ...))
    old_inputs, new_inputs = before.get("inputs", {}), now["inputs"]
    keys += [
        f"input {k}" for k in sorted(old_inputs.keys() | new_inputs.keys()) if old_inputs.get(k) != new_inputs.get(k)
    ]
    return keys


def read_fingerprint(run_dir: str | os.PathLike) -> dict | None:
    path = Path(run_dir) / FINGERPRINT
    return json.loads(path.read_text()) if path.is_file() else None


def write_fingerprint(run_dir: str | os.PathLike, made_from: dict) -> dict:
    """Mark the run in ``run_dir`` as finished from ``made_from`` (a :func:`recipe`) under a fresh ``run_id``."""
    from lit_rlhf.data.jsonl import atomic_write

    record = {**made_from, "run_id": uuid.uuid4().hex}
    atomic_write(
        Path(run_dir) / FINGERPRINT, lambda handle: handle.write(json.dumps(record, indent=1, default=str)), mode="w"
    )
    return record


def stale_reasons(cfg: DictConfig) -> list[str]:
    """Why the finished output in ``cfg.output_dir`` cannot stand for a run of ``cfg`` now ([] when it can)."""
    return changes(read_fingerprint(cfg.output_dir), recipe(cfg))


def clear_if_made_otherwise(path: str | os.PathLike, made_from: dict) -> bool:
    """Delete the cache file ``path`` unless its ``<path>.made_from.json`` equals ``made_from``; returns whether
    it was deleted. The record is written before the cache is (re)built, so a cache without one, or with
    another, is never reused: e.g. reference-baseline scores of a reward model that was trained again."""
    from lit_rlhf.data.jsonl import atomic_write

    path = Path(path)
    record = path.with_name(path.name + ".made_from.json")
    before = json.loads(record.read_text()) if record.is_file() else None
    cleared = path.exists() and before != made_from
    if cleared:
        path.unlink()
    if before != made_from:
        atomic_write(record, lambda handle: handle.write(json.dumps(made_from, indent=1, sort_keys=True)), mode="w")
    return cleared
