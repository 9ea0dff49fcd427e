"""Gowalla's training graph: the reference operating point (about 16% of rows at resolution 200)."""

import pytest

from slimrec.data.registry import load_dataset
from slimrec.graph import BipartiteGraph, cluster_statistics

pytestmark = pytest.mark.real_data


def test_gowalla_at_resolution_200(shared_data):
    data = load_dataset("gowalla", shared_data, progress=False)
    graph = BipartiteGraph(data.train)
    stats = cluster_statistics(graph, graph.cluster(200.0))
    rows = (stats["user_clusters"] + stats["item_clusters"]) / (data.num_users + data.num_items)
    assert 0.12 < rows < 0.20  # scikit-network's Louvain (the reference code) gives about 16%
    assert stats["barber_modularity"] > 0.08
    assert stats["mixed_clusters"] > 0.9 * stats["clusters"]
    # Its time is a benchmark figure (benchmarks/clustering_gowalla.py), not a test: a loaded
    # machine must not fail the suite.
