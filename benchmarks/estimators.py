"""The advantage estimators and reward parts side by side on the gym's held-out prompts: several gyms, three seeds.

    python benchmarks/estimators.py --gym-seeds 4 6 --seeds 0 1 2 --root artifacts/gym_seeds --run --jobs 2

For each gym (a gym seed): the pipeline's SFT, preference and reward-model stages (skipped when done), then one
PPO run per variant and training seed, each the gym PPO run with one ablation (``conf/ablation``), judged by
the gold judge against SFT on that gym's *test* prompts, which no stage trained on. ``--jobs N`` trains N runs
at once, each in its own process with an equal share of the CPU threads; a finished run is skipped and a killed
one resumes.

Writes ``ROOT/estimators.md``, ``ROOT/estimators.json`` and ``ROOT/estimators.png``. Per variant: wins − losses
against SFT with its 95% interval per gym and pooled over gyms and seeds, per category; the probes against
SFT's; the std over a batch of the reward left after the estimator's baseline (``reward/baselined_std``) and of
the raw reward-model score; KL at the end (the mean of the last 20 iterations) and its growth over training
(the plot); seconds of CPU time per iteration and the peak resident memory. Long (a PPO run per variant, gym
and seed, ~3 min each on one thread): a benchmark-style script, not a test.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import mean, median

from lit_rlhf.evaluation.ablation import read_curves
from lit_rlhf.evaluation.gym_seeds import pooled_row
from lit_rlhf.evaluation.parallel_runs import train_sweep
from lit_rlhf.evaluation.plots import _pyplot, _save, smooth

# name -> (the ablation that makes it, what it is)
VARIANTS: dict[str, tuple[str, str]] = {
    "gae": ("full", "PPO-GAE (learned critic) with the reference baseline: the default"),
    "gae_no_ref": ("no_reference_baseline", "PPO-GAE without the reference baseline"),
    "grpo": ("estimator_grpo", "GRPO, k = 4: group mean and std, no critic"),
    "rloo": ("estimator_rloo", "RLOO, k = 4: leave-one-out mean, no critic"),
    "reinforce_pp": ("estimator_reinforce_pp", "REINFORCE++: returns whitened over the batch, no critic"),
    "remax": ("estimator_remax", "ReMax: the greedy answer's reward as baseline, no critic"),
    "gae_math": ("math_verifier", "PPO-GAE, reward model + the math verifier (weight 2)"),
}
PROBES = ("identity", "format")
CATEGORIES = ("harmful", "math", "writing")


def run_dir(root: Path, gym_seed: int, variant: str, seed: int) -> Path:
    return root / f"g{gym_seed}" / "ppo" / "estimators" / variant / f"s{seed}"


def run_overrides(root: Path, gym_seed: int, variant: str, seed: int) -> list[str]:
    """``lit-rlhf-train`` overrides of one run: experiment=gym_ppo on that gym with the variant's ablation."""
    gym_root = root / f"g{gym_seed}"
    return [
        "experiment=gym_ppo",
        f"paths.artifacts={gym_root}",
        f"gym.seed={gym_seed}",
        f"seed={seed}",
        f"ablation={VARIANTS[variant][0]}",
        f"run_suffix=/{run_dir(root, gym_seed, variant, seed).relative_to(gym_root / 'ppo')}",
    ]


def run_all(root: Path, gym_seeds: list[int], variants: list[str], seeds: list[int], jobs: int) -> None:
    """The shared stages once per gym, then the missing runs, ``jobs`` at a time, seed by seed so that a stopped
    sweep has every variant at the same number of seeds."""
    jobs_in_order = [(g, v, s) for s in seeds for g in gym_seeds for v in variants]
    train_sweep(root, gym_seeds, [(run_overrides(root, *job), run_dir(root, *job)) for job in jobs_in_order], jobs)


def run_summary(path: Path) -> dict:
    """One run's table against SFT, probes and the cost and variance read from its logged curves."""
    r = json.loads((path / "results.json").read_text())
    curves = read_curves(path)
    return {
        "table": r["vs_sft"]["win_tie_loss"],
        "probes": r["vs_sft"]["probes"],
        "probes_sft": r["vs_sft"]["probes_sft"],
        "kl_end": mean(curves["objective/kl"][-20:]),
        "kl": curves["objective/kl"],
        "gold": curves.get("gold/rollout", []),
        "baselined_std": mean(curves["reward/baselined_std"]),
        "raw_std": mean(curves["reward/raw_std"]),
        "cpu_seconds": median(curves["perf/batch_cpu_seconds"]),
        "peak_memory_mb": max(curves["perf/peak_memory_mb"]),
    }


