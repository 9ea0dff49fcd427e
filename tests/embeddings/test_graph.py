"""``graph`` and ``double_graph`` tables: conformance, bytes, budgets, fallback rows, sharing."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from slimrec.embeddings import EmbeddingSpec, TableStats, build_embedding, resolve_config
from slimrec.embeddings.graph import GraphTable, assign_rows
from slimrec.embeddings.hashing_utils import HASH_PARAM_BYTES
from slimrec.embeddings.sizing import index_dtype
from slimrec.errors import BudgetError, ConfigError, DataError
from slimrec.spine import build_model
from slimrec.tasks import RetrievalConfig
from slimrec.testing import check_embedding_table

METHODS = ["graph", "double_graph", "graph_popularity"]
DIM = 16


def stats_for(data, role, cache_dir):
    return TableStats(role=role, interactions=data.train, cache_dir=cache_dir)


def count(data, role):
    return data.num_users if role == "user" else data.num_items


def width(max_value):
    return 1 if max_value < 2**7 else 2 if max_value < 2**15 else 4


def hand_levels(num_rows, max_levels=16, min_levels=4):
    """graph_popularity's levels: what fits graph's map, or the map widens to keep them all."""
    wanted = min(max_levels, num_rows)
    free = 2 ** (8 * width(num_rows - 1) - 1) // num_rows
    return min(wanted, free) if free >= min(wanted, min_levels) else wanted


def hand_bytes(method, num_embeddings, num_rows, dim=DIM):
    levels = hand_levels(num_rows) if method == "graph_popularity" else 1
    extra = {"graph": 0, "double_graph": HASH_PARAM_BYTES,
             "graph_popularity": levels * dim * 4}[method]
    return num_rows * dim * 4 + num_embeddings * width(num_rows * levels - 1) + extra


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("role", ["user", "item"])
@pytest.mark.parametrize("budget", [None, 0.25, 0.1])
def test_conformance(tiny_data, tmp_path, method, role, budget):
    spec = EmbeddingSpec(method, budget=budget)
    check_embedding_table(spec, count(tiny_data, role), DIM, stats_for(tiny_data, role, tmp_path))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("num_rows", [6, 40, 200])
def test_memory_bytes_is_the_hand_formula(tiny_data, tmp_path, method, num_rows):
    stats = stats_for(tiny_data, "user", tmp_path)
    table = build_embedding(EmbeddingSpec(method, {"num_rows": num_rows, "resolution": 2.0}),
                            300, DIM, stats)
    assert table.num_rows == num_rows
    levels = hand_levels(num_rows) if method == "graph_popularity" else 1
    assert table.row_of.dtype == index_dtype(num_rows * levels - 1)
    assert table.memory_bytes() == hand_bytes(method, 300, num_rows)
    assert table.memory_bytes() == table.config.table_bytes(300, DIM)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("budget", [0.5, 0.16, 0.1, 0.05, 0.03])
def test_budget_is_met_and_shared_by_both_sides(tiny_data, tmp_path, method, budget):
    tables = {role: build_embedding(EmbeddingSpec(method, budget=budget),
                                    count(tiny_data, role), DIM,
                                    stats_for(tiny_data, role, tmp_path))
              for role in ("user", "item")}
    for role, table in tables.items():
        allowed = int(budget * count(tiny_data, role) * DIM * 4)
        assert table.memory_bytes() <= allowed
        # One more row would not fit: the solver leaves less than a row unused.
        assert hand_bytes(method, count(tiny_data, role), table.num_rows + 1) > allowed
    # Both sides use one clustering (one search, the second answered from the cache).
    assert tables["user"].config.resolution == tables["item"].config.resolution
    assert len(list(tmp_path.glob("search-*.json"))) == 1


def test_leftover_rows_go_to_the_most_frequent_ids():
    labels = np.array([0, 0, 0, 1, 1, 2, -1])
    degree = np.array([9, 1, 5, 7, 8, 50, 0])
    rows = assign_rows(labels, degree, num_rows=5, seed=0)
    # Id 5 is alone in its cluster, so it keeps that row; ids 0 and 4 (next most frequent,
    # whose clusters keep other members) get rows 3 and 4.
    assert rows[5] == 2 and rows[0] == 3 and rows[4] == 4
    assert rows[[1, 2]].tolist() == [0, 0] and rows[3] == 1
    assert 0 <= rows[6] < 5


def test_extra_rows_never_empty_a_cluster():
    labels = np.array([0, 0, 1, 1])
    rows = assign_rows(labels, np.array([4, 3, 2, 1]), num_rows=10, seed=0)
    assert rows.tolist() == [2, 0, 3, 1]


def test_clusters_beyond_the_rows_are_folded():
    labels = np.array([0, 1, 1, 1, 2, 2, 3])
    rows = assign_rows(labels, np.ones(7, dtype=np.int64), num_rows=2, seed=0)
    # Largest cluster (1) keeps row 0, the next (2) row 1; clusters 0 and 3 fold onto them.
    assert rows[[1, 2, 3]].tolist() == [0, 0, 0] and rows[[4, 5]].tolist() == [1, 1]
    assert set(rows.tolist()) == {0, 1}


@pytest.mark.parametrize("method", METHODS)
def test_ids_without_edges_get_hashed_rows(tiny_data, tmp_path, method):
    # Items 150..199 lose every training edge: unseen items of a new catalogue.
    train = tiny_data.train.tolil()
    train[:, 150:] = 0
    train = sp.csr_matrix(train)
    train.eliminate_zeros()
    stats = TableStats(role="item", interactions=train, cache_dir=tmp_path)
    table = build_embedding(EmbeddingSpec(method, budget=0.25), 200, DIM, stats)
    unseen = torch.arange(150, 200)
    rows = table.row_of[unseen].long()
    assert len(set(rows.tolist())) > 10  # spread over the rows, not one shared row
    vectors = table(unseen)
    assert torch.isfinite(vectors).all() and (vectors.norm(dim=-1) > 0).all()
    # The same seed places them the same way on a rebuild.
    again = build_embedding(EmbeddingSpec(method, budget=0.25), 200, DIM, stats)
    assert torch.equal(again.row_of, table.row_of)


def test_cluster_mates_share_a_vector_only_in_graph(tiny_data, tmp_path):
    stats = stats_for(tiny_data, "item", tmp_path)
    spec = {"resolution": 1.0}
    graph = build_embedding(EmbeddingSpec("graph", spec), 200, DIM, stats)
    double = build_embedding(EmbeddingSpec("double_graph", spec), 200, DIM, stats)
    assert torch.equal(graph.row_of, double.row_of)
    mates = torch.nonzero(graph.row_of == graph.row_of[0]).ravel()
    assert len(mates) > 10
    assert len(torch.unique(graph(mates), dim=0)) == 1
    # The hashed row tells cluster-mates apart (up to hash collisions among the 6 rows).
    assert len(torch.unique(double(mates), dim=0)) == len(torch.unique(double.rows(mates), dim=0))
    assert len(torch.unique(double(mates), dim=0)) > 1


def test_rebuilt_from_state_without_data(tiny_data, tmp_path):
    stats = stats_for(tiny_data, "user", tmp_path)
    table = build_embedding(EmbeddingSpec("graph", budget=0.1), 300, DIM, stats)
    state = table.inference_state()
    rebuilt = GraphTable.from_state(table.config, 300, DIM, state)
    ids = torch.arange(300)
    assert torch.equal(rebuilt(ids), table(ids))


def test_model_tables_share_the_clustering(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("SLIMREC_CACHE_DIR", str(tmp_path))
    model = build_model(RetrievalConfig(embedding="graph", budget="0.1", dim=DIM), tiny_data)
    user, item = model.user_table, model.item_table
    assert user.config.resolution == item.config.resolution
    assert len(list((tmp_path / "clusters").glob("search-*.json"))) == 1


@pytest.mark.parametrize(("stats", "error", "match"), [
    (None, ConfigError, "clusters the training graph"),
    ("genre", ConfigError, "role must be 'user' or 'item'"),
    ("user-for-items", DataError, "num_embeddings equal to the training graph's user count"),
])
def test_missing_or_wrong_stats_name_the_fix(tiny_data, stats, error, match):
    if stats == "genre":
        stats = TableStats(role="genre", interactions=tiny_data.train)
    elif stats == "user-for-items":
        stats = TableStats(role="user", interactions=tiny_data.train)
    with pytest.raises(error, match=match):
        build_embedding(EmbeddingSpec("graph", budget=0.1), 200, DIM, stats)


def test_budget_too_small(tiny_data, tmp_path):
    stats = stats_for(tiny_data, "item", tmp_path)
    smallest = hand_bytes("graph", 200, 1)
    with pytest.raises(BudgetError, match=f"smallest reachable table takes {smallest} bytes"):
        build_embedding(EmbeddingSpec("graph", budget=f"{smallest - 1}B"), 200, DIM, stats)
    table = build_embedding(EmbeddingSpec("graph", budget=f"{smallest}B"), 200, DIM, stats)
    assert table.num_rows == 1 and table.memory_bytes() == smallest


def test_resolution_and_budget_together_are_refused(tiny_data, tmp_path):
    with pytest.raises(ConfigError, match="resolution is solved from the budget"):
        resolve_config(EmbeddingSpec("graph", {"resolution": 3.0}, 0.1), 200, DIM,
                       stats_for(tiny_data, "item", tmp_path))


def test_size_unknown_before_clustering():
    from slimrec.embeddings.graph import GraphTableConfig

    with pytest.raises(ConfigError, match="known only after clustering"):
        GraphTableConfig().table_bytes(10, 4)
