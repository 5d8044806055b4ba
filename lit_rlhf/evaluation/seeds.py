"""``python -m lit_rlhf.evaluation.seeds [--plot CURVES.png] NAME=DIR ...``: PPO settings over several seeds.

Each ``DIR`` holds one run per seed (``DIR/s0``, ``DIR/s1``, ...: a PPO stage's output directories, as
``run_suffix=/exp/NAME/sSEED`` writes them), or is one run itself. Prints one markdown row per setting with the
mean over its seeds (and the per-seed wins − losses); ``--plot`` draws each setting's curves averaged over its
seeds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import fmean

from lit_rlhf.evaluation.ablation import read_curves
from lit_rlhf.evaluation.plots import plot_curves

CURVES = ("reward/raw", "reward/used_std", "objective/kl", "critic/value_error", "gold/rollout")
EDGE = 20  # iterations averaged at the start and at the end of a run


def run_summary(run_dir: str | Path) -> dict:
    """What one PPO run's results.json and CSV log say about its stability and its outcome."""
    run_dir = Path(run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    curves = read_curves(run_dir)
    kl, error = curves["objective/kl"], curves["critic/value_error"]
    spread = results.get("reward_spread") or {}
    return {
        "spread_raw": spread.get("raw", {}).get("between"),
        "spread_baselined": spread.get("baselined", {}).get("between"),
        "reward_std": fmean(curves["reward/used_std"]),
        "error_first": fmean(error[:EDGE]),
        "error_last": fmean(error[-EDGE:]),
        "explained": fmean(curves["critic/explained_variance"]),
        "kl_last10": fmean(kl[-10:]),
        "kl_max": max(kl),
        "win_minus_loss": results["vs_sft"]["win_tie_loss"]["all"]["win_minus_loss"],
    }


def seed_runs(directory: str | Path) -> list[Path]:
    """The finished runs ``directory/s*``, or ``directory`` itself when it is one run."""
    if (Path(directory) / "results.json").exists():
        return [Path(directory)]
    runs = sorted(p for p in Path(directory).glob("s*") if (p / "results.json").exists())
    if not runs:
        raise FileNotFoundError(f"{directory}: no finished run (s*/results.json)")
    return runs


def markdown_row(name: str, runs: list[dict]) -> str:
    def mean(key: str) -> float | None:
        values = [r[key] for r in runs if r[key] is not None]
        return fmean(values) if values else None

    def cell(value: float | None, digits: int = 2) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    first = runs[0]  # the variance across prompts is reported for the first seed's prompt-filter samples
    wins = ", ".join(f"{r['win_minus_loss']:+.1f}" for r in runs)
    return (
        f"| {name} | {cell(first['spread_raw'])} / {cell(first['spread_baselined'])} | {cell(mean('reward_std'))} "
        f"| {cell(mean('error_first'))} / {cell(mean('error_last'))} | {cell(mean('explained'))} "
        f"| {cell(mean('kl_last10'))} / {cell(mean('kl_max'), 1)} | {mean('win_minus_loss'):+.1f} ({wins}) |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", nargs="+", metavar="NAME=DIR")
    parser.add_argument("--plot", help="PNG of each setting's curves, averaged over its seeds")
    args = parser.parse_args(argv)
    print(
        "| setting | variance across prompts, raw / baselined (first seed) | reward std | critic error, first / last "
        f"{EDGE} | explained variance | KL, last 10 / max | wins − losses (per seed) |"
    )
    print("|---|---|---|---|---|---|---|")
    averaged = {}
    for setting in args.settings:
        name, _, directory = setting.partition("=")
        if not directory:
            parser.error(f"{setting!r}: expected NAME=DIR")
        runs = seed_runs(directory)
        print(markdown_row(name, [run_summary(r) for r in runs]))
        curves = [read_curves(r) for r in runs]
        length = min(len(c["objective/kl"]) for c in curves)
        averaged[name] = {k: [fmean(c[k][i] for c in curves) for i in range(length)] for k in CURVES}
    if args.plot:
        print(f"curves: {plot_curves(averaged, CURVES, args.plot)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
