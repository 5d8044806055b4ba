"""``lit-rlhf-train --help`` describes the main keys, and every key and choice it names exists in the configs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

CONF = Path(__file__).parents[1] / "conf"
MAIN_KEYS = [
    "experiment=",
    "model.source=",
    "data.train.path=",
    "module.optimizer.lr=",
    "trainer.max_epochs=",
    "logger=",
    "resume=",
    "paths.artifacts=",
    "seed=",
    "gym.seed=",
]
# Keys the help names, with an experiment whose composed config has them.
KEYS_BY_EXPERIMENT = {
    "sft": ["model.source", "data.train.path", "data.val.path", "module.optimizer.lr"],
    "reward_model": ["model.source", "data.train.path"],
    "ppo": ["ppo.prompts.path", "ppo.reward_model", "module.config"],
    "dpo": ["dpo.pairs.path", "module.config"],
    "eval": ["eval.prompts", "eval.baseline.path", "eval.reward_model", "eval.candidates"],
    "gym_sft": ["trainer.max_epochs", "resume", "paths.artifacts", "seed", "gym.seed", "logger.csv"],
}


@pytest.fixture(scope="module")
def help_text() -> str:
    done = subprocess.run(
        [sys.executable, "-m", "lit_rlhf.cli.train", "--help"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def groups(text: str) -> dict[str, set[str]]:
    """The ``group: option, option`` lines of the help."""
    return {m.group(1): set(m.group(2).split(", ")) for m in re.finditer(r"^(\w+): (\w.*)$", text, re.MULTILINE)}


def test_help_names_the_main_keys(help_text):
    missing = [key for key in MAIN_KEYS if not re.search(rf"^\s*{re.escape(key)}", help_text, re.MULTILINE)]
    assert not missing, f"--help does not describe {missing}:\n{help_text}"


def test_help_lists_the_logger_choices_and_the_experiments(help_text):
    listed = groups(help_text)
    loggers = {p.stem for p in (CONF / "logger").glob("*.yaml")}
    assert {"csv", "tensorboard", "wandb", "mlflow", "none"} <= loggers
    assert listed["logger"] == loggers
    assert listed["experiment"] == {p.stem for p in (CONF / "experiment").glob("*.yaml")}
    (logger_line,) = [line for line in help_text.splitlines() if line.startswith("logger=")]
    assert all(name in logger_line for name in ("csv", "tensorboard", "wandb", "mlflow", "none"))
    for experiment in KEYS_BY_EXPERIMENT:
        assert re.search(rf"\b{experiment}\b", help_text.split("== Config groups")[0]), experiment


@pytest.mark.parametrize("experiment", sorted(KEYS_BY_EXPERIMENT))
def test_the_keys_the_help_names_exist(compose_config, experiment):
    cfg = compose_config(f"experiment={experiment}")
    for key in KEYS_BY_EXPERIMENT[experiment]:
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        # list(node): its keys, those set to ??? included, which `leaf in node` leaves out
        assert node is not None and leaf in list(node), f"experiment={experiment} has no {key}"
