"""Full-ranking evaluation: every user is scored against every item.

Training items are excluded from the ranking, and validation items too when testing. Scores are
computed in batched matrix products into one reused buffer, seen items are masked with a single
scatter, and hits are found by binary search in the sorted (user, item) keys of the held-out
split: no Python loop over the users of a batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from slimrec.data.interactions import Interactions
from slimrec.errors import ConfigError, DataError
from slimrec.eval.metrics import METRICS

Scorer = Callable[[Tensor, Tensor | None], Tensor]
DEFINITIONS = {
    "recall": "hits@K / |test items of the user|, averaged over users with >= 1 test item",
    "ndcg": "binary-relevance DCG@K / ideal DCG over min(K, |test items|)",
    "precision": "hits@K / K",
    "hit": "1 if any test item is in the top K",
    "mrr": "1 / rank of the first test item in the top K, else 0",
    "truncated_recall": "hits@K / min(K, |test items|) (inflated variant, for comparison only)",
}


@dataclass(frozen=True)
class RankingResult:
    metrics: dict[str, float]
    num_users: int
    seconds: float


def _keys(matrix: sp.csr_matrix) -> Tensor:
    """Sorted int64 keys ``user * num_items + item`` of a CSR matrix with sorted indices."""
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    return torch.from_numpy(rows * matrix.shape[1] + matrix.indices.astype(np.int64))


def _mask_seen(scores: Tensor, seen: sp.csr_matrix, users: np.ndarray) -> None:
    """Set ``scores[b, i] = -inf`` for every item ``i`` seen by ``users[b]``.

    Gathers the users' CSR rows with array arithmetic rather than scipy row indexing, which
    costs ~0.2 ms of fixed overhead, a fifth of a single-user ``recommend`` call on Gowalla.
    """
    starts = seen.indptr[users].astype(np.int64)
    counts = seen.indptr[users + 1] - starts
    row_index = np.repeat(np.arange(len(users)), counts)
    # Entry j of user b's row sits at starts[b] + j.
    positions = np.arange(counts.sum()) + np.repeat(starts - np.cumsum(counts) + counts, counts)
    scores[torch.from_numpy(row_index),
           torch.from_numpy(seen.indices[positions].astype(np.int64))] = -torch.inf


def evaluate_ranking(
    scorer: Scorer,
    data: Interactions,
    split: str = "test",
    ks: Sequence[int] = (20,),
    metrics: Sequence[str] = ("recall", "ndcg", "precision", "hit", "mrr"),
    batch_size: int = 2048,
) -> RankingResult:
    """Full-ranking metrics at each K for ``split`` ("test" or "val").

    ``scorer(users, out)`` returns the ``(len(users), num_items)`` score matrix of the users,
    written into ``out`` when given.
    """
    if split not in ("test", "val"):
        raise ConfigError(f"split must be 'test' or 'val'; got {split!r}.")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ConfigError(f"unknown metric(s) {unknown}; known: {', '.join(METRICS)}.")
    if not ks or min(ks) < 1:
        raise ConfigError(f"ks must be positive integers; got {list(ks)}.")
    target = data.test if split == "test" else data.val
    seen = data.train + data.val if split == "test" and data.val.nnz else data.train
    seen = sp.csr_matrix(seen)
    num_relevant_all = np.diff(target.indptr)
    users = np.flatnonzero(num_relevant_all)
    if users.size == 0:
        raise DataError(f"{data.name}: the {split} split is empty; nothing to evaluate.")
    max_k = min(max(ks), data.num_items)
    target_keys = _keys(target)
    totals = {f"{m}@{k}": 0.0 for m in metrics for k in ks}
    start = time.perf_counter()
    buffer = torch.empty(min(batch_size, users.size), data.num_items)
    with torch.no_grad():
        for begin in range(0, users.size, batch_size):
            batch = users[begin: begin + batch_size]
            batch_tensor = torch.from_numpy(batch.astype(np.int64))
            scores = scorer(batch_tensor, buffer[: len(batch)])
            _mask_seen(scores, seen, batch)
            top = torch.topk(scores, max_k, dim=1).indices
            keys = batch_tensor[:, None] * data.num_items + top
            position = torch.searchsorted(target_keys, keys).clamp(max=len(target_keys) - 1)
            hits = target_keys[position] == keys
            relevant = torch.from_numpy(num_relevant_all[batch]).to(torch.float64)
            for name in metrics:
                for k in ks:
                    totals[f"{name}@{k}"] += float(METRICS[name](hits, relevant, k).sum())
    seconds = time.perf_counter() - start
    return RankingResult({key: value / users.size for key, value in totals.items()},
                         int(users.size), seconds)
