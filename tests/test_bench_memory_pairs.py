"""The DPO / reward-model memory benchmark reduced to its smallest size: one lit_rlhf point of each kind (and one TRL
point where TRL's virtualenv is ready) in fresh processes, in one run, and the rows its table reports."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # optimizer steps of a 30M-parameter model with a 32k vocabulary

BENCH = Path(__file__).parents[1] / "benchmarks" / "bench_memory_pairs.py"
LIT_VARIANTS, TRL_VARIANT = ["lit_dpo_lora", "lit_rm_full"], "trl_dpo_lora"


def trl_venv_with_peft() -> tuple[bool, str]:
    """Whether the TRL virtualenv already imports trl's DPO and reward trainers and peft, and if not why. The
    benchmark would build it (about 1.5 GB of downloads), which is no job for a test."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCH.parent))
        from bench_memory_pairs import TRL_MODULES, TRL_VENV

    python = TRL_VENV / "bin" / "python"
    if not python.exists():
        return False, f"no TRL virtualenv at {TRL_VENV} (bench_memory_pairs.py makes it on first use)"
    done = subprocess.run([str(python), "-c", f"import {TRL_MODULES}"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return False, f"the TRL virtualenv at {TRL_VENV} cannot import {TRL_MODULES}: {done.stderr.strip()[-300:]}"
    return True, "ready"


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory) -> tuple[str, dict, str]:
    """``(stdout, report, why TRL did not run or "ready")`` of one run of the benchmark at 30M."""
    pytest.importorskip("peft")
    trl_ready, why = trl_venv_with_peft()
    out = tmp_path_factory.mktemp("bench_memory_pairs") / "points.json"
    variants = LIT_VARIANTS + ([TRL_VARIANT] if trl_ready else [])
    done = subprocess.run(
        [sys.executable, str(BENCH), "--sizes", "30M", "--variants", *variants, "--out", str(out)]
        + ["--malloc-mmap-threshold", "65536", "--warmup", "0"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, json.loads(out.read_text()), why


def point_of(bench_run, variant: str, params: str) -> dict:
    stdout, report, _ = bench_run
    assert f"| 30M | {params} | {variant} |" in stdout
    points = [p for p in report["points"] if p["variant"] == variant]
    assert len(points) == 1 and points[0]["status"] == "ok", points
    point = points[0]
    assert 0.3 < point["peak_rss_gb"] < 22 and point["cpu_sec_per_iter"] > 0
    assert point["optimizer_steps"] == 1 and point["batch_shapes"] == [[16, 96]]  # 8 pairs of 96-token sequences
    assert point["malloc_mmap_threshold"] == 65536
    return point


def test_one_dpo_and_one_reward_model_point_of_lit_rlhf(bench_run):
    dpo = point_of(bench_run, "lit_dpo_lora", "31,657,344")
    rm = point_of(bench_run, "lit_rm_full", "19,369,728")  # the LM head replaced by a 1-output score head
    assert dpo["reference_logps_computed"] == 8 and dpo["trainable_params"] < rm["trainable_params"]
    stdout, report, _ = bench_run
    assert report["malloc_mmap_threshold"] == 65536 and report["workload"]["warmup_steps"] == 0
    assert "- lit_dpo_lora: 30M" in stdout and "- lit_rm_full: 30M" in stdout


def test_a_trl_point_does_the_same_work_as_its_lit_rlhf_twin(bench_run):
    _, report, why = bench_run
    if why != "ready":
        pytest.skip(why)
    lit = point_of(bench_run, "lit_dpo_lora", "31,657,344")
    trl = point_of(bench_run, TRL_VARIANT, "31,657,344")
    assert trl["tokenized_ids_checked"] and not trl["reference_model_resident"]
    assert trl["weights_checksum"] == lit["weights_checksum"] and trl["trainable_params"] == lit["trainable_params"]
    assert report["trl_versions"]["trl"] == "1.16.0"
