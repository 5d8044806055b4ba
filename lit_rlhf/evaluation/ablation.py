"""``python -m lit_rlhf.evaluation.ablation ARTIFACTS [CURVES.png]``: one table (and a plot) from the PPO ablations."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from lit_rlhf.evaluation.plots import plot_curves

COLUMNS = (
    "win-loss vs SFT",
    "95% interval",
    "gold (PPO)",
    "reward std (used)",
    "reward std (raw)",
    "KL at end",
    "identity probe",
    "format probe",
    "answer length",
    "RM gold accuracy",
    "RM score-length r",
)
CURVES = ("reward/raw", "reward/used", "objective/kl", "gold/rollout")


def read_curves(run_dir: str | Path) -> dict[str, list[float]]:
    """Per-iteration values of every logged metric, across all CSV log versions (a resumed run adds one)."""
    by_step: dict[int, dict[str, float]] = {}
    for path in sorted(Path(run_dir).glob("logs/version_*/metrics.csv")):
        with path.open() as handle:
            for row in csv.DictReader(handle):
                values = {k: float(v) for k, v in row.items() if v not in ("", None) and k != "step"}
                by_step.setdefault(int(row["step"]), {}).update(values)
    steps = sorted(by_step)
    keys = {k for values in by_step.values() for k in values}
    return {k: [by_step[s][k] for s in steps if k in by_step[s]] for k in sorted(keys)}


def ablation_rows(root: str | Path) -> dict[str, dict]:
    """``{variant: metrics}`` for every ``<root>/ppo/ablation/<variant>/results.json``."""
    rows = {}
    for path in sorted(Path(root).glob("ppo/ablation/*/results.json")):
        r = json.loads(path.read_text())
        curves = read_curves(path.parent)
        table, probes = r["vs_sft"]["win_tie_loss"]["all"], r["vs_sft"].get("probes", {})
        rows[path.parent.name] = {
            "win-loss vs SFT": table["win_minus_loss"],
            "95% interval": table["ci95"],
            "gold (PPO)": r["vs_sft"]["gold_policy"]["all"]["overall"],
            "reward std (used)": _mean(curves.get("reward/used_std")),
            "reward std (raw)": _mean(curves.get("reward/raw_std")),
            "KL at end": r["train_metrics"].get("objective/kl"),
            "identity probe": probes.get("identity"),
            "format probe": probes.get("format"),
            "answer length": r["train_metrics"].get("rollout/response_length"),
            # runs that predate the "reward_model" entry used the default, <root>/reward_model/checkpoint
            **reward_model_columns(r.get("reward_model", str(Path(root) / "reward_model" / "checkpoint"))),
        }
    return rows


def reward_model_columns(checkpoint: str | None) -> dict:
    """Held-out gold accuracy and score-length correlation of the reward model a PPO run used."""
    results = Path(checkpoint).parent / "results.json" if checkpoint else None
    heldout = json.loads(results.read_text()).get("heldout", {}) if results and results.exists() else {}
    return {"RM gold accuracy": heldout.get("gold_accuracy"), "RM score-length r": heldout.get("length_pearson")}


def _mean(values: list[float] | None) -> float | None:
    return sum(values) / len(values) if values else None


def markdown_table(rows: dict[str, dict]) -> str:
    def cell(column: str, v) -> str:
        if v is None:
            return "-"
        if isinstance(v, list):
            return f"[{v[0]:+.1f}, {v[1]:+.1f}]"
        if column == "win-loss vs SFT":
            return f"{v:+.1f}"
        if column == "RM score-length r":
            return f"{v:+.2f}"
        return f"{v:.1f}" if column == "answer length" else f"{v:.3f}"

    lines = ["| variant | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(cell(c, row[c]) for c in COLUMNS) + " |" for name, row in rows.items()]
    return "\n".join(lines)


def plot_ablation_curves(root: str | Path, path: str | Path) -> Path:
    """Reward, KL and gold curves of every ablation variant, side by side, as a PNG."""
    runs = {run.name: read_curves(run) for run in sorted(Path(root).glob("ppo/ablation/*/"))}
    return plot_curves(runs, CURVES, path)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    root = argv[0] if argv else "artifacts"
    rows = ablation_rows(root)
    if not rows:
        print(f"no ablation results under {root}/ppo/ablation/*/results.json", file=sys.stderr)
        return 1
    print(markdown_table(rows))
    if len(argv) > 1:
        print(f"curves: {plot_ablation_curves(root, argv[1])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
