"""``malloc_mmap_threshold``: freed host memory goes back to the OS, and bad values are refused by key."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest
from omegaconf import OmegaConf

from lit_rlhf.data.errors import ConfigError
from lit_rlhf.run import compose
from lit_rlhf.stages import common
from lit_rlhf.systems.host_memory import set_mmap_threshold

# A fresh process: a 16 MiB block freed (glibc's threshold rises past what follows), then 256 blocks of 512 KiB
# with their pages touched, every other one freed; prints how much resident memory that left (MiB).
HALF_FREED = textwrap.dedent(
    """
    import sys, psutil, torch
    from lit_rlhf.systems.host_memory import set_mmap_threshold
    threshold = None if sys.argv[1] == "none" else int(sys.argv[1])
    set_mmap_threshold(threshold)
    rss = lambda: psutil.Process().memory_info().rss / 2**20
    big = torch.ones(4 * 2**20); del big
    before = rss()
    blocks = [torch.ones(2**17) for _ in range(256)]
    for i in range(0, 256, 2):
        blocks[i] = None
    print(rss() - before)
    """
)


def _left_resident(threshold: str) -> float:
    done = subprocess.run([sys.executable, "-c", HALF_FREED, threshold], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt's threshold is glibc's")
def test_a_fixed_threshold_returns_freed_blocks():
    kept, returned = _left_resident("none"), _left_resident("65536")
    # 128 MiB were allocated and 64 MiB freed: glibc's own threshold keeps the freed half resident.
    assert kept > 110, kept
    assert 50 < returned < 80, returned


@pytest.mark.parametrize("value", [-1, 1.5, "64k", True, 2**30])
def test_bad_values_are_refused_by_key(value):
    with pytest.raises(ConfigError, match="malloc_mmap_threshold"):
        set_mmap_threshold(value)


def test_null_leaves_the_allocator_alone():
    assert set_mmap_threshold(None) is False


def test_the_override_reaches_the_allocator(monkeypatch):
    """What a stage does first: ``malloc_mmap_threshold=65536`` on the command line reaches mallopt."""
    seen = []
    monkeypatch.setattr(common, "set_mmap_threshold", seen.append)
    cfg = compose(["experiment=gym_ppo", "malloc_mmap_threshold=65536"])
    common.seed_and_threads(cfg)
    assert seen == [65536]
    common.seed_and_threads(OmegaConf.merge(cfg, {"malloc_mmap_threshold": None}))
    assert seen == [65536, None]
