"""Bad input ends in one line naming the file, line, field or key, before expensive work; outputs are written
atomically with the mode a plain ``open`` gives."""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import lit_rlhf.cli.train as cli
from lit_rlhf.cli.annotate import main as annotate_main
from lit_rlhf.collection.io import import_label_studio, read_pairs, read_votes
from lit_rlhf.collection.io import read_preferences as read_collected_preferences
from lit_rlhf.data.errors import ConfigError, DataError
from lit_rlhf.data.hh_rlhf import read_hh_rlhf
from lit_rlhf.data.jsonl import atomic_write, write_jsonl
from lit_rlhf.data.preference_files import read_preference_jsonl, read_preferences
from lit_rlhf.ppo.rl_prompts import read_prompts_jsonl
from lit_rlhf.sft.data import read_sft_jsonl
from lit_rlhf.stages.common import check_trainer_config

HH = {"chosen": "\n\nHuman: hi\n\nAssistant: hello .", "rejected": "\n\nHuman: hi\n\nAssistant: go away ."}
# One valid row per JSONL reader; a reader's rows may carry a category.
READERS = {
    "sft": (read_sft_jsonl, {"prompt": "hi", "response": "hello ."}),
    "preferences": (read_preference_jsonl, {"prompt": "hi", "chosen": "a .", "rejected": "b ."}),
    "preferences_auto": (read_preferences, {"prompt": "hi", "chosen": "a .", "rejected": "b ."}),
    "hh": (read_hh_rlhf, HH),
    "prompts": (read_prompts_jsonl, {"prompt": "hi"}),
    "pairs": (read_pairs, {"prompt": "hi", "response_a": "a .", "response_b": "b ."}),
    "votes": (read_votes, {"pair_id": "p1", "annotator": "x", "choice": "A"}),
    "collected_preferences": (
        read_collected_preferences,
        {
            "prompt": "hi",
            "chosen": "a .",
            "rejected": "b .",
            "category": "math",
            "chosen_len": 2,
            "rejected_len": 2,
            "votes": {},
            "provenance": {},
        },
    ),
}
SKIPPING_READERS = ("sft", "preferences", "hh", "prompts")  # the readers with on_error="skip"


def jsonl_bytes(rows: list[dict]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def write_rows(path: Path, data: bytes) -> Path:
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)
    return path


def with_bad_byte(row: dict) -> bytes:
    """``row`` as a JSONL line with byte 0xff in its first string value after ``{"key": "``."""
    line = json.dumps(row).encode()
    first_value = line.index(b'": "') + 4
    return line[:first_value] + b"\xff" + line[first_value:] + b"\n"


# --- not UTF-8 ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
@pytest.mark.parametrize("name", list(READERS))
def test_a_line_that_is_not_utf8_names_file_line_and_byte(tmp_path, name, suffix):
    reader, row = READERS[name]
    bad = with_bad_byte(row)
    path = write_rows(tmp_path / f"data{suffix}", jsonl_bytes([row]) + bad)
    with pytest.raises(DataError) as raised:
        reader(path)
    column = bad.index(b"\xff") + 1
    assert str(raised.value).startswith(f"{path}:2: not valid UTF-8 (byte 0xff at column {column})")


@pytest.mark.parametrize("name", SKIPPING_READERS)
def test_under_skip_a_line_that_is_not_utf8_is_counted_with_its_place(tmp_path, name):
    reader, row = READERS[name]
    path = write_rows(tmp_path / "data.jsonl", with_bad_byte(row) + jsonl_bytes([row]))
    rows = reader(path, on_error="skip")
    assert len(rows) == 1
    assert rows.report.counts == {"not valid UTF-8": 1} and rows.report.examples["not valid UTF-8"] == [f"{path}:1"]


def test_a_label_studio_export_that_is_not_utf8_names_its_line(tmp_path):
    path = tmp_path / "export.json"
    second_line = b'  {"data": {"prompt": "caf\xe9"}}'
    path.write_bytes(b"[\n" + second_line + b"\n]\n")
    column = second_line.index(b"\xe9") + 1
    with pytest.raises(DataError, match=re.escape(f"{path}:2: not valid UTF-8 (byte 0xe9 at column {column})")):
        import_label_studio(path)


# --- damaged .gz -------------------------------------------------------------------------------------------------


