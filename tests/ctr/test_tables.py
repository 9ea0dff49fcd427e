"""One global budget split over the field tables; shared (Unified Embedding) tables."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from slimrec.data.fields import FieldData, FieldSchema, encode_batches, frame_batches
from slimrec.embeddings import EmbeddingSpec
from slimrec.embeddings.allocate import split_budget
from slimrec.errors import BudgetError, ConfigError
from slimrec.models.ctr import CTRBatch, FieldTensors, build_field_embeddings
from slimrec.models.ctr.tables import SHARED_TABLE, field_stats


@pytest.fixture(scope="module")
def wide_fields(tiny_schema: FieldSchema) -> FieldData:
    """Fields of 400, 600, 6 and a few multi-hot values: room for 10% budgets."""
    rng = np.random.default_rng(0)
    rows = 4000
    frame = pl.DataFrame({
        "label": rng.integers(0, 2, rows).astype(str),
        "user": rng.integers(0, 400, rows).astype(str),
        "item": rng.integers(0, 600, rows).astype(str),
        "city": rng.integers(0, 5, rows).astype(str),
        "tags": [f"t{k % 4}|t{k % 9}" for k in rng.integers(0, 100, rows)]})
    return encode_batches("wide", "wide.csv", frame_batches(frame), tiny_schema)


sizes = st.dictionaries(st.sampled_from("abcdefgh"), st.integers(64, 100_000), min_size=1)


@settings(max_examples=300, deadline=None)
@given(sizes, st.floats(0.01, 1.2), st.integers(1, 5_000))
def test_split_respects_the_budget(full: dict[str, int], fraction: float, smallest: int) -> None:
    """``fits`` models a method whose smallest table takes ``smallest`` bytes."""
    budget = int(fraction * sum(full.values()))
    try:
        plan = split_budget(budget, full, lambda name, share: share >= smallest)
    except BudgetError as error:
        assert "too small" in str(error)
        assert sum(min(b, 2 * smallest) for b in full.values()) > budget
        return
    assert set(plan) == set(full)
    assert sum(full[n] if share is None else share for n, share in plan.items()) <= budget
    for name, share in plan.items():
        if share is not None:
            assert smallest <= share < full[name]
    if budget >= sum(full.values()):
        assert all(share is None for share in plan.values())


def test_proportional_when_every_field_fits() -> None:
    full = {"a": 1000, "b": 3000, "c": 6000}
    assert split_budget(1000, full, lambda name, share: True) == {"a": 100, "b": 300, "c": 600}


def test_small_fields_are_kept_full_when_that_is_cheaper() -> None:
    full = {"user": 60_000, "item": 250_000, "daytime": 448, "city": 15_000}
    plan = split_budget(32_544, full, lambda name, share: share >= 1_000)
    assert plan["daytime"] is None  # its smallest compressed table (1,000 B) costs more
    assert 1_000 <= plan["city"] < 2_000  # the first doubling of its 1,500 B... share fits
    assert plan["user"] + plan["item"] + plan["city"] + 448 <= 32_544


def test_impossible_budget_raises() -> None:
    with pytest.raises(BudgetError, match=r"too small for method 'qr'.*Raise the budget"):
        split_budget(100, {"a": 1000, "b": 2000}, lambda name, share: False, "qr")


@pytest.mark.parametrize(("method", "budget"), [
    ("hash", 0.25), ("hash", 0.1), ("lowrank", 0.25), ("lowrank", 0.1), ("quantized", 0.25),
    ("quantized", 0.1), ("qr", 0.5)])
def test_built_tables_fit_the_global_budget(wide_fields: FieldData, method: str,
                                            budget: float) -> None:
    embeddings = build_field_embeddings(wide_fields, EmbeddingSpec(method, budget=budget), 16)
    assert embeddings.memory_bytes() <= int(budget * embeddings.full_fp32_bytes())
    methods = {row["field"]: row["method"] for row in embeddings.describe()}
    assert methods["item"] == method  # the largest field is compressed
    batch = FieldTensors(wide_fields).batch(torch.arange(8))
    assert embeddings(batch).shape == (8, 4, 16)


def test_impossible_global_budget_names_the_fields(wide_fields: FieldData) -> None:
    with pytest.raises(BudgetError, match="too small for method 'full'"):
        build_field_embeddings(wide_fields, EmbeddingSpec("full", budget=0.5), 16)
    # QR needs about 2·sqrt(n) rows per field: tiny fields cannot reach 10% of their size.
    with pytest.raises(BudgetError, match=r"too small for method 'qr': tables city, tags"):
        build_field_embeddings(wide_fields, EmbeddingSpec("qr", budget=0.1), 16)


def test_fixed_parameters_without_budget(wide_fields: FieldData) -> None:
    embeddings = build_field_embeddings(
        wide_fields, EmbeddingSpec("hash", {"num_buckets": 3}), 8)
    assert all(row["memory_bytes"] <= 3 * 8 * 4 + 16 for row in embeddings.describe())


def test_unified_shares_one_table_across_fields(wide_fields: FieldData) -> None:
    embeddings = build_field_embeddings(wide_fields, EmbeddingSpec("unified", budget=0.2), 16)
    assert list(embeddings.tables) == [SHARED_TABLE]
    assert embeddings.memory_bytes() <= int(0.2 * embeddings.full_fp32_bytes())
    offsets = [slot.offset for slot in embeddings.slots]
    assert offsets == sorted(offsets) and offsets[0] == 0 and len(set(offsets)) == 4
    table = embeddings.tables[SHARED_TABLE]
    assert table.num_embeddings == sum(f.num_embeddings for f in wide_fields.fields)
    batch = FieldTensors(wide_fields).batch(torch.arange(5))
    output = embeddings(batch)
    item_slot = embeddings.slots[1]
    assert torch.allclose(output[:, 1], table(batch.ids[:, 1] + item_slot.offset))


def test_pooled_multi_hot_is_the_mean_of_its_rows(tiny_fields: FieldData) -> None:
    embeddings = build_field_embeddings(tiny_fields, EmbeddingSpec("full"), 4)
    values = torch.tensor([1, 2, 3, 2])
    batch = CTRBatch(torch.zeros(2, 3, dtype=torch.long),
                     {"tags": (values, torch.tensor([0, 0, 0, 1]))}, torch.zeros(2))
    weight = embeddings.tables["tags"].weight
    output = embeddings(batch)
    assert torch.allclose(output[0, 3], weight[[1, 2, 3]].mean(0))
    assert torch.allclose(output[1, 3], weight[2])


def test_graph_methods_get_the_user_item_graph(tiny_fields: FieldData) -> None:
    user, item, city = (field_stats(tiny_fields, name) for name in ("user", "item", "city"))
    assert (user.role, item.role, city.role) == ("user", "item", "city")
    assert user.interactions is not None and user.interactions.nnz > 0
    assert city.interactions is None
    assert city.frequencies.sum() == (tiny_fields.split == 0).sum()


def test_small_fields_keep_full_tables(wide_fields: FieldData) -> None:
    embeddings = build_field_embeddings(wide_fields, EmbeddingSpec("hash", budget=0.1), 16,
                                        keep_full_rows=16)
    methods = {row["field"]: row["method"] for row in embeddings.describe()}
    assert methods == {"user": "hash", "item": "hash", "city": "full", "tags": "full"}
    assert embeddings.memory_bytes() <= int(0.1 * embeddings.full_fp32_bytes())
    plan = split_budget(1000, {"a": 100, "b": 3000, "c": 6000}, lambda n, s: True,
                        keep_full=["a"])
    assert plan == {"a": None, "b": 300, "c": 600}


def test_graph_methods_keep_the_fields_they_cannot_serve_full(wide_fields: FieldData) -> None:
    embeddings = build_field_embeddings(wide_fields, EmbeddingSpec("graph", budget=0.25), 16)
    rows = {row["field"]: row for row in embeddings.describe()}
    assert rows["user"]["method"] == rows["item"]["method"] == "graph"
    assert rows["city"]["method"] == "full" and "role" in rows["city"]["note"]
    assert embeddings.memory_bytes() <= int(0.25 * embeddings.full_fp32_bytes())


def test_a_method_that_serves_no_field_raises(wide_fields: FieldData) -> None:
    with pytest.raises(ConfigError, match="unknown key 'num_bucket'"):
        build_field_embeddings(wide_fields, EmbeddingSpec("hash", {"num_bucket": 4}), 8)
