"""Neutral ties: equal scores are ranked by a seeded random item order, never by id.

Planted cases whose metric is known whatever the order drawn, plus the bias the rule removes.
"""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from slimrec.data.interactions import Interactions
from slimrec.eval.ranking import TOPK_BLOCK, block_topk, evaluate_ranking, neutral_top, tie_order

SEEDS = range(200)


def planted(scores_row, test_items):
    """One user per test item, every user scoring the items alike (``scores_row``); the last
    item is every user's train item, so it is masked and never ranked."""
    num_users, num_items = len(test_items), len(scores_row) + 1
    users = np.arange(num_users)
    train = sp.csr_matrix((np.ones(num_users, np.float32), (users, np.full(num_users,
                          num_items - 1))), shape=(num_users, num_items))
    test = sp.csr_matrix((np.ones(num_users, np.float32), (users, test_items)),
                         shape=(num_users, num_items))
    empty = sp.csr_matrix((num_users, num_items), dtype=np.float32)
    data = Interactions("planted", users.astype(str), np.arange(num_items).astype(str),
                        train=train, val=empty, test=test)
    row = torch.tensor([*scores_row, 0.0])

    def scorer(user_ids, out=None):
        return row.expand(len(user_ids), -1).clone()

    return data, scorer


def test_a_tied_block_at_the_cutoff_gives_its_expected_share():
    """2 items above, 10 tied, 3 below; K = 5 takes both above and 3 of the 10 tied. Each
    tied item is the test item of one user, so recall@5 over those users is exactly 3/10,
    for every tie order; the above items always hit, the below ones never."""
    scores = [2.0, 2.0] + [1.0] * 10 + [0.0] * 3
    data, scorer = planted(scores, np.arange(15))
    for seed in (0, 1, 7):
        result = evaluate_ranking(scorer, data, ks=(2, 5, 12), metrics=("recall",),
                                  tie_seed=seed)
        assert result.metrics["recall@5"] == pytest.approx((2 + 3) / 15)
        assert result.metrics["recall@2"] == pytest.approx(2 / 15)
        assert result.metrics["recall@12"] == pytest.approx(12 / 15)
        # Every user ties across 5; nobody across 2 (2 > 1) or 12 (1 > 0).
        assert result.tied_users == {2: 0, 5: 15, 12: 0}
        assert result.details()["users_tied_at_cutoff"] == {"2": 0, "5": 15, "12": 0}
        assert result.details()["tie_seed"] == seed


def test_ties_no_longer_favour_low_ids():
    """All 10 items tie and every user's test item is item 0 (a "popular" low id). Ranking
    by id would give hit@3 = 1; the random order gives 1 for 3 orders in 10 on average."""
    data, scorer = planted([1.0] * 10, np.zeros(4, dtype=np.int64))
    hits = [evaluate_ranking(scorer, data, ks=(3,), metrics=("hit",), tie_seed=seed)
            .metrics["hit@3"] for seed in SEEDS]
    assert set(hits) == {0.0, 1.0}
    assert np.mean(hits) == pytest.approx(0.3, abs=0.1)


def test_ndcg_of_a_fully_tied_list_averages_over_positions():
    """Ten tied items, the test item of user i is item i: over the users, every position of
    the top 10 is held once, so NDCG@10 is the mean discount for every order."""
    data, scorer = planted([1.0] * 10, np.arange(10))
    expected = np.mean(1 / np.log2(np.arange(2, 12)))
    for seed in (0, 3):
        result = evaluate_ranking(scorer, data, ks=(10,), metrics=("ndcg", "mrr"),
                                  tie_seed=seed)
        assert result.metrics["ndcg@10"] == pytest.approx(expected)
        assert result.metrics["mrr@10"] == pytest.approx(np.mean(1 / np.arange(1, 11)))
        assert result.tied_users == {10: 0}  # all items are in the top 10: no cutoff tie