def summarize(root: Path, gym_seeds: list[int], variants: list[str], seeds: list[int]) -> dict:
    """Per variant: each gym's table pooled over its seeds, the table pooled over gyms, and the runs' means."""
    out = {}
    for name in variants:
        runs = {
            (g, s): run_summary(run_dir(root, g, name, s))
            for g in gym_seeds
            for s in seeds
            if (run_dir(root, g, name, s) / "results.json").exists()
        }
        if not runs:
            continue
        gyms = {}
        for g in gym_seeds:
            mine = [run for (gym, _), run in runs.items() if gym == g]
            if mine:
                categories = sorted({c for run in mine for c in run["table"]})
                gyms[g] = {
                    "runs": [run["table"]["all"]["win_minus_loss"] for run in mine],
                    "table": {
                        c: pooled_row([run["table"][c] for run in mine if c in run["table"]]) for c in categories
                    },
                }
        categories = sorted({c for g in gyms.values() for c in g["table"]})
        every = list(runs.values())
        out[name] = {
            "what": VARIANTS[name][1],
            "gyms": gyms,
            "pooled": {c: pooled_row([g["table"][c] for g in gyms.values() if c in g["table"]]) for c in categories},
            "probe_shift": {p: mean(100 * (r["probes"][p] - r["probes_sft"][p]) for r in every) for p in PROBES},
            **{key: mean(r[key] for r in every) for key in ("kl_end", "baselined_std", "raw_std", "cpu_seconds")},
            "peak_memory_mb": max(r["peak_memory_mb"] for r in every),
            "curves": {key: [r[key] for r in every] for key in ("kl", "gold")},
        }
    return out


def markdown(summary: dict, gym_seeds: list[int]) -> str:
    lines = [
        "| variant | "
        + " | ".join(f"gym {g} (each seed)" for g in gym_seeds)
        + " | pooled [95%] | "
        + " | ".join(CATEGORIES)
        + " | probes identity / format vs SFT | std after baseline | std raw | KL at end | CPU s / iteration "
        "| peak MB |",
        "|---" * (len(gym_seeds) + len(CATEGORIES) + 8) + "|",
    ]
    for name, row in summary.items():
        per_gym = []
        for g in gym_seeds:
            gym = row["gyms"].get(g)
            per_gym.append(
                f"{gym['table']['all']['win_minus_loss']:+.1f} ({', '.join(f'{x:+.0f}' for x in gym['runs'])})"
                if gym
                else "–"
            )
        pooled = row["pooled"]
        lo, hi = pooled["all"]["ci95"]
        cats = [f"{pooled[c]['win_minus_loss']:+.1f}" if c in pooled else "–" for c in CATEGORIES]
        shift = " / ".join(f"{row['probe_shift'][p]:+.1f}" for p in PROBES)
        lines.append(
            f"| {name} | "
            + " | ".join(per_gym)
            + f" | **{pooled['all']['win_minus_loss']:+.1f}** [{lo:+.1f}, {hi:+.1f}] | "
            + " | ".join(cats)
            + f" | {shift} | {row['baselined_std']:.2f} | {row['raw_std']:.2f} | {row['kl_end']:.1f} "
            f"| {row['cpu_seconds']:.2f} | {row['peak_memory_mb']:.0f} |"
        )
    lines += ["", *(f"- `{name}`: {row['what']} (`ablation={VARIANTS[name][0]}`)" for name, row in summary.items())]
    return "\n".join(lines)


def plot(summary: dict, path: Path) -> Path:
    """KL and the gold judge's score of the rollouts over training, per variant (mean over its runs)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for name, row in summary.items():
        for ax, key in zip(axes, ("kl", "gold")):
            runs = [r for r in row["curves"][key] if r]
            if runs:
                n = min(len(r) for r in runs)
                ax.plot(smooth([mean(r[i] for r in runs) for i in range(n)], 10), label=name)
    axes[0].set_title("KL to the reference (nats per answer, mean of 10)")
    axes[1].set_title("gold judge on the rollouts (mean of 10)")
    for ax in axes:
        ax.set_xlabel("iteration")
    axes[0].set_yscale("symlog")
    axes[1].legend(fontsize=7)
    return _save(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/estimators.py", description=__doc__.split("\n")[0])
    parser.add_argument("--gym-seeds", nargs="+", type=int, default=[4, 6])
    parser.add_argument("--root", type=Path, default=Path("artifacts/gym_seeds"))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds of each variant")
    parser.add_argument("--run", action="store_true", help="train what is missing first")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once, each in its own process")
    args = parser.parse_args(argv)
    if args.run:
        run_all(args.root, args.gym_seeds, args.variants, args.seeds, args.jobs)
    summary = summarize(args.root, args.gym_seeds, args.variants, args.seeds)
    if not summary:
        parser.exit(2, f"{parser.prog}: error: no finished run under {args.root}: run with --run\n")
    text = markdown(summary, args.gym_seeds)
    args.root.mkdir(parents=True, exist_ok=True)
    (args.root / "estimators.json").write_text(json.dumps(summary, indent=2) + "\n")
    (args.root / "estimators.md").write_text(text + "\n")
    print(text)
    print(plot(summary, args.root / "estimators.png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
