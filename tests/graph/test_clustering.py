"""Bipartite clustering: determinism, planted communities, objectives checked by brute force."""

import random

import numpy as np
import pytest
import scipy.sparse as sp

from slimrec.data.synthetic import _zipf_weights
from slimrec.errors import ConfigError, DataError
from slimrec.graph import (
    BipartiteGraph,
    barber_modularity,
    cluster_bipartite,
    cluster_statistics,
    clustering,
    edge_coverage,
    modularity,
)

COMBINATIONS = [("leiden", "barber"), ("leiden", "modularity"), ("louvain", "modularity")]


def planted_communities(num_users=300, num_items=200, num_communities=6, seed=3):
    """The communities ``make_synthetic`` planted, replayed from its random stream."""
    rng = np.random.default_rng(seed)
    _zipf_weights(num_items, 0.9, rng)
    return (rng.integers(0, num_communities, num_users),
            rng.integers(0, num_communities, num_items))


def purity(found: np.ndarray, truth: np.ndarray) -> float:
    """Share of ids whose found cluster's majority truth label is their own."""
    table = np.zeros((found.max() + 1, truth.max() + 1), dtype=np.int64)
    np.add.at(table, (found, truth), 1)
    return table.max(axis=1).sum() / found.size


@pytest.fixture(scope="module")
def graph(tiny_data):
    return BipartiteGraph(tiny_data.train)


@pytest.mark.parametrize(("algorithm", "objective"), COMBINATIONS)
def test_same_seed_same_clusters(graph, algorithm, objective):
    first = graph.cluster(8.0, algorithm, objective, seed=5)
    second = BipartiteGraph(graph.matrix).cluster(8.0, algorithm, objective, seed=5)
    assert np.array_equal(first.labels, second.labels)
    assert first.num_clusters > 6


@pytest.mark.parametrize(("algorithm", "objective"), COMBINATIONS)
def test_edges_added_in_chunks_build_the_same_graph(graph, monkeypatch, algorithm, objective):
    """Large graphs reach igraph in chunks of edges (bounded memory): same graph, same clusters."""
    expected = graph.cluster(8.0, algorithm, objective, seed=5)
    monkeypatch.setattr(clustering, "EDGE_CHUNK", 7)
    fresh = BipartiteGraph(graph.matrix)
    assert fresh.igraph(directed=False).get_edgelist() == graph.igraph(False).get_edgelist()
    assert np.array_equal(fresh.cluster(8.0, algorithm, objective, seed=5).labels,
                          expected.labels)


def test_global_random_state_is_left_alone(graph):
    random.seed(11)
    expected = random.random()
    random.seed(11)
    graph.cluster(4.0, seed=1)
    assert random.random() == expected


@pytest.mark.parametrize(("algorithm", "objective"), COMBINATIONS)
def test_planted_communities_are_recovered(tiny_data, graph, algorithm, objective):
    users, items = planted_communities()
    # The replay is faithful: most training edges stay inside a planted community.
    rows = np.repeat(np.arange(tiny_data.num_users), np.diff(tiny_data.train.indptr))
    assert np.mean(users[rows] == items[tiny_data.train.indices]) > 0.7
    clustering = graph.cluster(1.0, algorithm, objective, seed=0)
    assert 5 <= clustering.num_clusters <= 8
    labels = clustering.labels.astype(np.int64)
    assert purity(labels, np.concatenate([users, items])) > 0.9


def test_more_resolution_more_clusters(graph):
    counts = [graph.cluster(r).num_clusters for r in (0.5, 4.0, 32.0)]
    assert counts[0] < counts[1] < counts[2]


def test_edgeless_ids_are_unlabelled():
    matrix = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 1]], dtype=np.float32))
    clustering = cluster_bipartite(matrix, 1.0)
    assert clustering.side("user")[1] == -1 and clustering.side("item")[2] == -1
    assert (np.delete(clustering.labels, [1, 5]) >= 0).all()
    assert clustering.side_labels("item")[2] == -1
    assert set(clustering.side_labels("user")[[0, 2]]) <= set(range(clustering.num_user_clusters))


def brute_force(matrix: sp.csr_matrix, labels: np.ndarray, resolution: float):
    """Modularities from their pairwise definitions over a dense adjacency."""
    num_users, num_items = matrix.shape
    biadjacency = matrix.toarray()
    m = biadjacency.sum()
    k, d = biadjacency.sum(axis=1), biadjacency.sum(axis=0)
    same_ui = labels[:num_users, None] == labels[None, num_users:]
    barber = ((biadjacency - resolution * np.outer(k, d) / m) * same_ui).sum() / m
    adjacency = np.block([[np.zeros((num_users, num_users)), biadjacency],
                          [biadjacency.T, np.zeros((num_items, num_items))]])
    degree = adjacency.sum(axis=1)
    same = labels[:, None] == labels[None, :]
    newman = ((adjacency - resolution * np.outer(degree, degree) / (2 * m)) * same).sum() / (2 * m)
    inside = (biadjacency * same_ui).sum() / m
    return newman, barber, inside


@pytest.mark.parametrize("resolution", [0.5, 1.0, 3.0])
def test_objectives_match_their_definitions(tiny_data, graph, resolution):
    labels = graph.cluster(resolution, seed=2).labels
    newman, barber, inside = brute_force(tiny_data.train, labels, resolution)
    assert modularity(tiny_data.train, labels, resolution) == pytest.approx(newman)
    assert barber_modularity(tiny_data.train, labels, resolution) == pytest.approx(barber)
    assert edge_coverage(tiny_data.train, labels) == pytest.approx(inside)
    assert modularity(tiny_data.train, labels, resolution) == pytest.approx(
        graph.igraph(directed=False).modularity(labels.tolist(), resolution=resolution))


def test_statistics(graph):
    clustering = graph.cluster(4.0)
    stats = cluster_statistics(graph, clustering)
    assert stats["user_clusters"] == clustering.num_user_clusters
    assert stats["user_cluster_sizes"]["count"] == stats["user_clusters"]
    assert stats["user_cluster_sizes"]["mean"] * stats["user_clusters"] == pytest.approx(300)
    assert stats["mixed_clusters"] <= min(stats["user_clusters"], stats["item_clusters"])
    assert 0 < stats["edge_coverage"] < 1 and stats["user_coverage"] == 1.0


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"algorithm": "louvain", "objective": "barber"}, "supports objective 'modularity' only"),
    ({"algorithm": "spectral"}, "algorithm must be one of leiden, louvain"),
    ({"objective": "cpm"}, "objective must be one of barber, modularity"),
    ({"resolution": 0.0}, "resolution must be > 0"),
    ({"iterations": 0}, "iterations must be an int >= 1"),
])
def test_bad_parameters_name_the_fix(graph, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        graph.cluster(**kwargs)


def test_empty_graph_is_refused():
    with pytest.raises(DataError, match="no edge"):
        BipartiteGraph(sp.csr_matrix((3, 4), dtype=np.float32))
