"""Reading and writing JSONL with errors that point at the file and line."""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from lit_rlhf.data.errors import ConfigError, DataError


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def read_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, row)`` for each non-blank line; a line that is not a JSON object raises ``DataError``."""
    path = Path(path)
    if not path.exists():
        raise DataError("file not found", source=str(path))
    with _open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"not valid JSON ({err.msg} at column {err.colno})", str(path), number) from None
            if not isinstance(row, dict):
                raise DataError(f"expected a JSON object, got {type(row).__name__}", str(path), number)
            yield number, row


def check_row_count(name: str, value) -> int | None:
    """``value`` of a row-count option (``max_rows``, ``sample``): ``None`` or a positive integer, else
    ``ConfigError``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer or null, got {value!r}")
    return value


def read_rows(path: str | os.PathLike, parse: Callable[[dict, str, int], dict], on_error: str = "raise",
              report=None, reason: Callable[[DataError], str] | None = None, max_rows: int | None = None
              ) -> list[dict]:
    """``parse(raw, source, line)`` on every row of a JSONL file.

    ``parse`` raises ``DataError`` for a bad row: it propagates (``on_error="raise"``), or the row
    is counted in ``report`` (a ``SkipReport``) under ``reason(err)`` (default: the bad field) and
    left out. Malformed JSON always raises: a broken file is not a bad row. A file with no usable
    row raises too, so an all-bad file is never an empty data set. ``max_rows`` stops reading
    after that many usable rows (the rest of the file is not read, so its bad rows are not counted).
    """
    from lit_rlhf.data.errors import SkipReport

    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    max_rows = check_row_count("max_rows", max_rows)
    report = report if report is not None else SkipReport()
    source, rows = str(path), []
    for line, raw in read_jsonl(path):
        if max_rows is not None and len(rows) == max_rows:
            report.selection = f"max_rows={max_rows}: the rest of the file was not read"
            break
        try:
            rows.append(parse(raw, source, line))
        except DataError as err:
            if on_error == "raise":
                raise
            report.skip(reason(err) if reason else f"bad field {err.field!r}", f"{source}:{line}")
    report.kept += len(rows)
    if not rows:
        raise DataError("no usable rows", source=source)
    return rows


def require_text(row: dict, key: str, source: str, line: int, allow_empty: bool = False) -> str:
    """``row[key]`` as a string; missing, non-string or (unless allowed) empty values raise ``DataError``."""
    if key not in row:
        raise DataError(f"missing (row has {sorted(row)})", source, line, key)
    value = row[key]
    if not isinstance(value, str):
        raise DataError(f"expected a string, got {type(value).__name__}", source, line, key)
    if not allow_empty and not value.strip():
        raise DataError("is empty", source, line, key)
    return value


def prompt_row(row: dict, source: str, line: int, prompt_key: str = "prompt") -> dict:
    """``{prompt, category}`` from a prompt-file row; ``category`` is optional ("all") but must be a non-empty string."""
    category = row.get("category", "all")
    if not isinstance(category, str) or not category:
        raise DataError("expected a non-empty string", source, line, "category")
    return {"prompt": require_text(row, prompt_key, source, line), "category": category}


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> Path:
    """Write rows atomically, so readers never see half a file."""
    def write(handle):
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")

    return atomic_write(path, write, mode="w")


def atomic_write(path: str | os.PathLike, write: Callable, mode: str = "wb") -> Path:
    """Call ``write(handle)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``.

    A process killed mid-write leaves the previous file intact and no partial one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if "b" not in mode else {})) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
