"""``graphhash``: the paper's GraphHash, one row per cluster and no spare rows."""

import numpy as np
import pytest
import torch

from slimrec.embeddings import EmbeddingSpec, TableStats, build_embedding
from slimrec.embeddings.graph import assign_rows
from slimrec.graph import BipartiteGraph
from slimrec.testing import check_embedding_table

DIM = 16


def stats_for(data, role, cache_dir):
    return TableStats(role=role, interactions=data.train, cache_dir=cache_dir)


def _graph(data):
    """The training graph the tables cluster."""
    return BipartiteGraph(data.train)


def test_no_spare_rows_when_the_rows_outnumber_the_clusters():
    labels = np.array([0, 0, 0, 1, 1, 2, -1])
    degree = np.array([9, 1, 5, 7, 8, 50, 0])
    rows = assign_rows(labels, degree, num_rows=5, seed=0, spare_rows=False)
    # Every id with a cluster reads its cluster's row, however frequent it is.
    assert rows[:6].tolist() == [0, 0, 0, 1, 1, 2]
    assert 0 <= rows[6] < 5  # the edgeless id is hashed


@pytest.mark.parametrize("role", ["user", "item"])
@pytest.mark.parametrize("budget", [0.25, 0.1, 0.05])
def test_ids_read_exactly_their_cluster_row(tiny_data, tmp_path, role, budget):
    stats = stats_for(tiny_data, role, tmp_path)
    num = tiny_data.num_users if role == "user" else tiny_data.num_items
    pure = check_embedding_table(EmbeddingSpec("graphhash", budget=budget), num, DIM, stats)
    graph = build_embedding(EmbeddingSpec("graph", budget=budget), num, DIM, stats)
    # Same clustering as ``graph``; one row per cluster of this side (at most graph's rows).
    assert pure.config.resolution == graph.config.resolution
    labels = pure.config.clustering(_graph(tiny_data), stats).side_labels(role)
    clusters = int(labels.max()) + 1
    assert pure.num_rows == min(clusters, graph.num_rows)
    if clusters <= graph.num_rows:
        assert torch.equal(pure.row_of.long(), torch.from_numpy(labels))
    assert pure.memory_bytes() == pure.config.table_bytes(num, DIM)
    assert pure.memory_bytes() <= graph.memory_bytes()


def test_frequent_ids_share_their_cluster_row_unlike_graph(tiny_data, tmp_path):
    stats = stats_for(tiny_data, "item", tmp_path)
    params = {"resolution": 1.0, "num_rows": 40}
    pure = build_embedding(EmbeddingSpec("graphhash", params), 200, DIM, stats)
    graph = build_embedding(EmbeddingSpec("graph", params), 200, DIM, stats)
    labels = pure.config.clustering(_graph(tiny_data), stats).side_labels("item")
    clusters = int(labels.max()) + 1
    assert clusters < 40
    top = int(np.argmax(np.asarray(tiny_data.train.sum(axis=0)).ravel()))
    # ``graph`` gives the most frequent id a spare row of its own; GraphHash keeps it on its
    # cluster's row, shared with its cluster-mates.
    assert int(graph.row_of[top]) >= clusters
    assert int(pure.row_of[top]) == labels[top]
    mates = torch.nonzero(pure.row_of == pure.row_of[top]).ravel()
    assert len(mates) > 1 and len(torch.unique(pure(mates), dim=0)) == 1
    assert torch.equal(pure.row_of.long(), torch.from_numpy(labels))


def test_runs_in_a_model_under_one_budget(tiny_data, tmp_path, monkeypatch):
    from slimrec.spine import build_model
    from slimrec.tasks import RetrievalConfig

    monkeypatch.setenv("SLIMREC_CACHE_DIR", str(tmp_path))
    config = RetrievalConfig(embedding="graphhash", budget="10%", dim=DIM, progress=False)
    model = build_model(config, tiny_data)
    assert model.embedding_bytes() <= 0.1 * model.full_embedding_bytes()
    assert model.user_table.config.resolution == model.item_table.config.resolution
