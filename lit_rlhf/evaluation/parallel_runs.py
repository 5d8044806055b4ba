"""Training runs of a sweep over gyms side by side: each ``lit-rlhf-train`` run in its own process, ``jobs`` at a
time, after the pipeline's shared stages of each gym."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def train_in_processes(runs: list[tuple[list[str], Path]], jobs: int = 1) -> int:
    """Train each ``(overrides, log file)`` in a child process, ``jobs`` at once, each with an equal share of
    the CPU threads; a run's output goes to its log file (appended: a resumed run keeps its history). Returns
    how many failed; every run is tried."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}

    def train(run: tuple[list[str], Path]) -> int:
        overrides, log_path = run
        log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "lit_rlhf.cli.train", *overrides]
        with log_path.open("a") as log:
            code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
        print(f"{'done' if code == 0 else f'FAILED ({code})'}: {log_path}", flush=True)
        return code

    with ThreadPoolExecutor(jobs) as pool:
        return sum(code != 0 for code in pool.map(train, runs))


def train_sweep(root: Path, gym_seeds: list[int], runs: list[tuple[list[str], Path]], jobs: int = 1) -> None:
    """The pipeline's shared stages (SFT, preferences, reward model) once per gym under ``root/g<seed>``, in this
    process and skipped when done; then each ``(overrides, run folder)`` whose folder has no ``results.json`` yet,
    logging to ``<run folder>.log`` (a killed run resumes). ``SystemExit`` saying how many failed, after all ran."""
    from lit_rlhf.pipeline import run_pipeline

    for gym_seed in gym_seeds:
        run_pipeline(
            [f"paths.artifacts={root / f'g{gym_seed}'}", f"gym.seed={gym_seed}"],
            only=["sft", "preferences", "reward_model"],
        )
    missing = [(overrides, out.with_suffix(".log")) for overrides, out in runs if not (out / "results.json").exists()]
    failed = train_in_processes(missing, jobs)
    if failed:
        raise SystemExit(f"{failed} of {len(missing)} runs failed; their logs are beside their run folders")
