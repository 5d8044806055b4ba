"""benchmarks/estimators.py without its long runs: every variant composes to the estimator it names, missing runs
are trained in their own processes seed by seed, and the table and plot come from hand-made run directories."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
import estimators as bench  # noqa: E402
from win_rows import win_row  # noqa: E402

from lit_rlhf.evaluation import parallel_runs  # noqa: E402
from lit_rlhf.run import compose  # noqa: E402

ESTIMATOR = {"gae": "gae", "gae_no_ref": "gae", "gae_math": "gae", "grpo": "grpo", "rloo": "rloo"}
ESTIMATOR |= {"reinforce_pp": "reinforce_pp", "remax": "remax"}


@pytest.mark.parametrize("name", list(bench.VARIANTS))
def test_each_variant_composes_to_its_estimator_judged_on_test_prompts(name, tmp_path):
    cfg = compose(bench.run_overrides(tmp_path, 6, name, seed=2))
    config = OmegaConf.to_object(cfg.module.config)  # PPOConfig's checks
    assert cfg.output_dir == str(bench.run_dir(tmp_path, 6, name, 2))
    assert (cfg.gym.seed, cfg.seed, cfg.ppo.eval.split) == (6, 2, "test")
    assert config.advantage_estimator == ESTIMATOR[name]
    assert config.reference_baseline == (name in ("gae", "gae_math", "reinforce_pp"))  # a per-prompt offset
    assert ("math" in (cfg.ppo.reward_parts or {})) == (name == "gae_math")
    # without a critic the critic's learning rate is left out, so nothing warns that it reaches nothing
    assert (cfg.module.param_groups.critic is None) == (ESTIMATOR[name] != "gae")


def test_missing_runs_are_trained_seed_by_seed_each_in_its_own_process(tmp_path, monkeypatch):
    import lit_rlhf.pipeline

    shared, commands = [], []
    monkeypatch.setattr(lit_rlhf.pipeline, "run_pipeline", lambda overrides, only: shared.append((overrides, only)))

    def fake_run(command, stdout, stderr, env):
        commands.append((command, env["OMP_NUM_THREADS"]))
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(parallel_runs.subprocess, "run", fake_run)
    monkeypatch.setattr(parallel_runs.os, "cpu_count", lambda: 4)
    done = bench.run_dir(tmp_path, 4, "grpo", 0)
    done.mkdir(parents=True)
    (done / "results.json").write_text("{}")
    bench.run_all(tmp_path, [4, 6], ["gae", "grpo"], [0, 1], jobs=1)
    assert [only for _, only in shared] == [["sft", "preferences", "reward_model"]] * 2
    ran = [(c[c.index("-m") + 1], c[-4], c[-3], c[-2]) for c, _ in commands]
    assert ran == [
        ("lit_rlhf.cli.train", "gym.seed=4", "seed=0", "ablation=full"),
        ("lit_rlhf.cli.train", "gym.seed=6", "seed=0", "ablation=full"),
        ("lit_rlhf.cli.train", "gym.seed=6", "seed=0", "ablation=estimator_grpo"),
        ("lit_rlhf.cli.train", "gym.seed=4", "seed=1", "ablation=full"),
        ("lit_rlhf.cli.train", "gym.seed=4", "seed=1", "ablation=estimator_grpo"),
        ("lit_rlhf.cli.train", "gym.seed=6", "seed=1", "ablation=full"),
        ("lit_rlhf.cli.train", "gym.seed=6", "seed=1", "ablation=estimator_grpo"),
    ]
    assert {threads for _, threads in commands} == {"4"}  # one job: every thread


def test_a_failed_run_fails_the_sweep_after_the_others_ran(tmp_path, monkeypatch):
    import lit_rlhf.pipeline

    monkeypatch.setattr(lit_rlhf.pipeline, "run_pipeline", lambda overrides, only: None)
    codes = iter([1, 0])
    monkeypatch.setattr(parallel_runs.subprocess, "run", lambda c, **kw: subprocess.CompletedProcess(c, next(codes)))
    with pytest.raises(SystemExit, match="1 of 2 runs failed"):
        bench.run_all(tmp_path, [4], ["gae", "grpo"], [0], jobs=2)


def _write_run(run: Path, win: int, loss: int, kl: float, cpu: float) -> None:
    run.mkdir(parents=True)
    table = {"all": win_row(20, win, loss), "math": win_row(10, win // 2, loss // 2)}
    vs_sft = {
        "win_tie_loss": table,
        "probes": {"identity": 0.6, "format": 0.5},
        "probes_sft": {"identity": 0.5, "format": 0.5},
    }
    (run / "results.json").write_text(json.dumps({"vs_sft": vs_sft}))
    logs = run / "logs" / "version_0"
    logs.mkdir(parents=True)
    keys = ["objective/kl", "gold/rollout", "reward/baselined_std", "reward/raw_std"]
    keys += ["perf/batch_cpu_seconds", "perf/peak_memory_mb"]
    lines = ["step," + ",".join(keys)]
    lines += [f"{i},{kl if i >= 5 else 0.0},0.5,1.0,2.0,{cpu if i != 3 else 99},{600 + i}" for i in range(25)]
    (logs / "metrics.csv").write_text("\n".join(lines) + "\n")


def test_table_pools_seeds_and_gyms_and_reads_cost_and_variance_from_the_curves(tmp_path, capsys):
    _write_run(bench.run_dir(tmp_path, 4, "rloo", 0), 10, 2, kl=1.0, cpu=2.0)
    _write_run(bench.run_dir(tmp_path, 4, "rloo", 1), 6, 6, kl=3.0, cpu=4.0)
    _write_run(bench.run_dir(tmp_path, 6, "rloo", 0), 4, 0, kl=2.0, cpu=3.0)
    argv = ["--root", str(tmp_path), "--gym-seeds", "4", "6", "--seeds", "0", "1", "--variants", "rloo"]
    assert bench.main(argv) == 0
    row = json.loads((tmp_path / "estimators.json").read_text())["rloo"]
    # gym 4: 16 wins, 8 losses of 40 -> +20; gym 6: +20; pooled 20 wins, 8 losses of 60 -> +20
    assert row["gyms"]["4"]["runs"] == [40.0, 0.0] and row["pooled"]["all"]["win_minus_loss"] == pytest.approx(20)
    assert row["kl_end"] == pytest.approx(2.0)  # the last 20 iterations of each run, then the runs' mean
    assert row["cpu_seconds"] == pytest.approx(3.0)  # each run's median iteration (one slow one left out)
    assert row["peak_memory_mb"] == 624 and row["probe_shift"]["identity"] == pytest.approx(10.0)
    table = capsys.readouterr().out
    assert "| rloo | +20.0 (+40, +0) | +20.0 (+20) | **+20.0**" in table
    assert (tmp_path / "estimators.png").stat().st_size > 0


def test_without_finished_runs_it_says_to_run_them(tmp_path, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--root", str(tmp_path)])
    assert "no finished run" in capsys.readouterr().err
