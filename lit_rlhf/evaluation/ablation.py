"""``python -m lit_rlhf.evaluation.ablation ARTIFACTS``: one table from the PPO ablation runs' results."""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLUMNS = ("win-loss vs SFT", "95% interval", "gold (PPO)", "reward std across prompts", "KL at end",
           "identity probe", "format probe", "answer length")


def ablation_rows(root: str | Path) -> dict[str, dict]:
    """``{variant: metrics}`` for every ``<root>/ppo/ablation/<variant>/results.json``."""
    rows = {}
    for path in sorted(Path(root).glob("ppo/ablation/*/results.json")):
        r = json.loads(path.read_text())
        table, probes = r["vs_sft"]["win_tie_loss"]["all"], r["vs_sft"].get("probes", {})
        rows[path.parent.name] = {
            "win-loss vs SFT": table["win_minus_loss"], "95% interval": table["ci95"],
            "gold (PPO)": r["vs_sft"]["gold_policy"]["all"]["overall"],
            "reward std across prompts": r["train_metrics"].get("reward/used_std"),
            "KL at end": r["train_metrics"].get("objective/kl"),
            "identity probe": probes.get("identity"), "format probe": probes.get("format"),
            "answer length": r["train_metrics"].get("rollout/response_length"),
        }
    return rows


def markdown_table(rows: dict[str, dict]) -> str:
    def cell(v):
        if v is None:
            return "-"
        if isinstance(v, list):
            return f"[{v[0]:+.1f}, {v[1]:+.1f}]"
        return f"{v:+.1f}" if abs(v) >= 10 else f"{v:.3f}"

    lines = ["| variant | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(cell(row[c]) for c in COLUMNS) + " |" for name, row in rows.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    root = argv[0] if argv else "artifacts"
    rows = ablation_rows(root)
    if not rows:
        print(f"no ablation results under {root}/ppo/ablation/*/results.json", file=sys.stderr)
        return 1
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
