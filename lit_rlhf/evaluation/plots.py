"""Plots written as PNG files next to a stage's results."""

from __future__ import annotations

from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path


def plot_category_scores(
    series: dict[str, dict[str, float]],
    path: str | Path,
    title: str,
    ylabel: str = "gold judge score",
    intervals: dict[str, dict[str, list[float]]] | None = None,
) -> Path:
    """Grouped bars: one group per category, one bar per named series (e.g. untrained / SFT / ceiling).

    ``intervals`` (same keys as ``series``) draws each bar's ``[low, high]`` as an error bar.
    """
    plt = _pyplot()
    categories = sorted({c for scores in series.values() for c in scores} - {"all"}) + ["all"]
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for i, (name, scores) in enumerate(series.items()):
        xs = [j + i * width for j in range(len(categories))]
        heights = [scores.get(c, 0.0) for c in categories]
        errors = None
        if intervals and name in intervals:
            bounds = [intervals[name].get(c, [h, h]) for c, h in zip(categories, heights)]
            errors = [[h - lo for h, (lo, _) in zip(heights, bounds)], [hi - h for h, (_, hi) in zip(heights, bounds)]]
        ax.bar(xs, heights, width=width, label=name, yerr=errors, capsize=3 if errors else 0)
    ax.set_xticks([j + width * (len(series) - 1) / 2 for j in range(len(categories))], categories)
    ax.axhline(0.0, color="black", linewidth=0.5)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)


def smooth(values: list[float], window: int = 5) -> list[float]:
    """Trailing mean: 16 prompts per PPO iteration make single iterations noisy."""
    return [sum(values[max(0, i - window + 1) : i + 1]) / (i + 1 - max(0, i - window + 1)) for i in range(len(values))]


def plot_curves(
    runs: dict[str, dict[str, list[float]]], keys: tuple[str, ...], path: str | Path, xlabel: str = "PPO iteration"
) -> Path:
    """One panel per metric key, one line per run (``{run: {key: values}}``), smoothed over 5 points."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3), squeeze=False)
    for name, curves in runs.items():
        for ax, key in zip(axes[0], keys):
            ax.plot(smooth(curves.get(key, [])), label=name)
    for ax, key in zip(axes[0], keys):
        ax.set_title(f"{key} (mean of 5)")
        ax.set_xlabel(xlabel)
    axes[0][0].legend(fontsize=7)
    return _save(fig, path)
