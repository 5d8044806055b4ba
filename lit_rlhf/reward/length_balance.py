"""Bucket-based length balancing of preference pairs (ChatGLM-RLHF).

Annotators tend to prefer the longer of two answers, so a reward model trained on raw
comparisons learns "longer is better". Here pairs are grouped into buckets by the length
difference of their two responses, and within each bucket the pairs where the longer
response won are balanced against the pairs where it lost. Inside a balanced bucket,
length no longer predicts the label, so the model has to look at content.

Choices (all configurable):

- Length unit: tokens of the reward model's tokenizer by default; words when no tokenizer
  is given. The difference is ``|len(chosen) - len(rejected)|``.
- ``edges`` are the lower bounds of the buckets: ``[1, 5, 10]`` gives buckets ``1-4``,
  ``5-9`` and ``10+``. Pairs of equal length (difference 0, or below the first edge)
  carry no length signal and are kept untouched, in bucket ``equal``.
- ``mode="downsample"`` (default) keeps, in each bucket, a seeded random subset of the
  larger side of the size of the smaller side. A bucket where one side is empty loses all
  its pairs: they would only teach length. ``mode="upsample"`` instead repeats pairs of the
  smaller side (seeded, with replacement) up to the size of the larger one; a bucket with
  an empty side is then kept as it is, because there is nothing to repeat.
- Down-sampling a skewed file can leave few pairs (a file where the longer answer nearly
  always wins loses most of them). :class:`LengthBalancer` warns when it drops more than
  ``warn_drop_share`` of the pairs, and the report carries the kept and dropped counts.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field

from lit_rlhf.data.errors import ConfigError

MODES = ("downsample", "upsample")
UNITS = ("tokens", "words")


def response_length(text: str, tokenizer=None) -> int:
    """Length of a response in tokens of ``tokenizer`` (no special tokens), or in words without one."""
    if tokenizer is None:
        return len(text.split())
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def bucket_index(length_diff: int, edges: list[int]) -> int:
    """0 for the ``equal`` bucket (below the first edge), else 1 + the index of the last edge <= ``length_diff``."""
    index = 0
    for i, edge in enumerate(edges):
        if abs(length_diff) >= edge:
            index = i + 1
    return index


def bucket_names(edges: list[int]) -> list[str]:
    """Names matching :func:`bucket_index`: ``["equal", "1-4", "5-9", "10+"]`` for edges ``[1, 5, 10]``."""
    names = ["equal"]
    for i, lo in enumerate(edges):
        names.append(f"{lo}-{edges[i + 1] - 1}" if i + 1 < len(edges) else f"{lo}+")
    return names


def check_edges(edges: list[int]) -> list[int]:
    edges = [int(e) for e in edges]
    if not edges or edges[0] < 1 or any(b <= a for a, b in itertools.pairwise(edges)):
        raise ConfigError(f"bucket edges must be increasing integers starting at >= 1, got {edges}")
    return edges


@dataclass
class BalanceReport:
    """Pair counts per bucket before and after balancing: ``{bucket: {"longer_wins", "longer_loses", "equal"}}``."""

    unit: str
    mode: str
    before: dict[str, dict[str, int]] = field(default_factory=dict)
    after: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def pairs_before(self) -> int:
        return sum(sum(c.values()) for c in self.before.values())

    @property
    def pairs_after(self) -> int:
        return sum(sum(c.values()) for c in self.after.values())

    @property
    def dropped(self) -> int:
        """Pairs left out (up-sampling drops none: it only adds repeats)."""
        return max(0, self.pairs_before - self.pairs_after)

    @property
    def dropped_share(self) -> float:
        return self.dropped / self.pairs_before if self.pairs_before else 0.0

    def as_dict(self) -> dict:
        return {
            "unit": self.unit,
            "mode": self.mode,
            "before": self.before,
            "after": self.after,
            "pairs_before": self.pairs_before,
            "pairs_after": self.pairs_after,
            "dropped": self.dropped,
            "dropped_share": round(self.dropped_share, 4),
        }

    def format(self) -> str:
        lines = [
            f"length balancing ({self.mode}, unit={self.unit}): longer-wins / longer-loses per bucket",
            f"{'bucket':<10}{'before':>14}{'after':>14}",
        ]
        for name, counts in self.before.items():
            after = self.after.get(name, {})
            if name == "equal":
                lines.append(f"{name:<10}{counts['equal']:>14}{after.get('equal', 0):>14}")
                continue
            b = f"{counts['longer_wins']}/{counts['longer_loses']}"
            a = f"{after.get('longer_wins', 0)}/{after.get('longer_loses', 0)}"
            lines.append(f"{name:<10}{b:>14}{a:>14}")
        lines.append(f"{'total':<10}{self.pairs_before:>14}{self.pairs_after:>14}")
        return "\n".join(lines)


def _counts(groups: dict[str, dict[str, list]]) -> dict[str, dict[str, int]]:
    return {name: {side: len(rows) for side, rows in sides.items()} for name, sides in groups.items()}


def balance_by_length(
    rows: list[dict], edges: list[int] = (1, 5, 10, 20, 40), tokenizer=None, mode: str = "downsample", seed: int = 0
) -> tuple[list[dict], BalanceReport]:
    """Balance longer-wins against longer-loses pairs within each length-difference bucket.

    ``rows`` are preference rows with ``chosen`` and ``rejected``. Returns the kept rows (in
    their original order for down-sampling; repeats appended per bucket for up-sampling)
    and a :class:`BalanceReport`.
    """
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
    edges = check_edges(list(edges))
    names = bucket_names(edges)
    groups = {name: {"longer_wins": [], "longer_loses": [], "equal": []} for name in names}
    for index, row in enumerate(rows):
        diff = response_length(row["chosen"], tokenizer) - response_length(row["rejected"], tokenizer)
        side = "equal" if diff == 0 else ("longer_wins" if diff > 0 else "longer_loses")
        groups[names[bucket_index(diff, edges)]][side].append(index)
    report = BalanceReport("tokens" if tokenizer is not None else "words", mode, before=_counts(groups))
    rng = random.Random(f"{seed}:length-balance")
    keep: list[int] = []
    extra: list[int] = []
    for name in names:
        sides = groups[name]
        keep += sides["equal"]
        wins, loses = sides["longer_wins"], sides["longer_loses"]
        small, large = sorted((wins, loses), key=len)
        if mode == "downsample":
            chosen_large = rng.sample(large, len(small))
            sides_after = small + chosen_large
            keep += sides_after
        else:
            repeats = [rng.choice(small) for _ in range(len(large) - len(small))] if small else []
            keep += wins + loses
            extra += repeats
            sides_after = small + large + repeats
        win_set = set(wins)
        groups[name] = {
            "longer_wins": [i for i in sides_after if i in win_set],
            "longer_loses": [i for i in sides_after if i not in win_set],
            "equal": sides["equal"],
        }
    report.after = _counts(groups)
    return [rows[i] for i in sorted(keep)] + [rows[i] for i in extra], report


def heavy_drop_warning(report: BalanceReport, warn_drop_share: float | None) -> str | None:
    """The warning to give when balancing dropped more than ``warn_drop_share`` of the pairs, else ``None``."""
    if warn_drop_share is None or report.dropped_share <= warn_drop_share:
        return None
    return (
        f"length balancing dropped {report.dropped} of {report.pairs_before} training pairs "
        f"({report.dropped_share:.0%}), more than warn_drop_share={warn_drop_share:g}: in this data the longer "
        "response mostly wins (or mostly loses), and a reward model trained on the "
        f"{report.pairs_after} pairs left may stay at chance. Turn balancing off with `data.length_balance=null` "
        "(length_balance=None in code), or keep every pair with `data.length_balance.mode=upsample`"
    )


class LengthBalancer:
    """Configured :func:`balance_by_length`, built by Hydra; ``unit="words"`` ignores any tokenizer.

    Warns (``UserWarning``, rank zero) when it drops more than ``warn_drop_share`` of the pairs
    (``None``: never).
    """

    def __init__(
        self,
        edges: list[int] = (1, 5, 10, 20, 40),
        unit: str = "tokens",
        mode: str = "downsample",
        seed: int = 0,
        warn_drop_share: float | None = 0.5,
    ):
        if unit not in UNITS:
            raise ConfigError(f"unit must be one of {UNITS}, got {unit!r}")
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
        share_ok = (
            isinstance(warn_drop_share, (int, float))
            and not isinstance(warn_drop_share, bool)
            and 0 <= warn_drop_share < 1
        )
        if warn_drop_share is not None and not share_ok:
            raise ConfigError(f"warn_drop_share must be in [0, 1) or null, got {warn_drop_share!r}")
        self.edges, self.unit, self.mode, self.seed = check_edges(list(edges)), unit, mode, seed
        self.warn_drop_share = warn_drop_share

    def __call__(self, rows: list[dict], tokenizer=None) -> tuple[list[dict], BalanceReport]:
        from lightning.pytorch.utilities import rank_zero_warn

        tok = tokenizer if self.unit == "tokens" else None
        kept, report = balance_by_length(rows, self.edges, tok, self.mode, self.seed)
        warning = heavy_drop_warning(report, self.warn_drop_share)
        if warning:
            rank_zero_warn(warning)
        return kept, report
