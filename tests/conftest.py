"""Shared fixtures: tiny data built here, and the real datasets of ../shared/data when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from slimrec.data.synthetic import make_synthetic

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SLIMREC_SHARED_DATA", REPO.parent / "shared" / "data"))

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real datasets; tests using it skip with a reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (set SLIMREC_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_data():
    """A small synthetic dataset: 300 users, 200 items, planted communities."""
    return make_synthetic(num_users=300, num_items=200, num_communities=6, mean_degree=15, seed=3)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's real download cache from a test."""
    monkeypatch.setenv("SLIMREC_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
