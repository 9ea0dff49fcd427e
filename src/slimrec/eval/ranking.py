"""Full-ranking evaluation: every user is scored against every item.

Training items are excluded from the ranking, and validation items too when testing. Scores are
computed in batched matrix products into one reused buffer, seen items are masked with a single
scatter, and hits are found by binary search in the sorted (user, item) keys of the held-out
split: no Python loop over the users of a batch.

Ties. Items are ranked by score, and items of exactly equal score by a seeded random order of
the items (``tie_order(num_items, tie_seed)``), never by id. Ids that share an embedding row
(hash, graph, qr, ...) score identically, and ``torch.topk`` alone would keep the lowest ids,
which on most datasets are the most popular items: ranking by id inflates the metrics of such
tables. With the random order, each metric is an unbiased draw of its value under random
tie-breaking. Untied scores are ranked exactly as before: the order only decides between equal
floats. ``RankingResult.tied_users[K]`` counts the users whose K-th and (K+1)-th items tie
(the tie decides which of them are in the top K).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

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
TIE_RULE = ("items of exactly equal score are ordered by a seeded random permutation of the "
            "items (tie_seed), not by id")


@dataclass(frozen=True)
class RankingResult:
    """Mean metrics over the ``num_users`` users with a held-out item; ``tied_users[K]``: how
    many of them had a score tie across the cutoff K, broken by the order of ``tie_seed``."""

    metrics: dict[str, float]
    num_users: int
    seconds: float
    tied_users: dict[int, int] = field(default_factory=dict)
    tie_seed: int = 0

    def details(self) -> dict[str, Any]:
        """What results.json records of the evaluation beside the metrics."""
        return {**evaluation_record(self.num_users, TIE_RULE, self.tied_users),
                "tie_seed": self.tie_seed}


def evaluation_record(users: int, tie_rule: str, tied_users: dict[int, int]) -> dict[str, Any]:
    """The record every evaluator writes beside its metrics: the users evaluated, the rule
    that broke score ties, and how many users had a tie across each cutoff K."""
    return {"users": users, "tie_rule": tie_rule,
            "users_tied_at_cutoff": {str(k): n for k, n in tied_users.items()}}


def tie_order(num_items: int, seed: int) -> Tensor:
    """Rank of each item in the seeded random order that breaks score ties: ``int64[n]``."""
    return torch.randperm(num_items, generator=torch.Generator().manual_seed(seed))


# Columns per block of ``block_topk``: measured fastest on Gowalla's 40,981 items (16-256 tried).
TOPK_BLOCK = 64


def block_topk(scores: Tensor, k: int, block: int = TOPK_BLOCK) -> tuple[Tensor, Tensor]:
    """``torch.topk(scores, k, dim=1)`` (values descending, and the columns holding them), about
    twice as fast on long rows.

    Only the ``k`` blocks of ``block`` columns with the largest maxima can hold the top ``k``:
    ``k`` blocks each hold a value at least the k-th block maximum, so the k-th score is no
    smaller, and every block outside them has a maximum no larger. One pass of block maxima
    and a top-k over ``k * block`` candidates then replace a top-k over the whole row. The
    values are exactly those of ``torch.topk``; among equal values the columns may differ, as
    they may between ``torch.topk`` calls (callers that care break ties by ``tie_order``).
    """
    blocks = scores.shape[1] // block
    if blocks < 2 * k:
        return torch.topk(scores, k, dim=1)
    whole = blocks * block
    maxima = scores[:, :whole].unflatten(1, (blocks, block)).amax(dim=2)
    chosen = torch.topk(maxima, k, dim=1, sorted=False).indices
    columns = (chosen[:, :, None] * block + torch.arange(block)).flatten(1)
    # The last columns, fewer than a block, are always candidates.
    tail = torch.arange(whole, scores.shape[1]).expand(len(scores), -1)
    columns = torch.cat([columns, tail], dim=1)
    values, where = torch.topk(scores.gather(1, columns), k, dim=1)
    return values, columns.gather(1, where)


def _fill_tied(scores: Tensor, values: Tensor, top: Tensor, rows: Tensor, rank: Tensor,
               chunk: int = 256) -> None:
    """For ``rows`` whose k-th score ties with items outside ``top`` (k = ``top.shape[1]``),
    replace the tied tail of ``top`` by the tied items of lowest ``rank``, in rank order.

    Every item scoring above the k-th value is already in ``top``; only the slots holding the
    k-th value are re-chosen, among all the items of that value. Works ``chunk`` rows at a time
    to bound the (rows, num_items) scratch.
    """
    k = top.shape[1]
    slot = torch.arange(k)
    for begin in range(0, len(rows), chunk):
        part = rows[begin: begin + chunk]
        threshold = values[part, k - 1, None]
        above = (values[part] > threshold).sum(1, keepdim=True)
        # Tied items get len(rank) - rank >= 1 and untied ones 0: the largest are the tied
        # items of lowest rank.
        candidates = torch.where(scores[part] == threshold, len(rank) - rank, 0)
        chosen = block_topk(candidates, k)[1]
        refill = chosen.gather(1, (slot - above).clamp(min=0))
        top[part] = torch.where(slot >= above, refill, top[part])


def neutral_top(scores: Tensor, k: int, rank: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The first ``k`` items of each row ordered by (score descending, ``rank`` ascending):
    ``(items LongTensor[B, k], their scores [B, k], crossing BoolTensor[B])``, where
    ``crossing`` marks rows whose k-th score ties with an item left out. ``k`` must not exceed
    the row length."""
    width = min(k + 1, scores.shape[1])
    values, top = block_topk(scores, width)
    crossing = torch.zeros(len(scores), dtype=torch.bool)
    if width > k:
        crossing = values[:, k] == values[:, k - 1]
        values, top = values[:, :k], top[:, :k]
        rows = crossing.nonzero().squeeze(1)
        if rows.numel():
            _fill_tied(scores, values, top, rows, rank)
    # Inside the list, equal scores follow the rank too: sort by rank, then stably by score.
    by_rank = torch.argsort(rank[top], dim=1)
    top, values = top.gather(1, by_rank), values.gather(1, by_rank)
    by_score = torch.sort(values, dim=1, descending=True, stable=True).indices
    return top.gather(1, by_score), values.gather(1, by_score), crossing


