"""Full-ranking metrics against a brute-force, loop-per-user reference."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from slimrec.data.interactions import Interactions
from slimrec.errors import ConfigError, DataError
from slimrec.eval.metrics import truncated_recall
from slimrec.eval.ranking import evaluate_ranking, tie_order


def brute_force(scores, train, val, test, k, exclude_val, rank=None):
    """Loop-per-user metrics; equal scores are ordered by ``rank`` (default: no ties)."""
    rank = np.zeros(scores.shape[1], dtype=np.int64) if rank is None else rank
    out = {"recall": [], "ndcg": [], "precision": [], "hit": [], "mrr": [], "truncated_recall": []}
    for user in range(scores.shape[0]):
        relevant = set(test[user].indices)
        if not relevant:
            continue
        seen = set(train[user].indices) | (set(val[user].indices) if exclude_val else set())
        order = np.lexsort((rank, -scores[user]))
        ranked = [i for i in order if i not in seen][:k]
        hits = [i in relevant for i in ranked]
        n_hits = sum(hits)
        out["recall"].append(n_hits / len(relevant))
        out["truncated_recall"].append(n_hits / min(k, len(relevant)))
        out["precision"].append(n_hits / k)
        out["hit"].append(float(n_hits > 0))
        dcg = sum(1 / math.log2(r + 2) for r, h in enumerate(hits) if h)
        idcg = sum(1 / math.log2(r + 2) for r in range(min(k, len(relevant))))
        out["ndcg"].append(dcg / idcg)
        out["mrr"].append(next((1 / (r + 1) for r, h in enumerate(hits) if h), 0.0))
    return {name: float(np.mean(values)) for name, values in out.items()}


def random_case(seed, num_users, num_items):
    rng = np.random.default_rng(seed)
    labels = rng.choice(4, size=(num_users, num_items), p=[0.55, 0.2, 0.1, 0.15])
    labels[:, 0] = 1  # every user has a train item
    def split(value):
        return sp.csr_matrix((labels == value).astype(np.float32))
    data = Interactions("case", np.arange(num_users).astype(str), np.arange(num_items).astype(str),
                        train=split(1), val=split(2), test=split(3))
    # Distinct scores: ties would make the top-k order implementation-defined.
    scores = rng.permutation(num_users * num_items).reshape(num_users, num_items).astype(np.float32)
    return data, scores


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), num_users=st.integers(1, 12), num_items=st.integers(2, 30),
       k=st.integers(1, 12), batch_size=st.integers(1, 5))
def test_matches_brute_force(seed, num_users, num_items, k, batch_size):
    data, scores = random_case(seed, num_users, num_items)
    if data.test.nnz == 0:
        return
    def scorer(users, out=None):
        return torch.from_numpy(scores[users.numpy()].copy())
    names = ("recall", "ndcg", "precision", "hit", "mrr", "truncated_recall")
    result = evaluate_ranking(scorer, data, "test", ks=(k,), metrics=names, batch_size=batch_size)
    expected = brute_force(scores, data.train, data.val, data.test, k, True)
    for name in names:
        assert result.metrics[f"{name}@{k}"] == pytest.approx(expected[name], abs=1e-9), name


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), num_users=st.integers(1, 12), num_items=st.integers(2, 30),
       k=st.integers(1, 12), levels=st.integers(1, 4), tie_seed=st.integers(0, 3))
def test_ties_follow_the_seeded_item_order(seed, num_users, num_items, k, levels, tie_seed):
    """Scores drawn from a few levels tie everywhere; the ranking is (score, random rank)."""
    data, _ = random_case(seed, num_users, num_items)
    if data.test.nnz == 0:
        return
    scores = np.random.default_rng(seed).integers(0, levels, (num_users, num_items))
    scores = scores.astype(np.float32)
    def scorer(users, out=None):
        return torch.from_numpy(scores[users.numpy()].copy())
    names = ("recall", "ndcg", "precision", "hit", "mrr")
    result = evaluate_ranking(scorer, data, "test", ks=(k,), metrics=names, batch_size=3,
                              tie_seed=tie_seed)
    rank = tie_order(num_items, tie_seed).numpy()
    expected = brute_force(scores, data.train, data.val, data.test, k, True, rank)
    for name in names:
        assert result.metrics[f"{name}@{k}"] == pytest.approx(expected[name], abs=1e-9), name


def test_validation_excludes_only_train():
    data, scores = random_case(3, 8, 20)
    def scorer(users, out=None):
        return torch.from_numpy(scores[users.numpy()].copy())
    result = evaluate_ranking(scorer, data, "val", ks=(5,), metrics=("recall",))
    swapped = Interactions("v", data.user_ids, data.item_ids, data.train, sp.csr_matrix(
        data.train.shape, dtype=np.float32), data.val)
    expected = brute_force(scores, swapped.train, swapped.val, swapped.test, 5, False)
    assert result.metrics["recall@5"] == pytest.approx(expected["recall"])


def test_a_user_sample_is_ranked_exactly_and_drawn_by_the_seed():
    data, scores = random_case(5, 30, 20)
    def scorer(users, out=None):
        return torch.from_numpy(scores[users.numpy()].copy())
    sampled = evaluate_ranking(scorer, data, "test", ks=(5,), metrics=("recall",), max_users=7,
                               tie_seed=4)
    assert sampled.num_users == 7
    assert evaluate_ranking(scorer, data, "test", ks=(5,), metrics=("recall",), max_users=7,
                            tie_seed=4).metrics == sampled.metrics
    users = np.flatnonzero(np.diff(data.test.indptr))
    chosen = np.random.default_rng(4).choice(users, 7, replace=False)
    mask = np.zeros(data.num_users, dtype=bool)
    mask[chosen] = True
    keep = sp.diags(mask.astype(np.float32))
    only = Interactions("s", data.user_ids, data.item_ids, data.train, data.val,
                        sp.csr_matrix(keep @ data.test))
    expected = brute_force(scores, only.train, only.val, only.test, 5, True)
    assert sampled.metrics["recall@5"] == pytest.approx(expected["recall"], abs=1e-9)
    every = evaluate_ranking(scorer, data, "test", ks=(5,), metrics=("recall",), max_users=999)
    assert every.num_users == users.size


def test_truncated_recall_is_never_below_recall():
    hits = torch.tensor([[True, False, True]])
    relevant = torch.tensor([10.0], dtype=torch.float64)
    assert truncated_recall(hits, relevant, 3).item() == pytest.approx(2 / 3)


def test_bad_arguments():
    data, scores = random_case(1, 3, 5)
    def scorer(users, out=None):
        return torch.from_numpy(scores[users.numpy()].copy())
    with pytest.raises(ConfigError, match="unknown metric"):
        evaluate_ranking(scorer, data, metrics=("auc",))
    with pytest.raises(ConfigError, match="split must be"):
        evaluate_ranking(scorer, data, split="train")
    empty = Interactions("e", data.user_ids, data.item_ids, data.train, data.val,
                         sp.csr_matrix(data.train.shape, dtype=np.float32))
    with pytest.raises(ConfigError, match="max_users must be a positive integer"):
        evaluate_ranking(scorer, data, max_users=0)
    with pytest.raises(DataError, match="test split is empty"):
        evaluate_ranking(scorer, empty)
