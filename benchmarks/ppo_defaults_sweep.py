"""PPO's defaults chosen across gyms: variants of the gym PPO run, scored on the tuning gyms' validation prompts.

    python benchmarks/ppo_defaults_sweep.py --gym-seeds 0 1 2 --root artifacts/tuning --run --jobs 2   # ~2.5 min a run

For each tuning gym (a gym seed): the pipeline's SFT, preference and reward-model stages (skipped when done),
then one PPO run per variant with training seed 0, compared with SFT by the gold judge on that gym's
*validation* prompts (``ppo.eval.split=val``). Neither the tuning gyms' test prompts nor any prompt of the
gyms that report the headline (``python -m lit_rlhf.evaluation.gym_seeds``) take part in the choice.

Writes ``ROOT/sweep.md`` and ``ROOT/sweep.json``: per variant, wins − losses against SFT with its 95%
interval on each gym and pooled, per category, and the capability probes against SFT's. ``--drift RUN_DIR``
draws one run's reward-model score against the gold judge per prompt category over training
(``ROOT/drift.png``): where PPO over-optimises its reward model, the two part.
Long (a PPO run per variant and gym): a benchmark-style script, not a test.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lit_rlhf.evaluation.ablation import read_curves
from lit_rlhf.evaluation.gym_seeds import pooled_row
from lit_rlhf.evaluation.parallel_runs import train_sweep
from lit_rlhf.evaluation.plots import _pyplot, _save, smooth

# The gym PPO settings before this sweep; every variant changes some of them (a later default moves nothing here).
BEFORE = {
    "trainer.max_epochs": "8",
    "module.config.kl_coef": "0.1",
    "module.config.adaptive_kl": "false",
    "module.config.ntp_coef": "0.1",
    "module.config.ntp_target": "labels",
    "data.train.categories": "null",
    "ppo.reward_parts": "null",
}
ADAPTIVE_KL = {"module.config.adaptive_kl": "true", "module.config.kl_target": "0.5", "module.config.kl_horizon": "500"}
CAPABILITY_NTP = {"data.train.categories": "[identity,format]"}
REFERENCE_NTP = {"module.config.ntp_target": "reference"}
LENGTH_PART = (
    "{reward_model: {weight: 1.0}, "
    "length: {_target_: lit_rlhf.ppo.reward_parts.LengthPenalty, per_word: 0.1, free_words: 16}}"
)
# adaptive KL, the NTP feed of identity and format demonstrations, the length part: the variants below start here
CNL_SETTINGS = {**ADAPTIVE_KL, **CAPABILITY_NTP, "ppo.reward_parts": LENGTH_PART}
# name -> (what it changes from BEFORE, what it tries)
VARIANTS: dict[str, tuple[dict[str, str], str]] = {
    "A": ({}, "the settings before this sweep: 8 epochs, β 0.1, y_ref one greedy answer, λ_NTP 0.1 on all SFT data"),
    "B": (
        {"ppo.reference_answers.greedy": "false", "ppo.reference_answers.samples": "4"},
        "reference baseline from the mean score of 4 sampled SFT answers instead of one greedy one",
    ),
    "C": (ADAPTIVE_KL, "adaptive KL: β steered towards a KL of 0.5 nats per answer"),
    "D": ({"trainer.max_epochs": "4"}, "half the PPO iterations (4 passes over the RL prompts)"),
    "E": ({"module.config.kl_coef": "0.2"}, "β 0.2"),
    "N0": ({"module.config.ntp_coef": "0"}, "no NTP term"),
    "N3": ({"module.config.ntp_coef": "0.3"}, "λ_NTP 0.3 on all SFT data"),
    "N10": ({"module.config.ntp_coef": "1.0"}, "λ_NTP 1.0 on all SFT data"),
    "Nc1": (CAPABILITY_NTP, "λ_NTP 0.1 on the identity and format demonstrations only"),
    "Nc3": (
        {**CAPABILITY_NTP, "module.config.ntp_coef": "0.3"},
        "λ_NTP 0.3 on the identity and format demonstrations only",
    ),
    "CN": ({**ADAPTIVE_KL, **CAPABILITY_NTP}, "C and Nc1 together: the gym_ppo defaults since this sweep"),
    "CNh": (
        {**ADAPTIVE_KL, **CAPABILITY_NTP, "module.config.kl_horizon": "100"},
        "CN with a 5× faster KL controller (horizon 100 samples: β can move 6.6% per iteration, not 1.3%)",
    ),
    "CNL": (
        CNL_SETTINGS,
        "CN with a length part in the reward: -0.1 per word beyond 16",
    ),
    "CNL3": (
        {**CNL_SETTINGS, "module.config.ntp_coef": "0.3"},
        "CNL with λ_NTP 0.3 on the identity and format demonstrations",
    ),
    "CNL10": (
        {**CNL_SETTINGS, "module.config.ntp_coef": "1.0"},
        "CNL with λ_NTP 1.0 on the identity and format demonstrations",
    ),
    "CNLR3": (
        {**CNL_SETTINGS, **REFERENCE_NTP, "module.config.ntp_coef": "0.3"},
        "CNL with the NTP term against the reference's answers (KL), λ 0.3",
    ),
    "CNLR10": (
        {**CNL_SETTINGS, **REFERENCE_NTP, "module.config.ntp_coef": "1.0"},
        "CNL with the NTP term against the reference's answers (KL), λ 1.0",
    ),
    "CNLR30": (
        {**CNL_SETTINGS, **REFERENCE_NTP, "module.config.ntp_coef": "3.0"},
        "CNL with the NTP term against the reference's answers (KL), λ 3.0",
    ),
}
PROBES = ("identity", "format")
REFUSED = "identity_refused"  # identity answers that refuse; runs from before it was recorded lack it


def run_dir(root: Path, gym_seed: int, variant: str, seed: int = 0) -> Path:
    """Training seed 0 in ``tune/<variant>``, another in ``tune/<variant>_s<seed>``."""
    return root / f"g{gym_seed}" / "ppo" / "tune" / (variant if seed == 0 else f"{variant}_s{seed}")


def variant_overrides(root: Path, gym_seed: int, name: str, seed: int) -> list[str]:
    """The ``lit-rlhf-train`` overrides of one variant's run: experiment=gym_ppo on that gym, judged on its
    validation prompts, with BEFORE and then the variant's own settings."""
    out = run_dir(root, gym_seed, name, seed)
    settings = {**BEFORE, **VARIANTS[name][0]}
    return [
        "experiment=gym_ppo",
        f"paths.artifacts={root / f'g{gym_seed}'}",
        f"gym.seed={gym_seed}",
        f"seed={seed}",
        f"run_suffix=/{out.relative_to(root / f'g{gym_seed}' / 'ppo')}",
        "ppo.eval.split=val",
        *(f"{key}={value}" for key, value in settings.items()),
    ]