def _ties_at(values: Tensor, crossing: Tensor, ks: Sequence[int]) -> dict[int, int]:
    """Users whose K-th score ties with the next item's, per K. Only finite scores count: a
    user with fewer than K unseen items ties among masked items, which no rule can change."""
    max_k = values.shape[1]
    counts = {}
    for k in ks:
        if k < max_k:
            tied = values[:, k - 1] == values[:, k]
        elif k == max_k:
            tied = crossing
        else:  # every item is in the top K
            counts[k] = 0
            continue
        counts[k] = int((tied & values[:, k - 1].isfinite()).sum())
    return counts


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
    tie_seed: int = 0,
    max_users: int | None = None,
) -> RankingResult:
    """Full-ranking metrics at each K for ``split`` ("test" or "val").

    ``scorer(users, out)`` returns the ``(len(users), num_items)`` score matrix of the users,
    written into ``out`` when given. Items of equal score are ranked by the random item order
    of ``tie_seed`` (see the module docstring). ``max_users``: rank only a random sample of this
    many of the split's users, drawn by ``tie_seed`` (the same users at every call with the same
    seed, so successive validation checks compare like with like); every user when None.
    """
    if split not in ("test", "val"):
        raise ConfigError(f"split must be 'test' or 'val'; got {split!r}.")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ConfigError(f"unknown metric(s) {unknown}; known: {', '.join(METRICS)}.")
    if not ks or min(ks) < 1:
        raise ConfigError(f"ks must be positive integers; got {list(ks)}.")
    if max_users is not None and max_users < 1:
        raise ConfigError(f"max_users must be a positive integer; got {max_users}.")
    target = data.test if split == "test" else data.val
    seen = data.train + data.val if split == "test" and data.val.nnz else data.train
    seen = sp.csr_matrix(seen)
    num_relevant_all = np.diff(target.indptr)
    users = np.flatnonzero(num_relevant_all)
    if users.size == 0:
        raise DataError(f"{data.name}: the {split} split is empty; nothing to evaluate.")
    if max_users is not None and max_users < users.size:
        users = np.sort(np.random.default_rng(tie_seed).choice(users, max_users, replace=False))
    max_k = min(max(ks), data.num_items)
    target_keys = _keys(target)
    totals = {f"{m}@{k}": 0.0 for m in metrics for k in ks}
    tied = dict.fromkeys(ks, 0)
    rank = tie_order(data.num_items, tie_seed)
    start = time.perf_counter()
    buffer = torch.empty(min(batch_size, users.size), data.num_items)
    with torch.no_grad():
        for begin in range(0, users.size, batch_size):
            batch = users[begin: begin + batch_size]
            batch_tensor = torch.from_numpy(batch.astype(np.int64))
            scores = scorer(batch_tensor, buffer[: len(batch)])
            _mask_seen(scores, seen, batch)
            top, values, crossing = neutral_top(scores, max_k, rank)
            for k, count in _ties_at(values, crossing, ks).items():
                tied[k] += count
            keys = batch_tensor[:, None] * data.num_items + top
            position = torch.searchsorted(target_keys, keys).clamp(max=len(target_keys) - 1)
            hits = target_keys[position] == keys
            relevant = torch.from_numpy(num_relevant_all[batch]).to(torch.float64)
            for name in metrics:
                for k in ks:
                    totals[f"{name}@{k}"] += float(METRICS[name](hits, relevant, k).sum())
    seconds = time.perf_counter() - start
    return RankingResult({key: value / users.size for key, value in totals.items()},
                         int(users.size), seconds, tied, tie_seed)
