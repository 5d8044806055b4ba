"""The memory benchmark's documented command, reduced to one size and one variant: it runs a point in a fresh
process and writes the row its table and docs/memory.md report."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a 30M-parameter PPO iteration with a 32k vocabulary

BENCH = Path(__file__).parents[1] / "benchmarks" / "bench_memory.py"


def test_one_point_of_the_memory_benchmark(tmp_path):
    pytest.importorskip("peft")
    out = tmp_path / "points.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--sizes", "30M", "--variants", "lit_lora", "--out", str(out)]
        + ["--malloc-mmap-threshold", "65536", "--warmup", "0"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| 30M | 31,657,344 | lit_lora |" in done.stdout
    report = json.loads(out.read_text())
    points = [p for p in report["points"] if p["variant"] == "lit_lora"]
    assert len(points) == 1 and points[0]["status"] == "ok"
    assert 0.3 < points[0]["peak_rss_gb"] < 22 and points[0]["cpu_sec_per_iter"] > 0
    assert report["malloc_mmap_threshold"] == 65536 and report["workload"]["warmup_iterations"] == 0


@pytest.mark.slow  # one PPO iteration of the 30M policy
def test_the_memory_phase_probe_reports_every_phase_and_the_checkpointed_blocks():
    done = subprocess.run(
        [sys.executable, str(BENCH.parent / "memory_phases.py"), "30M", "lit_lora_shared"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if " RSS " in line]
    assert lines[0].startswith("models built") and lines[1].startswith("rollout done") and lines[-1].startswith("end")
    forwards = [line for line in lines if "after the loss forward" in line]
    assert len(forwards) == 4  # 2 epochs x 2 minibatches
    # 4 blocks of the policy and 4 of the critic on the same base, each under checkpointing
    assert all("(8 blocks checkpointed)" in line for line in forwards)
