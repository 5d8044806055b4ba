"""The evaluation report: ``report.md`` with PNG plots, written from the evaluation's ``results.json`` payload."""

from __future__ import annotations

from pathlib import Path

from lit_rlhf.evaluation.ablation import CURVES, markdown_table, read_curves
from lit_rlhf.evaluation.plots import plot_category_scores, plot_curves
from lit_rlhf.reward.metrics import above_chance


def _signed(v: float) -> str:
    return f"{v:+.1f}"


def _interval(ci: list[float]) -> str:
    return f"[{ci[0]:+.1f}, {ci[1]:+.1f}]"


def headline(name: str, table: dict, results: dict) -> str:
    row = table["all"]
    line = (
        f"- **{name} vs {results['baseline']['name']}**: {_signed(row['win_minus_loss'])} points "
        f"{_interval(row['ci95'])} (win {row['win']:.2f} / tie {row['tie']:.2f} / loss {row['loss']:.2f}, "
        f"n = {row['n']})"
    )
    runs = results.get("per_checkpoint", {}).get(name, [])
    if len(runs) > 1:
        line += f", pooled over {len(runs)} training runs; each run: " + ", ".join(
            f"{_signed(r['win_minus_loss'])} {_interval(r['ci95'])}" for r in runs
        )
    return line


def pairwise_section(results: dict) -> list[str]:
    base = results["baseline"]["name"]
    lines = [
        f"## Pairwise: each candidate vs {base} ({results['judge']} judge)",
        "",
        (
            f"{results['samples_per_prompt']} answer(s) per prompt from each model with shared sampling seeds "
            "(a candidate with several training runs: each run's answers against the baseline's, pooled); "
            f"a win is a higher score (by more than {results['tie_margin']}); wins − losses in points with a "
            "95% percentile-bootstrap interval over the comparisons (evaluation sampling only, not training "
            "seeds)."
        ),
        "",
    ]
    for name, table in results["pairwise"].items():
        lines += [
            f"### {name} vs {base}",
            "",
            "| category | n | win / tie / loss | wins − losses [95% interval] |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {c} | {r['n']} | {r['win']:.2f} / {r['tie']:.2f} / {r['loss']:.2f} | "
            f"{_signed(r['win_minus_loss'])} {_interval(r['ci95'])} |"
            for c, r in table.items()
        ]
        counts = results.get("human_counts", {}).get(name)
        if counts:
            lines += [
                "",
                (
                    f"Human labels: {counts['labelled']} pairs labelled, {counts['identical']} identical "
                    f"answer pairs counted as ties without asking, {counts['unlabelled']} still unlabelled "
                    "(left out)."
                ),
            ]
        lines.append("")
    return lines


def per_model_table(title: str, note: str, values: dict[str, dict[str, float]], fmt: str) -> list[str]:
    """A category × model table from ``{model: {category: value}}``."""
    models = list(values)
    present = {c for v in values.values() for c in v}
    categories = sorted(present - {"all"}) + (["all"] if "all" in present else [])
    lines = [f"## {title}", "", note, "", "| category | " + " | ".join(models) + " |", "|---" * (len(models) + 1) + "|"]
    lines += [
        f"| {c} | " + " | ".join(format(values[m][c], fmt) if c in values[m] else "-" for m in models) + " |"
        for c in categories
    ]
    return lines + [""]


def write_plots(results: dict, out: Path) -> dict[str, Path]:
    plots = {}
    if results.get("pairwise"):
        plots["pairwise"] = plot_category_scores(
            {n: {c: r["win_minus_loss"] for c, r in t.items()} for n, t in results["pairwise"].items()},
            out / "pairwise.png",
            f"wins − losses vs {results['baseline']['name']} ({results['judge']} judge)",
            ylabel="points",
            intervals={n: {c: r["ci95"] for c, r in t.items()} for n, t in results["pairwise"].items()},
        )
    if results.get("absolute"):
        plots["absolute"] = plot_category_scores(
            results["absolute"],
            out / "absolute_scores.png",
            "absolute score (1-10) by the gold judge",
            ylabel="score (1-10)",
        )
    if results.get("lengths"):
        plots["lengths"] = plot_category_scores(
            {m: {c: s["mean"] for c, s in v.items()} for m, v in results["lengths"].items()},
            out / "lengths.png",
            "mean answer length",
            ylabel="words",
        )
    runs = {name: read_curves(path) for name, path in results.get("training_runs", {}).items() if Path(path).exists()}
    if any(runs.values()):
        plots["curves"] = plot_curves(runs, CURVES, out / "ppo_curves.png")
    return plots


