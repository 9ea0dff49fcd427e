"""``graph_popularity``: levels by degree, packed into the map's spare range at no byte cost."""

import numpy as np
import pytest
import torch

from slimrec.embeddings import EmbeddingSpec, TableStats, build_embedding
from slimrec.embeddings.graph_popularity import GraphPopularityTableConfig, popularity_levels

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


@pytest.mark.parametrize(("num_rows", "levels"), [
    (1, 1), (8, 8), (20, 6), (127, 1), (128, 1), (129, 16), (2048, 16), (2752, 11),
    (32767, 1), (40000, 16)])
def test_levels_fit_the_spare_range_of_the_map(num_rows, levels):
    config = GraphPopularityTableConfig(num_rows=num_rows)
    assert config.codes_per_row(num_rows) == levels


def test_map_packs_row_and_level(tiny_data, tmp_path):
    stats = TableStats(role="item", interactions=tiny_data.train, cache_dir=tmp_path)
    spec = EmbeddingSpec("graph_popularity", {"resolution": 2.0, "num_rows": 40})
    table = build_embedding(spec, 200, DIM, stats)
    graph = build_embedding(EmbeddingSpec("graph", dict(spec.params)), 200, DIM, stats)
    codes = table.row_of.long()
    assert table.row_of.dtype == graph.row_of.dtype == torch.int8
    assert torch.equal(codes % 40, graph.row_of.long())
    levels = codes // 40
    assert int(levels.max()) == table.config.codes_per_row(40) - 1 == 2
    degree = np.asarray(tiny_data.train.sum(axis=0)).ravel()
    assert torch.equal(levels, torch.from_numpy(popularity_levels(degree, 3)))
    ids = torch.arange(200)
    expected = table.weight[codes % 40] + table.level_weight[levels]
    assert torch.allclose(table(ids), expected)
    assert table.memory_bytes() == (40 + 3) * DIM * 4 + 200