def test_neutral_top_orders_equal_scores_by_rank_and_keeps_untied_order():
    rank = tie_order(8, seed=5)
    scores = torch.tensor([[3.0, 1.0, 1.0, 1.0, 1.0, 5.0, 1.0, 0.0],
                           [7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])
    top, values, crossing = neutral_top(scores, 4, rank)
    tied = [1, 2, 3, 4, 6]
    by_rank = sorted(tied, key=lambda item: int(rank[item]))
    assert top[0].tolist() == [5, 0, *by_rank[:2]]
    assert values[0].tolist() == [5.0, 3.0, 1.0, 1.0]
    assert top[1].tolist() == [0, 1, 2, 3]
    assert crossing.tolist() == [True, False]


def test_untied_scores_are_ranked_as_topk_ranks_them():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(64, 500, generator=generator)
    top, _, crossing = neutral_top(scores, 20, tie_order(500, 1))
    assert torch.equal(top, torch.topk(scores, 20, dim=1).indices)
    assert not crossing.any()


@pytest.mark.parametrize("columns", [2 * 21 * TOPK_BLOCK - 1, 2 * 21 * TOPK_BLOCK, 5000, 40_981])
def test_block_topk_returns_the_values_of_topk(columns):
    generator = torch.Generator().manual_seed(columns)
    scores = torch.randn(40, columns, generator=generator)
    scores[:20] = (scores[:20] * 2).round()  # rows full of ties
    scores[:, ::3] = -torch.inf  # masked items
    scores[5, :-3] = -torch.inf  # a row whose top items sit in the last, partial block
    values, top = block_topk(scores, 21)
    assert torch.equal(values, torch.topk(scores, 21, dim=1).values)
    assert torch.equal(scores.gather(1, top), values)
    assert (top.sort(dim=1).values.diff(dim=1) > 0).all()  # no column twice


def test_neutral_top_on_long_rows_orders_by_score_then_rank():
    generator = torch.Generator().manual_seed(1)
    scores = torch.randint(0, 6, (30, 4000), generator=generator).float()  # heavy ties
    scores[::2, ::2] = -torch.inf
    rank = tie_order(4000, seed=2)
    top, values, crossing = neutral_top(scores, 20, rank)
    for row in range(len(scores)):
        expected = np.lexsort((rank.numpy(), -scores[row].numpy()))[:20]
        assert top[row].tolist() == expected.tolist()
    assert torch.equal(values, scores.gather(1, top))
    assert crossing.all()


def test_the_tie_order_is_a_seeded_permutation():
    assert torch.equal(tie_order(50, 3), tie_order(50, 3))
    assert not torch.equal(tie_order(50, 3), tie_order(50, 4))
    assert sorted(tie_order(50, 3).tolist()) == list(range(50))


def test_results_document_records_ties_and_the_rule(tiny_data, tmp_path):
    """A run whose ids share rows (hash at 10%) ties; results.json says how many users."""
    from slimrec.spine import run

    document = run({"dataset": "synthetic", "dim": 8, "embedding": "hash", "budget": 0.1,
                    "seed": 4, "ks": [5, 20], "train": {"epochs": 1, "batch_size": 4096},
                    "progress": False, "out": str(tmp_path / "run")}, data=tiny_data)
    assert "seeded random permutation" in document["metric_definitions"]["ties"]
    assert set(document["evaluation"]) == set(document["metrics"])
    for split in document["metrics"]:
        details = document["evaluation"][split]
        assert details["tie_seed"] == 4
        assert set(details["users_tied_at_cutoff"]) == {"5", "20"}
        assert 0 < details["users_tied_at_cutoff"]["20"] <= details["users"]


@pytest.mark.parametrize("method", ["hash", "graph", "graph_popularity", "graphhash"])
def test_mf_scores_each_shared_vector_once(tiny_data, tmp_path, monkeypatch, method):
    """Shared-row tables are scored per distinct vector: the same scores as the dense product
    (to rounding), and bit-identical scores for the items of one vector."""
    from slimrec.spine import build_model
    from slimrec.tasks import RetrievalConfig

    monkeypatch.setenv("SLIMREC_CACHE_DIR", str(tmp_path))
    model = build_model(RetrievalConfig(embedding=method, budget="10%", dim=8), tiny_data)
    vectors, index = model.item_table.distinct_rows()
    assert len(vectors) < tiny_data.num_items
    users = torch.arange(17)
    out = torch.empty(17, tiny_data.num_items)
    scores = model.scorer()(users, out)
    assert scores.data_ptr() == out.data_ptr()
    dense = model.user_table(users) @ model.item_table.full_weight().T
    assert torch.allclose(scores, dense.detach(), atol=1e-6)
    same = index == index[0]
    assert same.sum() > 1 and (scores[:, same] == scores[:, :1][:, [0]]).all()
