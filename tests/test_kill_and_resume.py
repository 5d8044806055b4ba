"""Each stage's shipped experiment, killed with SIGKILL once it has written its first checkpoint and then run
again with the same command, ends where the uninterrupted run ends: the same weights, the same step count and
the same logged metrics (the per-step losses also show that the data came in the same order).

The runs are real ``python -m lit_rlhf.cli.train experiment=gym_<stage>`` processes, shrunk to a tiny model and
a few batches. The uninterrupted SFT and reward-model runs are also the inputs of the PPO and DPO runs.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lit_rlhf.evaluation.ablation import read_curves

pytestmark = pytest.mark.slow

TINY = "{hidden_size: 16, num_layers: 1, num_heads: 2, intermediate_size: 32}"
COMMON = [
    "+num_threads=1",
    "logger=csv",
    "trainer.log_every_n_steps=1",
    "trainer.max_epochs=2",
    "trainer.check_val_every_n_epoch=1",
    "+trainer.limit_val_batches=1",
]
# Checkpoints every 2 steps (every PPO iteration, the shipped setting), so the first one is in the middle of
# epoch 0 and the kill lands mid-epoch.
STAGES = {
    "sft": [
        "experiment=gym_sft",
        f"model.tiny={TINY}",
        "+trainer.limit_train_batches=6",
        "data.batch_size=4",
        "sft.eval.judge=null",
        "~callbacks.gold_monitor",
        "callbacks.checkpoint.every_n_train_steps=2",
    ],
    "reward_model": [
        "experiment=gym_reward_model",
        f"model.tiny={TINY}",
        "+trainer.limit_train_batches=6",
        "data.batch_size=8",
        "reward.gold_eval=false",
        "+trainer.limit_test_batches=1",
        "callbacks.checkpoint.every_n_train_steps=2",
    ],
    "ppo": [
        "experiment=gym_ppo",
        "+trainer.limit_train_batches=3",
        "ppo.categories=[harmful]",
        "ppo.prompts_per_iteration=4",
        "ppo.prompt_filter.k=2",
        "ppo.prompt_filter.min_variance=0",
        "module.config.max_new_tokens=4",
        "ppo.eval.samples_per_prompt=1",
        "ppo.eval.max_new_tokens=4",
        "data.batch_size=4",
    ],
    "dpo": [
        "experiment=gym_dpo",
        "+trainer.limit_train_batches=4",
        "dpo.pairs.categories=[harmful]",
        "dpo.pairs.n=2",
        "dpo.pairs.decoding.max_new_tokens=4",
        "dpo.eval.samples_per_prompt=1",
        "dpo.eval.max_new_tokens=4",
        "dpo.data.batch_size=4",
        "data.batch_size=4",
        "callbacks.checkpoint.every_n_train_steps=2",
    ],
}
TIMEOUT = 300


def command(stage: str, artifacts: Path, inputs: Path) -> list[str]:
    """The stage's command line; PPO and DPO read the SFT policy and the reward model from ``inputs``."""
    reads = {
        "ppo": [f"model.source={inputs}/sft/checkpoint", f"ppo.reward_model={inputs}/reward_model/checkpoint"],
        "dpo": [f"model.source={inputs}/sft/checkpoint", f"dpo.pairs.reward_model={inputs}/reward_model/checkpoint"],
    }.get(stage, [])
    return [sys.executable, "-m", "lit_rlhf.cli.train", *STAGES[stage], *COMMON, *reads, f"paths.artifacts={artifacts}"]


def run(args: list[str], log: Path) -> None:
    with log.open("a") as handle:
        done = subprocess.run(args, stdout=handle, stderr=subprocess.STDOUT, timeout=TIMEOUT, env=_env(), check=False)
    assert done.returncode == 0, f"{' '.join(args)} failed; see {log}:\n{log.read_text()[-3000:]}"


def run_and_kill(args: list[str], checkpoint: Path, log: Path) -> None:
    """Start the command, SIGKILL it as soon as ``checkpoint`` exists, and check that it was still running."""
    with log.open("a") as handle:
        process = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, env=_env())
        deadline = time.monotonic() + TIMEOUT
        try:
            while not checkpoint.exists():
                assert process.poll() is None, f"the run ended before writing {checkpoint}; see {log}"
                assert time.monotonic() < deadline, f"no {checkpoint} after {TIMEOUT} s; see {log}"
                time.sleep(0.02)
            process.send_signal(signal.SIGKILL)
        finally:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL, f"the run finished before it could be killed; see {log}"


def _env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONHASHSEED": "0"}


def weights(checkpoint_dir: Path) -> dict[str, torch.Tensor]:
    tensors = {}
    for path in sorted(checkpoint_dir.glob("*.safetensors")):
        tensors.update({f"{path.name}:{k}": v for k, v in load_file(path).items()})
    assert tensors, f"no weights in {checkpoint_dir}"
    return tensors


def trained_steps(output_dir: Path) -> int:
    return torch.load(output_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["global_step"]


def computed(metrics: dict) -> dict:
    """The metrics a run computes, without ``perf/*``: what each batch cost in time and memory differs between
    any two runs."""
    return {k: v for k, v in metrics.items() if not k.startswith("perf/")}


def assert_same_run(full: Path, resumed: Path) -> None:
    """Final weights, step count, per-step logged metrics and final train metrics all equal (the cost of each
    batch is logged in both, and differs)."""
    assert trained_steps(resumed) == trained_steps(full)
    full_weights, resumed_weights = weights(full / "checkpoint"), weights(resumed / "checkpoint")
    assert full_weights.keys() == resumed_weights.keys()
    for name, value in full_weights.items():
        assert torch.equal(value, resumed_weights[name]), name
    full_curves, resumed_curves = read_curves(full), read_curves(resumed)
    assert "perf/batch_cpu_seconds" in full_curves and "perf/batch_cpu_seconds" in resumed_curves
    assert computed(full_curves) and computed(full_curves) == computed(resumed_curves)
    train_metrics = [json.loads((d / "results.json").read_text())["train_metrics"] for d in (full, resumed)]
    assert computed(train_metrics[0]) == computed(train_metrics[1])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """Artifacts of uninterrupted SFT and reward-model runs (the inputs of PPO and DPO)."""
    root = tmp_path_factory.mktemp("uninterrupted")
    for stage in ("sft", "reward_model"):
        run(command(stage, root, root), root / f"{stage}.log")
    return root


@pytest.mark.parametrize("stage", ["sft", "reward_model", "ppo", "dpo"])
def test_a_killed_stage_run_again_ends_like_the_uninterrupted_run(stage, uninterrupted, tmp_path):
    if stage in ("ppo", "dpo"):
        run(command(stage, uninterrupted, uninterrupted), uninterrupted / f"{stage}.log")
    args, log = command(stage, tmp_path, uninterrupted), tmp_path / f"{stage}.log"
    output_dir = tmp_path / stage
    run_and_kill(args, output_dir / "checkpoints" / "last.ckpt", log)
    killed_at = trained_steps(output_dir)
    assert 0 < killed_at < trained_steps(uninterrupted / stage)
    assert not (output_dir / "results.json").exists()
    run(args, log)  # the same command again
    assert f"resuming from {output_dir / 'checkpoints' / 'last.ckpt'}" in log.read_text()
    assert_same_run(uninterrupted / stage, output_dir)
