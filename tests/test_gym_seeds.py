"""The held-out table over gym seeds, on hand-made evaluation results."""

import json

import pytest
from win_rows import win_row

from lit_rlhf.evaluation.gym_seeds import main, pooled_row, summarize


def _results(all_row, math_row, runs, probes):
    return {
        "baseline": {"name": "sft"},
        "pairwise": {"ppo": {"all": all_row, "math": math_row}},
        "per_checkpoint": {"ppo": [{"win_minus_loss": r} for r in runs]},
        "probes": {"sft": {"identity": 0.5, "format": 0.4, "identity_refused": 0.05}, "ppo": probes},
        "reward_model": {"heldout": {"gold_accuracy": 0.8}},
    }


def test_pooling_counts_every_comparison_of_every_gym():
    row = pooled_row([win_row(10, 6, 2), win_row(30, 3, 9)])
    # 9 wins, 11 losses, 20 ties of 40
    assert row["n"] == 40 and row["win_minus_loss"] == pytest.approx(-5.0)
    assert row["win"] == pytest.approx(9 / 40) and row["loss"] == pytest.approx(11 / 40)
    assert row["ci95"][0] < -5.0 < row["ci95"][1]


def test_table_per_gym_and_pooled(tmp_path, capsys):
    for seed, (all_row, runs, refused) in {
        0: (win_row(20, 10, 2), [30.0, 50.0], {}),
        4: (win_row(20, 4, 8), [-10.0, -30.0], {"identity_refused": 0.3}),
    }.items():
        path = tmp_path / f"g{seed}" / "eval" / "results.json"
        path.parent.mkdir(parents=True)
        probes = {"identity": 0.25, "format": 0.5, **refused}
        path.write_text(json.dumps(_results(all_row, win_row(4, 1, 1), runs, probes)))
    assert main(["--gym-seeds", "0", "4", "--root", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "gym_seeds.json").read_text())
    assert summary["pooled"]["ppo"]["all"]["n"] == 40
    assert summary["pooled"]["ppo"]["all"]["win_minus_loss"] == pytest.approx(100 * (14 - 10) / 40)
    table = (tmp_path / "gym_seeds.md").read_text()
    assert "| 0 | **+40.0" in table and "| 4 | **-20.0" in table and "| pooled | **+10.0" in table
    assert "+30.0, +50.0" in table and "0.25 (0.50) / 0.50 (0.40)" in table and "| 0.80 |" in table
    # runs from before the refusal count have none: a dash, not a number
    assert "| – (0.05) |" in table and "| 0.30 (0.05) |" in table
    assert summarize({0: _results(win_row(2, 1, 0), win_row(2, 1, 0), [50.0], {})})["gyms"][0]["ppo"]["runs"] == [50.0]


def test_a_missing_gym_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--gym-seeds", "7", "--root", str(tmp_path)])
    assert "g7/eval/results.json is missing" in capsys.readouterr().err