def run_variants(root: Path, gym_seeds: list[int], variants: list[str], seeds: list[int], jobs: int = 1) -> None:
    """The shared stages once per gym, then each variant's missing PPO runs, ``jobs`` at a time in their own
    processes (each resumes, or is skipped when done)."""
    runs = [
        (variant_overrides(root, g, name, seed), run_dir(root, g, name, seed))
        for seed in seeds
        for g in gym_seeds
        for name in variants
    ]
    train_sweep(root, gym_seeds, runs, jobs)


def summarize(root: Path, gym_seeds: list[int], variants: list[str], seeds: list[int]) -> dict:
    """Per variant: each gym's table against SFT (pooled over the training seeds that ran) and probes (their
    mean), and the table pooled over the gyms."""
    out = {}
    for name in variants:
        gyms = {}
        for gym_seed in gym_seeds:
            paths = [run_dir(root, gym_seed, name, s) / "results.json" for s in seeds]
            runs = [json.loads(p.read_text())["vs_sft"] for p in paths if p.exists()]
            if runs:
                categories = sorted({c for r in runs for c in r["win_tie_loss"]})
                gyms[gym_seed] = {
                    "runs": len(runs),
                    "table": {c: pooled_row([r["win_tie_loss"][c] for r in runs]) for c in categories},
                    **{
                        key: {
                            p: sum(r[key][p] for r in runs) / len(runs)
                            for p in (*PROBES, REFUSED)
                            if all(p in r[key] for r in runs)
                        }
                        for key in ("probes", "probes_sft")
                    },
                }
        if gyms:
            categories = sorted({c for g in gyms.values() for c in g["table"]})
            pooled = {c: pooled_row([g["table"][c] for g in gyms.values() if c in g["table"]]) for c in categories}
            out[name] = {"what": VARIANTS[name][1], "gyms": gyms, "pooled": pooled}
    return out


