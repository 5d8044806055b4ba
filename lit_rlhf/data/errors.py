"""User errors and skip accounting for user data: every problem names its file, line and field.

``UserError`` marks a mistake in what the user gave (data, config values, paths): the
command-line entry points end those with one line. Any other exception is a bug and keeps
its traceback.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


class UserError(ValueError):
    """A mistake in the user's input (data, a config value, a path), reported in one line by the CLI."""


class ConfigError(UserError):
    """A config value that cannot be used, e.g. ``max_rows must be a positive integer or null, got -3``."""


class UnknownName(ConfigError, KeyError):
    """A config value that names nothing known (a stage, ...); also a ``KeyError`` for callers that look names up."""

    __str__ = Exception.__str__  # the message as given, not KeyError's quoted repr


class DataError(UserError):
    """Bad input data, with where it is: ``file:line: field: what is wrong``."""

    def __init__(self, message: str, source: str | None = None, line: int | None = None, field: str | None = None):
        self.source, self.line, self.field = source, line, field
        where = ":".join(str(x) for x in (source, line) if x is not None)
        prefix = f"{where}: " if where else ""
        field_part = f"field {field!r}: " if field else ""
        super().__init__(f"{prefix}{field_part}{message}")


class ReportedRows(list):
    """A list of rows that also carries the ``SkipReport`` of the reader that made it."""

    def __init__(self, rows=(), report: SkipReport | None = None):
        super().__init__(rows)
        self.report = report if report is not None else SkipReport()


@dataclass
class SkipReport:
    """Counts of rows skipped by reason, with the first few locations of each, for the run's report."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    kept: int = 0
    selection: str = ""  # how the kept rows were cut down (max_rows, sample), empty when all were kept

    def skip(self, reason: str, where: str) -> None:
        self.counts[reason] += 1
        self.examples.setdefault(reason, [])
        if len(self.examples[reason]) < 3:
            self.examples[reason].append(where)

    @property
    def skipped(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        selection = f" ({self.selection})" if self.selection else ""
        if not self.counts:
            return f"kept {self.kept} rows{selection}, skipped none"
        parts = [f"{n} {reason} (e.g. {', '.join(self.examples[reason])})" for reason, n in self.counts.most_common()]
        return f"kept {self.kept} rows{selection}, skipped {self.skipped}: " + "; ".join(parts)

    def as_dict(self) -> dict:
        """``{kept, skipped, by_reason, examples, selection}`` for a run's results.json."""
        return {
            "kept": self.kept,
            "skipped": self.skipped,
            "by_reason": dict(self.counts.most_common()),
            "examples": {reason: list(where) for reason, where in self.examples.items()},
            "selection": self.selection,
        }
