"""Shared fixtures: small thread counts (CI has two cores) and composed configs shrunk for CPU."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the test suite may reach a model hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True, scope="session")
def _few_threads():
    torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def compose_config(tmp_path):
    """Compose the real ``train`` config with overrides, artifacts under ``tmp_path``."""
    from hydra import compose, initialize_config_module

    def _compose(*overrides: str):
        with initialize_config_module("lit_rlhf.conf", version_base="1.3"):
            return compose("train", overrides=[f"paths.artifacts={tmp_path}", *overrides])

    return _compose