def _probe_shift(gyms: dict, probes: tuple[str, ...] = PROBES) -> str:
    """Mean change of each probe's rate against SFT's over the gyms, in points ("–" where a gym lacks it)."""
    cells = []
    for probe in probes:
        if not all(probe in g["probes"] for g in gyms.values()):
            cells.append("–")
            continue
        shifts = [100 * (g["probes"][probe] - g["probes_sft"][probe]) for g in gyms.values()]
        cells.append(f"{sum(shifts) / len(shifts):+.1f}")
    return " / ".join(cells)


def markdown(summary: dict, gym_seeds: list[int]) -> str:
    lines = [
        "| variant | " + " | ".join(f"gym {s} (runs)" for s in gym_seeds) + " | pooled | harmful | math | writing "
        "| probes identity / format vs SFT | identity answers refusing vs SFT | what |",
        "|---" * (len(gym_seeds) + 8) + "|",
    ]
    for name, row in summary.items():
        gyms, pooled = row["gyms"], row["pooled"]
        per_gym = [
            f"{gyms[s]['table']['all']['win_minus_loss']:+.1f} ({gyms[s]['runs']})" if s in gyms else "–"
            for s in gym_seeds
        ]
        lo, hi = pooled["all"]["ci95"]
        headline = f"**{pooled['all']['win_minus_loss']:+.1f}** [{lo:+.1f}, {hi:+.1f}]"
        cats = [f"{pooled[c]['win_minus_loss']:+.1f}" if c in pooled else "–" for c in ("harmful", "math", "writing")]
        lines.append(
            f"| {name} | "
            + " | ".join(per_gym)
            + f" | {headline} | "
            + " | ".join(cats)
            + f" | {_probe_shift(gyms)} | {_probe_shift(gyms, (REFUSED,))} | {row['what']} |"
        )
    return "\n".join(lines)


def plot_drift(run: Path, path: Path) -> Path:
    """Per prompt category: the reward model's mean score and the gold judge's on the policy's own rollouts."""
    curves = read_curves(run)
    categories = sorted(k.split("/")[-1] for k in curves if k.startswith("gold/rollout/"))
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(categories) + 1, figsize=(4 * (len(categories) + 1), 3), squeeze=False)
    for ax, category in zip(axes[0], categories):
        ax.plot(smooth(curves[f"reward/raw/{category}"], 10), color="tab:blue", label="reward model")
        ax.set_ylabel("reward model", color="tab:blue")
        twin = ax.twinx()
        twin.plot(smooth(curves[f"gold/rollout/{category}"], 10), color="tab:red", label="gold judge")
        twin.set_ylabel("gold judge", color="tab:red")
        ax.set_title(f"{category} (mean of 10)")
        ax.set_xlabel("PPO iteration")
    ax = axes[0][-1]
    ax.plot(smooth(curves["objective/kl"], 10), color="black", label="KL (nats / answer)")
    for category in categories:
        ax.plot(smooth(curves[f"rollout/response_length/{category}"], 10), label=f"length {category}")
    ax.set_title("KL and answer length (tokens)")
    ax.set_xlabel("PPO iteration")
    ax.legend(fontsize=7)
    return _save(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/ppo_defaults_sweep.py", description=__doc__.split("\n")[0])
    parser.add_argument("--gym-seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--root", type=Path, default=Path("artifacts/tuning"))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="training seeds of each variant")
    parser.add_argument("--run", action="store_true", help="train what is missing first")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once, each in its own process")
    parser.add_argument("--drift", type=Path, help="a PPO run directory: plot its reward against gold per category")
    args = parser.parse_args(argv)
    if args.drift:
        print(plot_drift(args.drift, args.root / "drift.png"))
        return 0
    if args.run:
        run_variants(args.root, args.gym_seeds, args.variants, args.seeds, args.jobs)
    summary = summarize(args.root, args.gym_seeds, args.variants, args.seeds)
    text = markdown(summary, args.gym_seeds)
    args.root.mkdir(parents=True, exist_ok=True)
    (args.root / "sweep.json").write_text(json.dumps(summary, indent=2) + "\n")
    (args.root / "sweep.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
