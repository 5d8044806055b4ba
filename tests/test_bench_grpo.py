"""The GRPO/RLOO speed benchmark's lit_rlhf side, reduced to one warm-up and one timed iteration per variant: each
runs in a fresh process, and the table it prints and the JSON it writes report both estimators (CI has no TRL
virtualenv, hence ``--skip-trl``)."""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # two fresh processes, each a Lightning fit of two tiny RL iterations

BENCH = Path(__file__).parents[1] / "benchmarks" / "bench_grpo.py"
ROW = re.compile(r"^(lit_grpo|lit_rloo) +(\d+\.\d{3}) +(\d+\.\d{3}) +(\d+\.\d{3}) +(\d+\.\d) +AdamW\(fused=", re.M)


def test_lit_side_of_the_grpo_benchmark(tmp_path):
    out = tmp_path / "bench_grpo.json"
    args = ["--skip-trl", "--repeats", "1", "--iterations", "1", "--warmup", "1", "--out", str(out)]
    done = subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]

    rows = {m[1]: [float(x) for x in m.groups()[1:]] for m in ROW.finditer(done.stdout)}
    assert set(rows) == {"lit_grpo", "lit_rloo"}, done.stdout
    for cpu, wall, per_run, tokens in rows.values():
        assert 0 < cpu < 60 and 0 < wall < 60 and per_run == cpu  # one repeat: its median is the run's
        assert 1 <= tokens <= 32  # answers of at most 32 new tokens
    assert "TRL not run: --skip-trl" in done.stdout
    assert "trl_grpo" not in done.stdout and "lit_rlhf / TRL" not in done.stdout

    report = json.loads(out.read_text())
    assert report["command"] == shlex.join(["python", "benchmarks/bench_grpo.py", *args])
    assert report["versions"]["lit_rlhf_env"]["torch"] and report["versions"]["trl_env"] is None
    assert report["ratios_lit_over_trl"] == {}
    assert report["workload"]["prompts"] * report["workload"]["samples_per_prompt"] == 16
    points = {p["variant"]: p for p in report["points"]}
    assert set(points) == {"lit_grpo", "lit_rloo"}
    for variant, point in points.items():
        (run,) = point["runs"]
        assert point["cpu_sec_per_iter"] == pytest.approx(rows[variant][0], abs=1e-3)
        assert run["optimizer_steps"] == 2 * 2  # (1 warm-up + 1 timed iteration) x 1 epoch x 2 minibatches
        assert len(run["iter_cpu_times"]) == 1 and run["reward_input"] == "token ids"
    assert report["settings"]["lit_grpo"]["kl_penalty"] == "loss"
    assert report["settings"]["lit_rloo"]["kl_penalty"] == "reward"
