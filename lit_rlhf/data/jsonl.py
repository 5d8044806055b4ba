"""Reading and writing JSONL with errors that point at the file and line."""

from __future__ import annotations

import gzip
import json
import os
import re
import secrets
import shutil
import socket
import stat
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from lit_rlhf.data.errors import ConfigError, DataError

# What a damaged .gz raises while it is read: a cut-off stream (EOFError), a bad header or CRC (BadGzipFile, an
# OSError) or corrupt deflate data (zlib.error).
GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)


def _numbered_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """``(line_number, raw bytes)`` of a JSONL or JSONL.gz file; a damaged .gz raises ``DataError`` naming the
    last line read in full. Lines are read as bytes so that a bad byte is reported with its line."""
    opener = gzip.open if path.suffix == ".gz" else open
    number = 0
    with opener(path, "rb") as handle:
        while True:
            try:
                raw = handle.readline()
            except GZIP_ERRORS as err:
                where = f"after line {number}" if number else "before the first line"
                raise DataError(f"gzip data is truncated or corrupt {where} ({err})", str(path)) from None
            if not raw:
                return
            number += 1
            yield number, raw


def decode_utf8(raw: bytes, source: str, line: int = 1) -> str:
    """``raw`` (text starting on line ``line`` of ``source``) as UTF-8; a bad byte raises ``DataError`` naming
    its line, its value and its 1-based byte column."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line_start = raw.rfind(b"\n", 0, err.start) + 1
        raise DataError(
            f"not valid UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start - line_start + 1}); "
            "save the file as UTF-8",
            source,
            line + raw.count(b"\n", 0, err.start),
        ) from None


def read_jsonl(
    path: str | os.PathLike, on_undecodable: Callable[[DataError], None] | None = None
) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, row)`` for each non-blank line of a ``.jsonl`` or ``.jsonl.gz`` file.

    A line that is not a JSON object, and a damaged .gz, raise ``DataError`` naming file and line. A line
    that is not UTF-8 raises too, or, when ``on_undecodable`` is given, is handed to it as a ``DataError``
    and left out (a reader that skips bad rows counts it).
    """
    path = Path(path)
    if not path.exists():
        raise DataError("file not found", source=str(path))
    for number, raw in _numbered_lines(path):
        try:
            line = decode_utf8(raw, str(path), number)
        except DataError as err:
            if on_undecodable is None:
                raise
            on_undecodable(err)
            continue
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


def read_rows(
    path: str | os.PathLike,
    parse: Callable[[dict, str, int], dict],
    on_error: str = "raise",
    report=None,
    reason: Callable[[DataError], str] | None = None,
    max_rows: int | None = None,
) -> list[dict]:
    """``parse(raw, source, line)`` on every row of a JSONL file.

    ``parse`` raises ``DataError`` for a bad row: it propagates (``on_error="raise"``), or the row
    is counted in ``report`` (a ``SkipReport``) under ``reason(err)`` (default: the bad field) and
    left out; a line that is not UTF-8 is raised or counted the same way. Malformed JSON and a
    damaged .gz always raise: a broken file is not a bad row. A file with no usable row raises
    too, so an all-bad file is never an empty data set. ``max_rows`` stops reading
    after that many usable rows (the rest of the file is not read, so its bad rows are not counted).
    """
    from lit_rlhf.data.errors import SkipReport

    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    max_rows = check_row_count("max_rows", max_rows)
    report = report if report is not None else SkipReport()
    source, rows = str(path), []

    def count_undecodable(err: DataError) -> None:
        report.skip("not valid UTF-8", f"{err.source}:{err.line}")

    for line, raw in read_jsonl(path, count_undecodable if on_error == "skip" else None):
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


def optional_category(row: dict, source: str, line: int | None, default: str = "all", key: str = "category") -> str:
    """``row[key]``, the rule of every reader: absent or null means ``default``; any other value must be a
    non-empty string (a number is refused, not turned into one), else ``DataError`` naming file:line:field."""
    category = row.get(key)
    if category is None:
        return default
    if not isinstance(category, str):
        raise DataError(f"expected a non-empty string, got {type(category).__name__} {category!r}", source, line, key)
    if not category.strip():
        raise DataError("expected a non-empty string, got an empty one", source, line, key)
    return category


def prompt_row(row: dict, source: str, line: int, prompt_key: str = "prompt") -> dict:
    """``{prompt, category}`` from a prompt-file row; ``category`` follows :func:`optional_category` (default "all")."""
    category = optional_category(row, source, line)
    return {"prompt": require_text(row, prompt_key, source, line), "category": category}


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> Path:
    """Write rows atomically, so readers never see half a file."""

    def write(handle):
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")

    return atomic_write(path, write, mode="w")


def atomic_write(path: str | os.PathLike, write: Callable, mode: str = "wb") -> Path:
    """Call ``write(handle)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``.

    A process killed mid-write leaves the previous file intact and no partial one; its temporary file is
    removed by the next write of ``path`` (:func:`remove_stale_temps`). The file gets the mode a plain
    ``open(path, "w")`` gives: an existing file's mode, else 0666 less the umask.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp, fd = make_temp_beside(path)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if "b" not in mode else {})) as handle:
            if path.is_file():  # replacing a file keeps its mode, as writing it in place would
                os.chmod(handle.fileno(), stat.S_IMODE(path.stat().st_mode))
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# Temporary names beside a target ``name``: ``.{name}.{host}.{pid}.{8 hex}.tmp``. The host and the writer's pid
# tell a temporary left by a killed save (its process is gone) from one a running save still writes.
TEMP_SUFFIX = ".tmp"


def _temp_prefix(path: Path) -> str:
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"
    return f".{path.name}.{host}."


def make_temp_beside(path: Path, directory: bool = False) -> tuple[Path, int | None]:
    """A new temporary file (``(path, open fd)``) or directory (``(path, None)``) beside ``path``.

    Created with mode 0666 (files) or 0777 (directories) so that the umask applies as for any new file
    (``tempfile`` would make them private).
    """
    prefix = f"{_temp_prefix(path)}{os.getpid()}."
    for _ in range(100):
        tmp = path.with_name(f"{prefix}{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            if directory:
                os.mkdir(tmp, 0o777)
                return tmp, None
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files and directories that killed saves of ``path`` left beside it.

    Only names of this module's pattern from this host whose writing process is gone are removed, so
    a save of the same path still running in another process keeps its temporary. Returns what was removed.
    """
    path = Path(path)
    if os.name != "posix" or not path.parent.is_dir():  # the liveness test below is POSIX's
        return []
    pattern = re.compile(re.escape(_temp_prefix(path)) + r"(\d+)\.[0-9a-f]{8}" + re.escape(TEMP_SUFFIX) + "$")
    removed = []
    for entry in path.parent.iterdir():
        match = pattern.match(entry.name)
        if match is None or _process_running(int(match.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _process_running(pid: int) -> bool:
    if pid == os.getpid():  # another thread of this process may be saving
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True
