"""``graph_residual``: the residual's share of a budget, and cluster-mates told apart."""

import pytest
import torch

from slimrec.embeddings import EmbeddingSpec, TableStats, build_embedding, resolve_config
from slimrec.errors import BudgetError

DIM = 16


@pytest.fixture()
def item_stats(tiny_data, tmp_path):
    return TableStats(role="item", interactions=tiny_data.train, cache_dir=tmp_path)


@pytest.mark.parametrize(("share", "budget"), [(0.25, 0.5), (0.5, 0.5), (0.25, 0.25)])
def test_rank_takes_its_share_of_the_budget(item_stats, share, budget):
    config = resolve_config(EmbeddingSpec("graph_residual", {"residual_share": share}, budget),
                            200, DIM, item_stats)
    budget_bytes = int(budget * 200 * DIM * 4)
    assert config.rank == max(1, int(share * budget_bytes // ((200 + DIM) * 4)))
    assert config.table_bytes(200, DIM) <= budget_bytes


def test_small_budget_keeps_a_row(item_stats):
    # Rank 1 and one row fit; a larger share-based rank would leave no room for a row.
    budget = 1 * (200 + DIM) * 4 + 200 + DIM * 4
    config = resolve_config(EmbeddingSpec("graph_residual", {"residual_share": 0.9}, budget),
                            200, DIM, item_stats)
    assert (config.rank, config.num_rows) == (1, 1)
    with pytest.raises(BudgetError, match=f"smallest reachable table takes {budget} bytes"):
        resolve_config(EmbeddingSpec("graph_residual", budget=budget - 1), 200, DIM, item_stats)


def test_cluster_mates_get_their_own_vectors(item_stats):
    table = build_embedding(EmbeddingSpec("graph_residual", {"resolution": 1.0, "rank": 2}),
                            200, DIM, item_stats)
    mates = torch.nonzero(table.row_of == table.row_of[0]).ravel()
    assert len(mates) > 10
    assert len(torch.unique(table(mates), dim=0)) == len(mates)