def truncated_gz(path: Path, row: dict, n: int = 3000) -> Path:
    """A .gz of ``n`` rows like ``row`` (prompts numbered, so pair ids differ), cut in the middle."""
    write_rows(
        path, jsonl_bytes([row | {"prompt": f"{row['prompt']} {i}"} if "prompt" in row else row for i in range(n)])
    )
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("name", list(READERS))
def test_a_truncated_gz_names_the_file_and_the_last_line_read(tmp_path, name):
    reader, row = READERS[name]
    path = truncated_gz(tmp_path / "data.jsonl.gz", row)
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: gzip data is truncated or corrupt after line \d+"):
        reader(path, on_error="skip") if name in SKIPPING_READERS else reader(path)


def test_a_file_named_gz_that_is_not_gzip_is_a_data_error(tmp_path):
    path = write_rows(tmp_path / "plain.jsonl", jsonl_bytes([READERS["sft"][1]])).rename(tmp_path / "plain.jsonl.gz")
    with pytest.raises(DataError, match=r"plain.jsonl.gz: gzip data is truncated or corrupt before the first line"):
        read_sft_jsonl(path)


def test_annotate_add_pairs_ends_a_truncated_gz_in_one_line(tmp_path, capsys):
    path = truncated_gz(tmp_path / "pairs.jsonl.gz", READERS["pairs"][1])
    assert annotate_main(["add-pairs", "--db", str(tmp_path / "ann.sqlite"), str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and "truncated or corrupt after line" in err


def test_train_ends_a_truncated_gz_in_one_line_naming_the_file(compose_config, tmp_path, monkeypatch):
    path = truncated_gz(tmp_path / "train.jsonl.gz", READERS["sft"][1])
    cfg = compose_config(
        "experiment=gym_sft",
        "debug=fast",
        "data=jsonl_sft",
        f"data.train.path={path}",
        f"data.val.path={path}",
        "model.tiny.num_layers=1",
        "model.tiny.hidden_size=32",
        "model.tiny.intermediate_size=64",
    )
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        cli.run_command(cfg, "lit-rlhf-train")
    message = str(exit_info.value.code)
    assert message.startswith(f"lit-rlhf-train: error: {path}: gzip data is truncated or corrupt after line")


# --- category: one rule for every reader ---------------------------------------------------------------------------

CATEGORY_READERS = ("sft", "preferences", "prompts", "pairs", "collected_preferences")


@pytest.mark.parametrize("value", [7, "", "  ", ["math"]], ids=["number", "empty", "blank", "list"])
@pytest.mark.parametrize("name", CATEGORY_READERS)
def test_a_category_that_is_not_a_non_empty_string_names_file_line_and_field(tmp_path, name, value):
    reader, row = READERS[name]
    path = write_rows(tmp_path / "data.jsonl", jsonl_bytes([row, row | {"category": value}]))
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}:2: field 'category': expected a non-empty string"):
        reader(path)


@pytest.mark.parametrize("name", CATEGORY_READERS)
def test_a_category_string_is_kept_as_given(tmp_path, name):
    reader, row = READERS[name]
    path = write_rows(tmp_path / "data.jsonl", jsonl_bytes([row | {"category": "role play"}]))
    rows = reader(path)
    assert (rows[0].category if name == "pairs" else rows[0]["category"]) == "role play"


@pytest.mark.parametrize("name", ["sft", "preferences", "prompts"])
def test_an_absent_or_null_category_is_the_default(tmp_path, name):
    reader, row = READERS[name]
    path = write_rows(tmp_path / "data.jsonl", jsonl_bytes([row, row | {"category": None}]))
    assert [r["category"] for r in reader(path)] == ["all", "all"]


@pytest.mark.parametrize("name", ["sft", "preferences", "prompts"])
def test_under_skip_a_bad_category_is_counted(tmp_path, name):
    reader, row = READERS[name]
    path = write_rows(tmp_path / "data.jsonl", jsonl_bytes([row, row | {"category": 7}]))
    rows = reader(path, on_error="skip")
    assert len(rows) == 1 and rows.report.counts == {"bad field 'category'": 1}


def test_a_label_studio_category_follows_the_same_rule(tmp_path):
    path = tmp_path / "export.json"
    path.write_text(json.dumps([{"id": 4, "data": {"prompt": "q", "answer1": "a", "answer2": "b", "category": 7}}]))
    with pytest.raises(DataError, match=r"export.json\[task 4\]: field 'category': expected a non-empty string"):
        import_label_studio(path)


# --- the Trainer config, checked before any model is built ----------------------------------------------------------


@pytest.mark.parametrize(
    "override, message",
    [
        ("trainer.max_epochs=abc", "trainer.max_epochs must be an integer or null, got 'abc'"),
        ("+trainer.max_steps=1.5", "trainer.max_steps must be an integer, got 1.5"),
        ("trainer.precision=bf17", "trainer.precision must be one of 64, 32, 16, 'transformer-engine'"),
        ("trainer.devices=0", "trainer.devices must be -1 (all), a count >= 1"),
        ("+trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches must be at least 1, got 0"),
        ("trainer.gradient_clip_val=high", "trainer.gradient_clip_val must be a number or null, got 'high'"),
        ("trainer.log_every_n_steps=[1]", "trainer.log_every_n_steps must be an integer or null, got [1]"),
        ("trainer.check_val_every_n_epoch=true", "trainer.check_val_every_n_epoch must be an integer or null"),
        ("+trainer.val_check_interval=[1]", "trainer.val_check_interval must be"),
        ("+trainer.limit_train_batches=1.5", "trainer.limit_train_batches must be a fraction in [0, 1]"),
        ("+trainer.limit_val_batches=few", "trainer.limit_val_batches must be a number or null, got 'few'"),
        ("+trainer.max_epoch=3", "trainer.max_epoch is not an argument of lightning.pytorch.Trainer"),
        ("trainer.accelerator=quantum", "trainer.accelerator=quantum is not one of"),
    ],
)
def test_bad_trainer_values_name_the_key(compose_config, override, message):
    cfg = compose_config("experiment=gym_sft", override)
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_trainer_config(cfg)


@pytest.mark.parametrize("experiment", ["gym_sft", "gym_reward_model", "gym_ppo", "gym_dpo"])
@pytest.mark.parametrize("debug", [None, "fast"])
def test_the_shipped_trainer_configs_pass_the_check(compose_config, experiment, debug):
    check_trainer_config(compose_config(f"experiment={experiment}", *([f"debug={debug}"] if debug else [])))


@pytest.mark.parametrize(
    "experiment, stage",
    [("gym_sft", "sft"), ("gym_reward_model", "reward_model"), ("gym_ppo", "ppo"), ("gym_dpo", "dpo")],
)
def test_every_training_stage_checks_its_trainer_before_building_a_model(
    compose_config, monkeypatch, experiment, stage
):
    import importlib

    from lit_rlhf.stages import STAGES

    module = importlib.import_module(STAGES[stage])

    def no_work(*args, **kwargs):
        raise AssertionError("a model or data set was built before the Trainer config was checked")

    monkeypatch.setattr(module, "instantiate", no_work)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    cfg = compose_config(f"experiment={experiment}", "debug=fast", "trainer.max_epochs=abc")
    with pytest.raises(SystemExit, match=r"^lit-rlhf-train: error: trainer.max_epochs must be an integer or null"):
        cli.run_command(cfg, "lit-rlhf-train")


def test_a_gpu_trainer_without_a_gpu_is_one_line(compose_config, monkeypatch):
    import torch
    from lightning.pytorch.accelerators import MPSAccelerator

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(MPSAccelerator, "is_available", staticmethod(lambda: False))
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    cfg = compose_config("experiment=gym_ppo", "debug=fast", "strategy=fsdp", "trainer=gpu")
    with pytest.raises(
        SystemExit,
        match=re.escape(
            "lit-rlhf-train: error: trainer.accelerator=gpu but no CUDA device is available; use trainer=cpu"
        ),
    ):
        cli.run_command(cfg, "lit-rlhf-train")
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "strategy=fsdp (FSDP1) runs on CUDA GPUs only, but trainer.accelerator=cpu; use strategy=fsdp2"
        ),
    ):
        check_trainer_config(compose_config("experiment=gym_ppo", "strategy=fsdp", "trainer=cpu"))
    with pytest.raises(ConfigError, match=re.escape("but no CUDA device is available; use strategy=fsdp2")):
        check_trainer_config(compose_config("experiment=gym_ppo", "strategy=fsdp", "trainer.accelerator=auto"))
    check_trainer_config(compose_config("experiment=gym_ppo", "strategy=fsdp2", "trainer=cpu"))


