"""A pipeline killed in the middle of a stage and started again ends with the uninterrupted run's report.

Two ``run_pipeline`` processes on the shrunk plan of ``test_pipeline_end_to_end``, with PPO writing a
checkpoint every iteration: one runs through, the other is SIGKILLed once PPO has written its first
checkpoint and is then started again with the same arguments.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_pipeline_end_to_end import SMALL_PLAN

pytestmark = pytest.mark.slow

RUNNER = (
    "import json, sys; from lit_rlhf.pipeline import run_pipeline; "
    "run_pipeline(sys.argv[2:], plan=json.load(open(sys.argv[1])))"
)
TIMEOUT = 600


def _plan(tmp_path: Path) -> Path:
    """The shrunk plan, PPO with the shipped checkpoint callback and a few more iterations to be killed in."""
    plan = json.loads(json.dumps(SMALL_PLAN))
    for stage in plan:
        if stage["name"] == "ppo":
            dropped = {"trainer.enable_checkpointing=false", "callbacks=none", "+trainer.limit_train_batches=2"}
            stage["overrides"] = [o for o in stage["overrides"] if o not in dropped]
            stage["overrides"] += ["+trainer.limit_train_batches=4", "~callbacks.samples"]
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    return path


def _command(plan: Path, artifacts: Path) -> list[str]:
    return [sys.executable, "-c", RUNNER, str(plan), f"paths.artifacts={artifacts}", "+num_threads=1"]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _run(args: list[str], log: Path) -> None:
    with log.open("a") as handle:
        done = subprocess.run(args, stdout=handle, stderr=subprocess.STDOUT, timeout=TIMEOUT, env=_env(), check=False)
    assert done.returncode == 0, log.read_text()[-3000:]


def test_a_pipeline_killed_during_ppo_resumes_to_the_same_report(tmp_path):
    plan = _plan(tmp_path)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    _run(_command(plan, whole), tmp_path / "whole.log")

    with (tmp_path / "killed.log").open("a") as log:
        process = subprocess.Popen(_command(plan, killed), stdout=log, stderr=subprocess.STDOUT, env=_env())
        checkpoint, deadline = killed / "ppo" / "checkpoints" / "last.ckpt", time.monotonic() + TIMEOUT
        while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, "the pipeline ended before PPO wrote a checkpoint: nothing was killed"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    assert not (killed / "ppo" / "results.json").exists() and not (killed / "eval").exists()
    _run(_command(plan, killed), tmp_path / "killed.log")
    assert "resuming from" in (tmp_path / "killed.log").read_text()

    report = {
        name: json.loads((root / "eval" / "results.json").read_text())
        for name, root in (("whole", whole), ("killed", killed))
    }
    for key in ("pairwise", "per_checkpoint", "absolute", "lengths"):
        assert json.dumps(report["killed"][key], sort_keys=True).replace(str(killed), "") == json.dumps(
            report["whole"][key], sort_keys=True
        ).replace(str(whole), ""), key
