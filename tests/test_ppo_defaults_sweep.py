"""benchmarks/ppo_defaults_sweep.py without its long runs: every variant composes to the settings it names, and
the table and the drift plot come from hand-made run directories."""

import json
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
import ppo_defaults_sweep as sweep  # noqa: E402
from win_rows import win_row  # noqa: E402

from lit_rlhf.run import compose  # noqa: E402


@pytest.mark.parametrize("name", list(sweep.VARIANTS))
def test_each_variant_composes_to_what_it_says(name, tmp_path):
    cfg = compose(sweep.variant_overrides(tmp_path, 2, name, seed=1))
    OmegaConf.to_object(cfg.module.config)  # PPOConfig's checks
    assert cfg.output_dir == str(sweep.run_dir(tmp_path, 2, name, 1)) and cfg.ppo.eval.split == "val"
    for key, value in {**sweep.BEFORE, **sweep.VARIANTS[name][0]}.items():
        got = OmegaConf.select(cfg, key)
        assert (OmegaConf.to_container(got) if OmegaConf.is_config(got) else got) == yaml.safe_load(value), key


def _write_run(run: Path, win: int, loss: int, identity: float, refused: float | None = None) -> None:
    run.mkdir(parents=True)
    table = {"all": win_row(20, win, loss), "writing": win_row(10, win // 2, loss // 2)}
    probes, probes_sft = {"identity": identity, "format": 0.5}, {"identity": 0.5, "format": 0.5}
    if refused is not None:
        probes["identity_refused"], probes_sft["identity_refused"] = refused, 0.1
    vs_sft = {"win_tie_loss": table, "probes": probes, "probes_sft": probes_sft}
    (run / "results.json").write_text(json.dumps({"vs_sft": vs_sft}))
    logs = run / "logs" / "version_0"
    logs.mkdir(parents=True)
    keys = ["objective/kl", "reward/raw/writing", "gold/rollout/writing", "rollout/response_length/writing"]
    lines = ["step," + ",".join(keys)] + [f"{i}," + ",".join(str(i + j) for j in range(4)) for i in range(12)]
    (logs / "metrics.csv").write_text("\n".join(lines) + "\n")


def test_table_pools_seeds_per_gym_and_gyms_overall(tmp_path, capsys):
    _write_run(sweep.run_dir(tmp_path, 0, "C", 0), 10, 2, 0.6, refused=0.2)
    _write_run(sweep.run_dir(tmp_path, 0, "C", 1), 6, 6, 0.4, refused=0.4)
    _write_run(sweep.run_dir(tmp_path, 1, "C", 0), 4, 0, 0.5, refused=0.1)
    assert sweep.main(["--root", str(tmp_path), "--gym-seeds", "0", "1", "--seeds", "0", "1", "--variants", "C"]) == 0
    summary = json.loads((tmp_path / "sweep.json").read_text())["C"]
    assert summary["gyms"]["0"]["runs"] == 2 and summary["gyms"]["0"]["table"]["all"]["n"] == 40
    # gym 0: 16 wins, 8 losses of 40 -> +20; gym 1: +20; pooled 20 wins, 8 losses of 60 -> +20
    assert summary["pooled"]["all"]["win_minus_loss"] == pytest.approx(20.0)
    row = capsys.readouterr().out.splitlines()[-1]
    assert row.startswith("| C | +20.0 (2) | +20.0 (1) | **+20.0**") and "| +0.0 / +0.0 |" in row
    # identity answers refusing: gym 0 0.3 against SFT's 0.1, gym 1 level -> +10 points on average
    assert "| +10.0 |" in row


def test_runs_without_the_refusal_count_show_a_dash(tmp_path, capsys):
    _write_run(sweep.run_dir(tmp_path, 0, "C", 0), 10, 2, 0.6, refused=0.2)
    _write_run(sweep.run_dir(tmp_path, 1, "C", 0), 4, 0, 0.5)
    assert sweep.main(["--root", str(tmp_path), "--gym-seeds", "0", "1", "--variants", "C"]) == 0
    assert "| +5.0 / +0.0 | – |" in capsys.readouterr().out.splitlines()[-1]


def test_drift_plot_is_drawn_from_the_logged_per_category_curves(tmp_path):
    run = sweep.run_dir(tmp_path, 2, "A", 0)
    _write_run(run, 1, 1, 0.5)
    assert sweep.main(["--root", str(tmp_path), "--drift", str(run)]) == 0
    assert (tmp_path / "drift.png").stat().st_size > 0
