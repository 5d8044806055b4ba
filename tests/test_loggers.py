"""Every ``logger=`` choice receives what a stage logs: one tiny SFT run per logger, read back from that logger's own
files or store (CSV file, TensorBoard events, the W&B offline run, the MLflow tracking store) and compared step by
step with the CSV file that each choice also writes. A logger that logs nothing fails. The optional loggers skip,
naming the extra to install, when their package is missing."""

from __future__ import annotations

import csv
import inspect
import json
import struct
from pathlib import Path

import pytest
from hydra.utils import get_class

from lit_rlhf.run import train

LOGGERS = sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / "logger").glob("*.yaml"))
METRIC = "train/loss"
STEPS = 2
# The gym SFT experiment on a 1-layer model for STEPS optimizer steps, each logged; no gold-judge evaluation.
SHRUNK = [
    "experiment=gym_sft",
    "debug=fast",
    "callbacks=default",
    "sft.eval.judge=null",
    "+num_threads=1",
    f"trainer.limit_train_batches={STEPS}",
    "trainer.log_every_n_steps=1",
    "model.tiny={hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64}",
]


def run_sft(compose_config, logger: str, *overrides: str):
    cfg = compose_config(*SHRUNK, f"logger={logger}", *overrides)
    return cfg, train(cfg)


def csv_history(output_dir) -> dict[int, float]:
    """``{step: value}`` of ``METRIC`` in the CSV logger's file."""
    paths = list(Path(output_dir).glob("logs/version_*/metrics.csv"))
    assert len(paths) == 1, f"want one CSV log under {output_dir}, found {paths}"
    path = paths[0]
    with path.open() as handle:
        rows = [row for row in csv.DictReader(handle) if row.get(METRIC)]
    return {int(row["step"]): float(row[METRIC]) for row in rows}


def assert_same_history(logged: dict[int, float], output_dir, rel: float = 1e-12) -> None:
    expected = csv_history(output_dir)
    assert len(expected) == STEPS, expected
    assert logged == pytest.approx(expected, rel=rel)


def test_every_logger_key_is_an_argument_of_its_logger(compose_config):
    """No inert keys: each key of each logger entry is a constructor argument (or, for W&B, one of ``wandb.init``,
    which the logger's ``**kwargs`` go to)."""
    assert {"csv", "tensorboard", "wandb", "mlflow", "none"} <= set(LOGGERS)
    to_wandb_init = set()
    for choice in LOGGERS:
        cfg = compose_config(f"logger={choice}")
        for name, entry in (cfg.logger or {}).items():
            cls = get_class(entry._target_)
            accepted = inspect.signature(cls.__init__).parameters
            for key in (k for k in entry if not k.startswith("_") and k not in accepted):
                assert cls.__name__ == "WandbLogger", f"logger={choice}: {name}.{key} is not an argument of {cls}"
                to_wandb_init.add(key)
    if to_wandb_init:
        wandb = pytest.importorskip(
            "wandb", reason='checking logger=wandb needs the wandb extra: pip install -e ".[wandb]"'
        )
        assert to_wandb_init <= set(inspect.signature(wandb.init).parameters), to_wandb_init


def test_csv_file_holds_each_logged_step(compose_config):
    cfg, summary = run_sft(compose_config, "csv")
    history = csv_history(cfg.output_dir)
    assert sorted(history) == list(range(STEPS)), history
    assert history[max(history)] == pytest.approx(summary["train_metrics"][METRIC], rel=1e-6)


def test_tensorboard_events_hold_the_logged_loss(compose_config):
    pytest.importorskip(
        "tensorboard", reason='logger=tensorboard needs the tensorboard extra: pip install -e ".[tensorboard]"'
    )
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg, _ = run_sft(compose_config, "tensorboard")
    (run_dir,) = Path(cfg.output_dir).glob("tensorboard/version_*")
    events = EventAccumulator(str(run_dir))
    events.Reload()
    assert METRIC in events.Tags()["scalars"], events.Tags()
    logged = {e.step: e.value for e in events.Scalars(METRIC)}
    assert_same_history(logged, cfg.output_dir, rel=1e-6)  # TensorBoard stores float32


def test_wandb_offline_run_holds_the_logged_loss(compose_config, tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb", reason='logger=wandb needs the wandb extra: pip install -e ".[wandb]"')
    monkeypatch.setenv("WANDB_MODE", "offline")  # the configured logger is online; the environment decides
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    for name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb_home"))
    if wandb.run is not None:  # WandbLogger would log into a run that earlier code in this process left open
        wandb.finish()
    try:
        cfg, _ = run_sft(compose_config, "wandb")
    finally:
        wandb.finish()  # what the end of the `lit-rlhf-train` process does
    assert cfg.logger.wandb.offline is False
    (run_file,) = Path(cfg.output_dir).glob("wandb/offline-run-*/run-*.wandb")
    records = wandb_records(run_file)
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert (run.project, run.display_name) == ("lit_rlhf", "sft")
    logged = {}
    for record in records:
        if record.WhichOneof("record_type") == "history":
            items = {item.key or ".".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            if METRIC in items:
                logged[int(items["trainer/global_step"])] = items[METRIC]
    assert_same_history(logged, cfg.output_dir)


def wandb_records(path: Path) -> list:
    """The records of a W&B run file (``run-<id>.wandb``): a 7-byte header, then 32 KiB blocks of chunks, each with
    a 7-byte header (checksum, length, type: 1 whole record, 2 first, 3 middle, 4 last part of one)."""
    from wandb.proto import wandb_internal_pb2

    data, block = path.read_bytes(), 32 * 1024
    assert data[:4] == b":W&B", data[:7]
    records, pending, position = [], b"", 7
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a chunk header is padding
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def test_mlflow_store_holds_the_logged_loss(compose_config, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # else the config sends the run there
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    pytest.importorskip("mlflow", reason='logger=mlflow needs the mlflow extra: pip install -e ".[mlflow]"')
    from mlflow.tracking import MlflowClient

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    cfg, _ = run_sft(compose_config, "mlflow")
    assert (tmp_path / "mlruns" / "mlflow.db").is_file()  # the local store under paths.artifacts
    assert not any(cwd.iterdir())  # and nothing in the working directory (MLflow's own default is ./mlruns)
    client = MlflowClient(cfg.logger.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name("lit_rlhf")
    (run,) = client.search_runs([experiment.experiment_id])
    assert (run.info.run_name, run.info.status) == ("sft", "FINISHED")
    logged = {m.step: m.value for m in client.get_metric_history(run.info.run_id, METRIC)}
    assert_same_history(logged, cfg.output_dir)
