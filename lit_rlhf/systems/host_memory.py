"""How the C allocator hands host memory back: glibc's mmap threshold (``malloc_mmap_threshold``).

glibc serves an allocation above its mmap threshold with a mapping of its own, returned to the OS on free,
and one below it from the heap, which keeps freed pieces for reuse. The threshold starts at 128 KiB and rises
to the size of any mapped block freed, up to 32 MiB, so after a model is built a training step's activations
come from the heap, and the freed ones stay resident: a CPU run's resident set grows by its largest working
set and keeps it. A fixed threshold (``mallopt(M_MMAP_THRESHOLD, n)``, which also stops the rise) maps every
allocation above ``n`` bytes on its own, so freeing returns it, at the cost of fresh zeroed pages for each.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

from lit_rlhf.data.errors import ConfigError

M_MMAP_THRESHOLD = -3  # <malloc.h>
MAX_THRESHOLD = 32 * 1024 * 1024  # glibc refuses a larger one on 64-bit systems (HEAP_MAX_SIZE / 2)


def check_mmap_threshold(threshold) -> None:
    """A ``ConfigError`` naming the key unless ``threshold`` is ``None`` or a whole number of bytes glibc takes."""
    if threshold is None:
        return
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not 0 <= threshold <= MAX_THRESHOLD:
        raise ConfigError(
            f"malloc_mmap_threshold must be a whole number of bytes in [0, {MAX_THRESHOLD}], got {threshold!r}"
        )


def set_mmap_threshold(threshold: int | None) -> bool:
    """Fixes glibc's mmap threshold at ``threshold`` bytes; ``None`` leaves the allocator alone. Returns whether
    the setting took (False off glibc, e.g. macOS or musl, where there is nothing to set)."""
    check_mmap_threshold(threshold)
    if threshold is None:
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))