def test_more_cuda_devices_than_visible_is_one_line(compose_config, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ConfigError, match=re.escape("trainer.devices=4 but only 2 CUDA device(s) are visible")):
        check_trainer_config(compose_config("experiment=gym_ppo", "trainer=gpu", "trainer.devices=4"))
    check_trainer_config(compose_config("experiment=gym_ppo", "trainer=gpu", "trainer.devices=[0,1]"))


# --- PPO: a critic that cannot work is refused before the prompt filter -----------------------------------------------

TINY = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}


@pytest.mark.parametrize(
    "critic_init, message",
    [
        ("reward_model", "ppo.critic_init=reward_model needs the reward model to share the policy's tokenizer"),
        ("shared", "ppo.critic_init=shared needs a LoRA policy (model.lora)"),
        ("value_head", "ppo.critic_init must be one of policy, reward_model, shared; got 'value_head'"),
    ],
)
def test_ppo_refuses_a_critic_that_cannot_work_before_any_generation(
    compose_config, tmp_path, monkeypatch, critic_init, message
):
    import lit_rlhf.ppo.stage as ppo_stage
    from lit_rlhf.models import build_policy, save_hf_checkpoint
    from lit_rlhf.reward.model import RewardModel, build_reward_model

    policy, tokenizer = build_policy("embedded", seed=0, tiny=TINY)
    save_hf_checkpoint(policy, tokenizer, tmp_path / "sft" / "checkpoint")
    model, rm_tokenizer = build_reward_model(seed=0, tiny=TINY)
    rm_tokenizer.add_tokens(["<an-extra-token>"])
    model.resize_token_embeddings(len(rm_tokenizer))
    RewardModel(model, rm_tokenizer, 64).save(tmp_path / "reward_model" / "checkpoint")

    def no_prompts(*args, **kwargs):
        raise AssertionError("the RL prompts were prepared before the critic was checked")

    monkeypatch.setattr(ppo_stage, "_rl_prompts", no_prompts)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    cfg = compose_config("experiment=gym_ppo", "debug=fast", f"ppo.critic_init={critic_init}")
    with pytest.raises(SystemExit, match=re.escape(message)):
        cli.run_command(cfg, "lit-rlhf-train")


