"""``graph_popularity``: levels by degree, packed into the map's spare range at no byte cost."""

import itertools

import numpy as np
import pytest
import torch

from slimrec.embeddings import EmbeddingSpec, TableStats, build_embedding
from slimrec.embeddings.graph_popularity import (
    GraphPopularityTable,
    GraphPopularityTableConfig,
    popularity_levels,
)

DIM = 16


def test_levels_split_the_seen_ids_evenly():
    degree = np.array([0, 5, 1, 3, 2, 8, 4, 7, 6, 0])
    levels = popularity_levels(degree, 4)
    assert levels[0] == 0 and levels[-1] == 0
    seen = levels[degree > 0]
    assert np.bincount(seen).tolist() == [2, 2, 2, 2]
    # More interactions never means a lower level.
    order = np.argsort(degree[degree > 0])
    assert (np.diff(seen[order]) >= 0).all()
    assert popularity_levels(degree, 1).tolist() == [0] * 10


@pytest.mark.parametrize(("num_rows", "levels", "dtype"), [
    (1, 1, torch.int8), (8, 8, torch.int8), (20, 6, torch.int8), (32, 4, torch.int8),
    (33, 16, torch.int16), (127, 16, torch.int16), (128, 16, torch.int16),
    (129, 16, torch.int16), (2048, 16, torch.int16), (2752, 11, torch.int16),
    (8192, 4, torch.int16), (8193, 16, torch.int32), (16385, 16, torch.int32),
    (32767, 16, torch.int32), (32768, 16, torch.int32), (40000, 16, torch.int32)])
def test_levels_fit_the_map_or_the_map_widens(num_rows, levels, dtype):
    """Never one level where a row count leaves no spare range (<= 128, 16,385-32,768)."""
    config = GraphPopularityTableConfig(num_rows=num_rows)
    assert config.codes_per_row(num_rows) == levels
    assert config.map_dtype(num_rows) == dtype


def test_min_and_fixed_levels():
    assert GraphPopularityTableConfig(min_levels=1).codes_per_row(127) == 1
    assert GraphPopularityTableConfig(min_levels=16).codes_per_row(2752) == 16
    fixed = GraphPopularityTableConfig(num_levels=3)
    assert fixed.codes_per_row(40000) == 3 and fixed.map_dtype(127) == torch.int16


def test_bytes_grow_with_the_rows_across_each_widening():
    config = GraphPopularityTableConfig()
    sizes = [config.model_copy(update={"num_rows": rows}).table_bytes(40981, 64)
             for rows in range(1, 34000)]
    assert all(b >= a for a, b in itertools.pairwise(sizes))


@pytest.mark.parametrize(("num_rows", "num_levels", "dtype", "width"), [
    (20, 6, torch.int8, 1),  # the levels ride in the int8 map's spare range
    (40, 16, torch.int16, 2),  # 3 would fit in int8: the map widens to keep 16
])
def test_map_packs_row_and_level(tiny_data, tmp_path, num_rows, num_levels, dtype, width):
    stats = TableStats(role="item", interactions=tiny_data.train, cache_dir=tmp_path)
    spec = EmbeddingSpec("graph_popularity", {"resolution": 2.0, "num_rows": num_rows})
    table = build_embedding(spec, 200, DIM, stats)
    graph = build_embedding(EmbeddingSpec("graph", dict(spec.params)), 200, DIM, stats)
    codes = table.row_of.long()
    assert graph.row_of.dtype == torch.int8 and table.row_of.dtype == dtype
    assert torch.equal(codes % num_rows, graph.row_of.long())
    levels = codes // num_rows
    # The level count is reported: it is in the built table's config (results.json params).
    assert table.config.model_dump()["num_levels"] == num_levels
    assert int(levels.max()) == num_levels - 1
    degree = np.asarray(tiny_data.train.sum(axis=0)).ravel()
    assert torch.equal(levels, torch.from_numpy(popularity_levels(degree, num_levels)))
    ids = torch.arange(200)
    expected = table.weight[codes % num_rows] + table.level_weight[levels]
    assert torch.allclose(table(ids), expected)
    assert table.memory_bytes() == (num_rows + num_levels) * DIM * 4 + 200 * width
    rebuilt = type(table).from_state(table.config, 200, DIM, table.inference_state())
    assert torch.equal(rebuilt(ids), table(ids))


def test_tables_saved_before_the_level_count_was_recorded_still_load():
    """An old map at 127 rows packed one level into int8; the new rule would choose 16."""
    config = GraphPopularityTableConfig(num_rows=127, num_levels=1)
    table = GraphPopularityTable(300, DIM, config, torch.arange(300) % 127, 127)
    assert table.row_of.dtype == torch.int8
    old_config = config.model_copy(update={"num_levels": None})
    rebuilt = GraphPopularityTable.from_state(old_config, 300, DIM, table.inference_state())
    assert rebuilt.config.num_levels == 1
    assert torch.equal(rebuilt(torch.arange(300)), table(torch.arange(300)))
