import csv
import json

import pytest

from lit_rlhf.evaluation.seeds import main, markdown_row, run_summary

pytestmark = pytest.mark.slow  # trains PPO runs


def fake_run(path, kl, error, win_minus_loss, spread=None):
    """A PPO run directory: results.json and a CSV log with one row per iteration."""
    (path / "logs" / "version_0").mkdir(parents=True)
    with (path / "logs" / "version_0" / "metrics.csv").open("w", newline="") as handle:
        keys = [
            "step",
            "objective/kl",
            "critic/value_error",
            "critic/explained_variance",
            "reward/used_std",
            "reward/raw",
            "gold/rollout",
        ]
        writer = csv.DictWriter(handle, keys)
        writer.writeheader()
        for step, (k, e) in enumerate(zip(kl, error)):
            writer.writerow(
                {
                    "step": step,
                    "objective/kl": k,
                    "critic/value_error": e,
                    "critic/explained_variance": 0.5,
                    "reward/used_std": 2.0,
                    "reward/raw": 0.0,
                    "gold/rollout": 1.0,
                }
            )
    results = {"vs_sft": {"win_tie_loss": {"all": {"win_minus_loss": win_minus_loss}}}}
    if spread:
        results["reward_spread"] = {"raw": {"between": spread[0]}, "baselined": {"between": spread[1]}}
    (path / "results.json").write_text(json.dumps(results))
    return path


def test_one_run_is_summarised_from_its_log(tmp_path):
    # 40 iterations: error 3 for the first 20, 1 for the last 20; KL rises 0, 0.1, ..., 3.9
    run = fake_run(tmp_path / "s0", [i / 10 for i in range(40)], [3.0] * 20 + [1.0] * 20, 12.5, (4.0, 2.5))
    summary = run_summary(run)
    assert summary["error_first"] == 3.0 and summary["error_last"] == 1.0
    assert summary["kl_last10"] == pytest.approx(3.45) and summary["kl_max"] == pytest.approx(3.9)
    assert summary["reward_std"] == 2.0 and summary["explained"] == 0.5
    assert (summary["spread_raw"], summary["spread_baselined"], summary["win_minus_loss"]) == (4.0, 2.5, 12.5)


def test_a_setting_row_averages_its_seeds_and_lists_each_seeds_result(tmp_path, capsys):
    for seed, (error, win) in enumerate([(2.0, 10.0), (4.0, 20.0)]):
        fake_run(tmp_path / "base" / f"s{seed}", [1.0] * 30, [error] * 30, win, (5.0 + seed, 2.0))
    row = markdown_row("greedy", [run_summary(tmp_path / "base" / f"s{s}") for s in (0, 1)])
    assert row == "| greedy | 5.00 / 2.00 | 2.00 | 3.00 / 3.00 | 0.50 | 1.00 / 1.0 | +15.0 (+10.0, +20.0) |"
    assert main([f"greedy={tmp_path / 'base'}", "--plot", str(tmp_path / "curves.png")]) == 0
    assert row in capsys.readouterr().out and (tmp_path / "curves.png").stat().st_size > 0
    assert main([f"one run={tmp_path / 'base' / 's1'}"]) == 0  # a run directory is a setting of one seed
    assert "| one run | 6.00 / 2.00 |" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="no finished run"):
        main([f"none={tmp_path / 'missing'}"])