# --- progress in a log file ------------------------------------------------------------------------------------------


@pytest.mark.slow  # trains in a subprocess
def test_training_progress_reaches_a_redirected_log(tmp_path):
    log = tmp_path / "train.log"
    command = [
        sys.executable,
        "-m",
        "lit_rlhf.cli.train",
        "experiment=gym_sft",
        "debug=fast",
        "sft.eval.judge=null",
        f"paths.artifacts={tmp_path}",
        "model.tiny.num_layers=1",
        "model.tiny.hidden_size=32",
        "model.tiny.intermediate_size=64",
        "trainer.max_epochs=2",
        "+num_threads=1",
    ]
    with log.open("w") as handle:  # a file, not a terminal
        done = subprocess.run(
            command,
            check=False,
            stdout=handle,
            stderr=subprocess.STDOUT,
            timeout=600,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
    text = log.read_text()
    assert done.returncode == 0, text[-3000:]
    lines = [line for line in text.split("\n") if "\r" not in line]
    progress = [line for line in lines if re.search(r"epoch \d+/2 step \d+/3 \(\d+%\) [\d.]+ batches/s", line)]
    assert any("epoch 1/2 step 1/3 " in line for line in progress), text[-3000:]
    assert any("epoch 2/2 step 3/3 " in line for line in progress), text[-3000:]
    assert any("train/loss=" in line for line in progress)
    assert any("epoch 1 validation done" in line for line in lines)


def test_the_log_progress_bar_writes_a_line_every_n_batches():
    import lightning as L
    import torch
    from torch.utils.data import DataLoader

    from lit_rlhf.callbacks import LogProgressBar

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            loss = self.layer(batch).pow(2).mean()
            self.log("loss", loss, prog_bar=True)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    trainer = L.Trainer(
        max_epochs=1,
        callbacks=[LogProgressBar(every_seconds=3600, every_n_batches=2)],
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    lines = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: lines.append(record.getMessage())
    rank_zero_logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")  # where rank_zero_info writes
    rank_zero_logger.addHandler(handler)
    try:
        trainer.fit(Tiny(), DataLoader(torch.randn(5, 2), batch_size=1))
    finally:
        rank_zero_logger.removeHandler(handler)
    steps = [m.group(1) for line in lines if (m := re.match(r"epoch 1/1 step (\d)/5", line))]
    assert steps == ["1", "2", "4", "5"]  # the first batch, every 2nd, and the epoch's end


# --- atomic writes: mode, leftovers, no moment without a complete checkpoint ------------------------------------------


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield 0o027
    os.umask(old)


def test_atomically_written_files_get_the_mode_of_a_plain_open(tmp_path, umask_027):
    written = write_jsonl(tmp_path / "reference_baseline.jsonl", [{"a": 1}])
    with open(tmp_path / "plain.txt", "w") as handle:
        handle.write("x")
    assert stat.S_IMODE(written.stat().st_mode) == stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == 0o640
    written.chmod(0o604)  # replacing a file keeps its mode, as open(path, "w") does
    write_jsonl(written, [{"a": 2}])
    assert stat.S_IMODE(written.stat().st_mode) == 0o604 and json.loads(written.read_text()) == {"a": 2}


KILLED_WRITE = """
import os, signal, sys
from lit_rlhf.data.jsonl import atomic_write

def write(handle):
    handle.write(b"half a checkpoint")
    handle.flush()
    os.kill(os.getpid(), signal.SIGKILL)

atomic_write(sys.argv[1], write)
"""


def run_killed(script: str, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args], check=False, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == -signal.SIGKILL, done.stderr


def test_a_killed_write_leaves_the_old_file_and_its_temporary_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "last.ckpt"
    target.write_bytes(b"complete")
    run_killed(KILLED_WRITE, str(target))
    leftovers = [p for p in tmp_path.iterdir() if p != target]
    assert target.read_bytes() == b"complete" and len(leftovers) == 1 and leftovers[0].name.startswith(".last.ckpt.")
    unrelated = tmp_path / ".last.ckpt.mine"  # not of the temporary-name pattern: left alone
    unrelated.write_text("keep")
    atomic_write(target, lambda handle: handle.write(b"new"))
    assert target.read_bytes() == b"new" and sorted(tmp_path.iterdir()) == sorted([target, unrelated])


def test_a_temporary_of_a_save_still_running_is_kept(tmp_path):
    from lit_rlhf.data.jsonl import make_temp_beside, remove_stale_temps

    target = tmp_path / "results.json"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        tmp, fd = make_temp_beside(target)
        os.close(fd)
        running = tmp.with_name(tmp.name.replace(f".{os.getpid()}.", f".{sleeper.pid}."))
        tmp.rename(running)
        assert remove_stale_temps(target) == [] and running.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert remove_stale_temps(target) == [running] and not running.exists()


KILLED_CHECKPOINT = """
import os, signal, sys
from pathlib import Path
from lit_rlhf.models import save_hf_checkpoint

class Dying:
    def save_pretrained(self, directory):
        Path(directory, "model.safetensors").write_bytes(b"half")
        os.kill(os.getpid(), signal.SIGKILL)

save_hf_checkpoint(Dying(), Dying(), sys.argv[1])
"""


def test_checkpoint_saves_are_never_absent_or_half_written(tmp_path, monkeypatch, umask_027):
    """At every rename or removal during a save, ``path`` holds a complete checkpoint, its ``reward_model.json``
    included; a killed save's directory is removed by the next save."""
    import shutil

    from lit_rlhf.reward.model import RewardModel, build_reward_model

    model, tokenizer = build_reward_model(seed=0, tiny=TINY)
    path = tmp_path / "checkpoint"
    seen = []

    def check(name, original):
        def spy(*args, **kwargs):
            result = original(*args, **kwargs)
            if seen or path.exists():  # once there, the path always holds a whole checkpoint
                assert (path / "config.json").is_file() and (path / "reward_model.json").is_file(), name
            return result

        return spy

    for module, name in ((os, "rename"), (os, "replace"), (shutil, "rmtree")):
        monkeypatch.setattr(module, name, check(name, getattr(module, name)))
    monkeypatch.setattr(Path, "rename", check("Path.rename", Path.rename))
    RewardModel(model, tokenizer, 64).save(path, extra={"score_mean": 1.0})
    seen.append(True)
    RewardModel(model, tokenizer, 64).save(path, extra={"score_mean": 2.0})
    monkeypatch.undo()
    assert json.loads((path / "reward_model.json").read_text())["score_mean"] == 2.0
    assert stat.S_IMODE(path.stat().st_mode) == 0o750
    assert stat.S_IMODE((path / "reward_model.json").stat().st_mode) == 0o640
    assert RewardModel.load(path).max_length == 64

    run_killed(KILLED_CHECKPOINT, str(path))
    assert len(list(tmp_path.iterdir())) == 2  # the checkpoint and the killed save's directory
    RewardModel(model, tokenizer, 64).save(path)
    assert list(tmp_path.iterdir()) == [path] and (path / "reward_model.json").is_file()


def test_without_an_atomic_exchange_a_save_still_lands_whole(tmp_path, monkeypatch):
    from lit_rlhf.models import build_policy, save_hf_checkpoint
    from lit_rlhf.systems import checkpoint_io

    policy, tokenizer = build_policy("embedded", seed=0, tiny=TINY)
    path = save_hf_checkpoint(policy, tokenizer, tmp_path / "checkpoint")
    monkeypatch.setattr(checkpoint_io, "exchange_paths", lambda a, b: False)  # a platform without renameat2
    save_hf_checkpoint(policy, tokenizer, path, extra_files={"note.txt": "second"})
    assert (path / "config.json").is_file() and (path / "note.txt").read_text() == "second"
    assert list(tmp_path.iterdir()) == [path]