def write_report(results: dict, out: str | Path, ablations_root: str | Path | None = None) -> Path:
    """``out/report.md`` (and its PNGs) from an evaluation's results; sections without data are left out.

    ``results["candidates"]`` maps each candidate's name to the list of its checkpoints' paths.
    """
    out = Path(out)
    plots = write_plots(results, out)
    lines = [
        "# Evaluation report",
        "",
        f"Prompts: {results['prompts']['n']} from {results['prompts']['source']}. "
        f"Baseline: `{results['baseline']['name']}` ({results['baseline']['path']}). Candidates: "
        + ", ".join(f"`{n}` ({', '.join(paths)})" for n, paths in results["candidates"].items())
        + ".",
        "",
    ]
    lines += ["## Headline", ""] + [headline(n, t, results) for n, t in results["pairwise"].items()] + [""]
    lines += pairwise_section(results)
    if "pairwise" in plots:
        lines += ["![wins minus losses per category](pairwise.png)", ""]
    if results.get("absolute"):
        lines += per_model_table(
            "Absolute scores (1-10)",
            "AlignBench-style: the gold judge's score divided by the "
            "gym's ideal answer's score for the same prompt, mapped to 1 (nothing of value) - 10 "
            "(ideal).",
            results["absolute"],
            ".2f",
        )
        lines += ["![absolute scores](absolute_scores.png)", ""]
    if results.get("lengths"):
        lines += per_model_table(
            "Answer length (mean words)",
            "Length in whitespace words of the evaluated answers.",
            {m: {c: s["mean"] for c, s in v.items()} for m, v in results["lengths"].items()},
            ".2f",
        )
        lines += ["![answer lengths](lengths.png)", ""]
    if results.get("probes"):
        lines += per_model_table(
            "Capability probes (pass rate)",
            "Identity (names itself) and format (answers in "
            "the asked JSON shape) on the held-out probe prompts, 16 samples each; `_refused`: the share of "
            "those answers that refuse (over-refusal: the questions are benign).",
            results["probes"],
            ".2f",
        )
    lines += reward_model_section(results.get("reward_model"))
    if "curves" in plots:
        lines += [
            "## Training curves",
            "",
            (
                "Per PPO iteration: reward from the reward model (raw, and as used "
                "after the reference baseline), KL to the SFT policy, and the gold "
                "judge's score of the same rollouts (monitoring only)."
            ),
            "",
            "![PPO curves](ppo_curves.png)",
            "",
        ]
    lines += ablation_section(ablations_root)
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def reward_model_section(rm: dict | None) -> list[str]:
    if not rm:
        return []
    held = rm.get("heldout", {})
    interval = held.get("accuracy_ci95")
    accuracy = f"{held.get('accuracy', float('nan')):.3f}" + (
        f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else ""
    )
    lines = [
        "## Reward model",
        "",
        (
            f"Held-out pairs: {held.get('pairs', '-')}; accuracy on the human (simulated) "
            f"labels {accuracy}; agreement with the gold judge "
            f"{held.get('gold_accuracy', float('nan')):.3f} on "
            f"{held.get('gold_decided_pairs', '-')} pairs it decides; score-length Pearson "
            f"correlation {held.get('length_pearson', float('nan')):+.2f}."
        ),
        "",
    ]
    if interval and not above_chance(interval):
        note = "**Its accuracy is not above chance** (the 95% interval reaches 0.5): RL against it may have followed"
        lines += [note + " its noise.", ""]
    return lines


def ablation_section(root: str | Path | None) -> list[str]:
    from lit_rlhf.evaluation.ablation import ablation_rows

    rows = ablation_rows(root) if root else {}
    if not rows:
        return []
    return ["## Ablations (PPO with one technique off)", "", markdown_table(rows), ""]
