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
        [sys.executable, str(BENCH), "--sizes", "30M", "--variants", "lit_lora", "--out", str(out)],
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
