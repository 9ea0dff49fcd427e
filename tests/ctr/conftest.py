"""Tiny CTR data built here: a planted click model over a few categorical fields."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from slimrec.data.fields import FieldData, FieldSchema, encode_batches, frame_batches
from slimrec.data.synthetic import planted_clicks

TINY_SCHEMA = FieldSchema("label", ("user", "item", "city"), multi_hot=(("tags", "|"),),
                          user_field="user", item_field="item")


@pytest.fixture(scope="session")
def planted_frame() -> Callable[..., pl.DataFrame]:
    """The generator of planted rows: ``planted_frame(num_rows=3000, seed=0)``."""
    return planted_clicks


@pytest.fixture(scope="session")
def tiny_schema() -> FieldSchema:
    return TINY_SCHEMA


@pytest.fixture(scope="session")
def tiny_fields() -> FieldData:
    """3,000 planted rows encoded with ``TINY_SCHEMA`` (user, item, city, multi-hot tags)."""
    return encode_batches("tiny", "tiny.csv", frame_batches(planted_clicks()), TINY_SCHEMA,
                          seed=0)


@pytest.fixture
def criteo_like_dir(tmp_path: Path) -> Path:
    """A data folder whose ``criteo-sample`` dataset is a 1,200-row planted Criteo file."""
    _write_criteo_like(tmp_path)
    return tmp_path


def _write_criteo_like(folder: Path, num_rows: int = 1200, seed: int = 0) -> Path:
    """A Criteo-format file (header ``label,I1..I13,C1..C26``) whose clicks depend on C1,
    at ``folder/ctr_samples/criteo_sample.txt`` so ``--dataset criteo-sample`` reads it."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 30, num_rows), rng.integers(0, 30, num_rows)
    labels = (rng.random(num_rows) < np.where(a < 10, 0.8, 0.1)).astype(int)
    header = ["label", *(f"I{k}" for k in range(1, 14)), *(f"C{k}" for k in range(1, 27))]
    lines = [",".join(header)]
    for row in range(num_rows):
        numeric = [str(rng.integers(0, 50)) if rng.random() < 0.8 else "" for _ in range(13)]
        categorical = [f"a{a[row]}", f"b{b[row]}",
                       *(f"c{rng.integers(0, 4)}" for _ in range(24))]
        lines.append(",".join([str(labels[row]), *numeric, *categorical]))
    path = folder / "ctr_samples" / "criteo_sample.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path
