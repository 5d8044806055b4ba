"""``python -m lit_rlhf.evaluation.gym_seeds``: the pipeline on several gyms, one held-out table.

Each gym seed is a whole fresh gym (its own prompt split, demonstrations and annotators). For each,
``--run`` runs ``lit-rlhf-pipeline gym.seed=N paths.artifacts=ROOT/gN`` (three training seeds of PPO and
DPO, evaluated on that gym's test prompts, which no stage trained on); the table then reads every
``ROOT/gN/eval/results.json``::

    python -m lit_rlhf.evaluation.gym_seeds --gym-seeds 0 1 2 --root artifacts/gym_seeds --run

Writes ``ROOT/gym_seeds.md`` and ``ROOT/gym_seeds.json``: wins − losses against SFT with 95% intervals per
gym seed and pooled over the gyms, per category, each training run, the capability probes and the reward
model's agreement with the gold judge. Long (one pipeline per gym seed): a benchmark-style script, not a test.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lit_rlhf.evaluation.pairwise import bootstrap_interval

PROBES = ("identity", "format")


def pooled_row(rows: list[dict]) -> dict:
    """One win/tie/loss row from several (each ``{n, win, tie, loss}``), its interval re-drawn from the outcomes."""
    values: list[int] = []
    for row in rows:
        n = int(row["n"])
        wins, losses = round(row["win"] * n), round(row["loss"] * n)
        values += [1] * wins + [-1] * losses + [0] * (n - wins - losses)
    lo, hi = bootstrap_interval(values)
    n = len(values)
    return {
        "n": n,
        "win": values.count(1) / n,
        "tie": values.count(0) / n,
        "loss": values.count(-1) / n,
        "win_minus_loss": 100 * sum(values) / n,
        "ci95": [100 * lo, 100 * hi],
    }


def gym_summary(results: dict) -> dict:
    """What one gym's evaluation says, per candidate: the pooled table, each run's ``all``, the probes."""
    baseline = results["baseline"]["name"]
    probes = results.get("probes", {})
    out = {"baseline_probes": probes.get(baseline), "reward_model": (results.get("reward_model") or {}).get("heldout")}
    for name, table in results["pairwise"].items():
        out[name] = {
            "table": table,
            "runs": [r["win_minus_loss"] for r in results["per_checkpoint"][name]],
            "probes": probes.get(name),
        }
    return out


def summarize(by_gym: dict[int, dict]) -> dict:
    """``{gym_seed: eval results.json}`` -> per-gym summaries and, per candidate, the table pooled over gyms."""
    gyms = {seed: gym_summary(results) for seed, results in sorted(by_gym.items())}
    names = [n for n in next(iter(by_gym.values()))["pairwise"]]
    pooled = {}
    for name in names:
        categories = sorted({c for g in gyms.values() for c in g[name]["table"]})
        pooled[name] = {
            c: pooled_row([g[name]["table"][c] for g in gyms.values() if c in g[name]["table"]]) for c in categories
        }
    return {"gyms": gyms, "pooled": pooled}


def _cell(row: dict) -> str:
    return f"{row['win_minus_loss']:+.1f} [{row['ci95'][0]:+.1f}, {row['ci95'][1]:+.1f}]"


def _probe_cell(probes: dict, baseline: dict, key: str) -> str:
    """``candidate (baseline)``, with "–" for a figure the run did not record."""
    return f"{_rate(probes.get(key))} ({_rate(baseline.get(key))})"


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def markdown(summary: dict) -> str:
    """One table per candidate: a row per gym seed and a pooled row."""
    lines = []
    for name, pooled in summary["pooled"].items():
        categories = [c for c in pooled if c != "all"]
        lines += [
            f"### {name} vs SFT (wins − losses, points, 95% interval)",
            "",
            "| gym seed | all | " + " | ".join(categories) + " | each run | probes identity / format "
            "(SFT) | identity answers refusing (SFT) | RM agrees with gold |",
            "|---" * (len(categories) + 6) + "|",
        ]
        for seed, gym in summary["gyms"].items():
            row, probes, base = gym[name], gym[name]["probes"] or {}, gym["baseline_probes"] or {}
            table = row["table"]
            rm = (gym.get("reward_model") or {}).get("gold_accuracy")
            rm_cell = f"{rm:.2f}" if rm is not None else "–"
            lines.append(
                f"| {seed} | **{_cell(table['all'])}** | "
                + " | ".join(f"{table[c]['win_minus_loss']:+.1f}" if c in table else "–" for c in categories)
                + " | "
                + ", ".join(f"{r:+.1f}" for r in row["runs"])
                + " | "
                + " / ".join(_probe_cell(probes, base, p) for p in PROBES)
                + f" | {_probe_cell(probes, base, 'identity_refused')} | {rm_cell} |"
            )
        lines.append(
            f"| pooled | **{_cell(pooled['all'])}** | "
            + " | ".join(f"{pooled[c]['win_minus_loss']:+.1f}" for c in categories)
            + " | | | | |"
        )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lit_rlhf.evaluation.gym_seeds", description=__doc__.split("\n")[0])
    parser.add_argument("--gym-seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--root", default="artifacts/gym_seeds", help="one artifacts folder per gym seed: ROOT/gN")
    parser.add_argument("--run", action="store_true", help="run the pipeline for each gym seed first (resumes)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every stage of every pipeline")
    args = parser.parse_args(argv)
    root = Path(args.root)
    if args.run:
        from lit_rlhf.pipeline import run_pipeline

        for seed in args.gym_seeds:
            run_pipeline([f"paths.artifacts={root / f'g{seed}'}", f"gym.seed={seed}", *args.overrides])
    by_gym = {}
    for seed in args.gym_seeds:
        path = root / f"g{seed}" / "eval" / "results.json"
        if not path.exists():
            parser.exit(
                2,
                f"{parser.prog}: error: {path} is missing: run with --run, or the pipeline with "
                f"gym.seed={seed} paths.artifacts={root / f'g{seed}'}\n",
            )
        by_gym[seed] = json.loads(path.read_text())
    summary = summarize(by_gym)
    text = markdown(summary)
    (root / "gym_seeds.json").write_text(json.dumps(summary, indent=2) + "\n")
    (root / "gym_seeds.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
