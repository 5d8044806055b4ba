"""Reading preference rows: prompt/chosen/rejected JSONL files and HH-RLHF transcripts, counted and sampled.

Rows are ``{prompt, chosen, rejected, category?, margin?, ...}``: the schema the collection stage
writes and the reward model and DPO read.
"""

from __future__ import annotations

import os
import random

from lit_rlhf.data.errors import ConfigError, DataError, ReportedRows, SkipReport
from lit_rlhf.data.hh_rlhf import read_hh_rlhf
from lit_rlhf.data.jsonl import check_row_count, optional_category, read_jsonl, read_rows, require_text

PreferenceRows = ReportedRows  # preference rows with their reader's SkipReport


def read_preference_jsonl(
    path: str | os.PathLike, on_error: str = "raise", report: SkipReport | None = None, max_rows: int | None = None
) -> list[dict]:
    """Rows from a preference JSONL file. Bad rows raise ``DataError`` (file:line, field), or with
    ``on_error="skip"`` are counted in ``report``: missing/empty/non-string fields, identical responses.
    ``max_rows`` stops after that many usable rows."""
    report = report if report is not None else SkipReport()

    def parse(raw: dict, source: str, line: int) -> dict:
        row = {key: require_text(raw, key, source, line) for key in ("prompt", "chosen", "rejected")}
        if row["chosen"].strip() == row["rejected"].strip():
            raise DataError("chosen and rejected are identical", source, line, "rejected")
        margin = raw.get("margin", 0.0)
        if isinstance(margin, bool) or not isinstance(margin, (int, float)):
            raise DataError(f"expected a number, got {type(margin).__name__}", source, line, "margin")
        return {**raw, **row, "category": optional_category(raw, source, line), "margin": float(margin)}

    def reason(err: DataError) -> str:
        return "identical responses" if "identical" in str(err) else f"bad field {err.field!r}"

    return PreferenceRows(read_rows(path, parse, on_error, report, reason, max_rows), report)


def read_preferences(
    path: str | os.PathLike,
    format: str = "auto",
    on_error: str = "auto",
    report: SkipReport | None = None,
    max_rows: int | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> list[dict]:
    """Preference rows from ``format="jsonl"`` (prompt/chosen/rejected) or ``"hh"`` (HH-RLHF transcripts).

    ``format="auto"`` picks HH when the first row has no ``prompt`` field. ``on_error="auto"`` skips
    bad rows of HH files (the public HH-RLHF files hold a few rows with an empty final reply or a
    transcript that does not parse; they are counted by reason with file:line in ``report``) and
    raises on the first bad row of a JSONL file (a bad row in one's own data is a bug to fix).
    ``max_rows`` reads only the first N usable rows; ``sample`` then keeps N of them drawn at random
    (``seed``), in file order. Asking for a sample larger than the file is an error.
    """
    if format not in ("auto", "jsonl", "hh"):
        raise ConfigError(f"format must be 'auto', 'jsonl' or 'hh', got {format!r}")
    if on_error not in ("auto", "raise", "skip"):
        raise ConfigError(f"on_error must be 'auto', 'raise' or 'skip', got {on_error!r}")
    max_rows, sample = check_row_count("max_rows", max_rows), check_row_count("sample", sample)
    if format == "auto":
        first = next(read_jsonl(path, on_undecodable=lambda err: None), (0, {}))[1]  # the reader counts it
        format = "jsonl" if "prompt" in first else "hh"
    if on_error == "auto":
        on_error = "skip" if format == "hh" else "raise"
    reader = read_hh_rlhf if format == "hh" else read_preference_jsonl
    rows = reader(path, on_error=on_error, report=report, max_rows=max_rows)
    return sample_rows(rows, sample, seed, str(path)) if sample is not None else rows


def sample_rows(rows: PreferenceRows, sample: int, seed: int, source: str) -> PreferenceRows:
    """``sample`` of ``rows`` drawn without replacement (seeded), in their original order; the report notes it."""
    if sample > len(rows):
        raise ConfigError(f"sample={sample} but {source} has only {len(rows)} usable rows")
    picked = sorted(random.Random(f"{seed}:sample-rows").sample(range(len(rows)), sample))
    report = rows.report
    report.selection = "; ".join(
        filter(None, [report.selection, f"{sample} sampled of {len(rows)} usable rows, seed {seed}"])
    )
    report.kept -= len(rows) - sample
    return PreferenceRows([rows[i] for i in picked], report)
