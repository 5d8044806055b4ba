"""Plots written as PNG files next to a stage's results."""

from __future__ import annotations

from pathlib import Path


def plot_category_scores(series: dict[str, dict[str, float]], path: str | Path, title: str) -> Path:
    """Grouped bars: one group per category, one bar per named series (e.g. untrained / SFT / ceiling)."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    categories = sorted({c for scores in series.values() for c in scores} - {"all"}) + ["all"]
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for i, (name, scores) in enumerate(series.items()):
        xs = [j + i * width for j in range(len(categories))]
        ax.bar(xs, [scores.get(c, 0.0) for c in categories], width=width, label=name)
    ax.set_xticks([j + width * (len(series) - 1) / 2 for j in range(len(categories))], categories)
    ax.set_ylabel("gold judge score")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
