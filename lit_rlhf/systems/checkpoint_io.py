"""Checkpoint writes that are atomic: a run killed while saving leaves the previous checkpoint intact."""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from lit_rlhf.data.jsonl import atomic_write, make_temp_beside, remove_stale_temps


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes to a temporary file in the same folder, fsyncs it, then renames it over the target."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        atomic_write(path, lambda handle: torch.save(checkpoint, handle))


def atomic_directory(path: str | os.PathLike, fill: Callable[[Path], None]) -> Path:
    """Call ``fill(tmp)`` on a new directory beside ``path``, then swap it in for ``path``.

    On Linux the swap is one ``renameat2(RENAME_EXCHANGE)``: at every instant ``path`` is either the old
    complete directory or the new complete one. Where that call is missing, two renames leave a moment
    without ``path`` (never a half-written one). The new directory has the mode a plain ``mkdir`` gives;
    what a killed save left beside ``path`` is removed by the next save.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp, _ = make_temp_beside(path, directory=True)
    try:
        fill(tmp)
        if not path.exists():
            os.rename(tmp, path)
        elif exchange_paths(tmp, path):
            shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old directory
        else:
            old, _ = make_temp_beside(path, directory=True)
            os.rename(path, old)  # replaces the empty ``old`` directory
            os.rename(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def exchange_paths(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Swap two existing paths atomically (Linux ``renameat2`` with ``RENAME_EXCHANGE``); False where the
    platform or file system cannot, so the caller falls back to plain renames."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)  # the C library this Python runs on
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:  # glibc older than 2.28
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # this file system or kernel cannot exchange
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))
