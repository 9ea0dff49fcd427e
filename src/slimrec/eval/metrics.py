"""Ranking metrics as small pure functions over a hit matrix.

``hits`` is a boolean ``(num_users, K)`` tensor: ``hits[u, r]`` is True when the item ranked
``r`` (0-based) for user ``u`` is one of the user's held-out items. ``num_relevant[u] = |T_u|``
is the number of held-out items of the user (>= 1). Each metric is the per-user value; the
evaluator averages over users with at least one held-out item.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _discounts(k: int, device: torch.device) -> Tensor:
    return 1.0 / torch.log2(torch.arange(2, k + 2, device=device, dtype=torch.float64))


def recall(hits: Tensor, num_relevant: Tensor, k: int) -> Tensor:
    """Recall@k = |top-k ∩ T_u| / |T_u| (the LightGCN definition)."""
    return hits[:, :k].sum(1, dtype=torch.float64) / num_relevant


def truncated_recall(hits: Tensor, num_relevant: Tensor, k: int) -> Tensor:
    """Truncated recall@k = |top-k ∩ T_u| / min(k, |T_u|). Higher than ``recall`` by design."""
    return hits[:, :k].sum(1, dtype=torch.float64) / num_relevant.clamp(max=k)


def precision(hits: Tensor, num_relevant: Tensor, k: int) -> Tensor:
    """Precision@k = |top-k ∩ T_u| / k."""
    return hits[:, :k].sum(1, dtype=torch.float64) / k


def hit_rate(hits: Tensor, num_relevant: Tensor, k: int) -> Tensor:
    """Hit@k = 1 if any of the top-k items is in T_u, else 0."""
    return hits[:, :k].any(1).to(torch.float64)


def ndcg(hits: Tensor, num_relevant: Tensor, k: int) -> Tensor:
    """NDCG@k with binary relevance: DCG = Σ_{r<k} hit_r / log2(r + 2), divided by the ideal
    DCG of min(k, |T_u|) hits at the top."""
    discounts = _discounts(k, hits.device)
    top = hits[:, :k].to(torch.float64)  # fewer than k columns when there are < k items
    dcg = (top * discounts[: top.shape[1]]).sum(1)
    ideal = torch.cumsum(discounts, 0)[(num_relevant.clamp(max=k) - 1).long()]
    return dcg / ideal


def mrr(hits: Tensor, num_relevant: Tensor, k: int) -> Tensor:
    """MRR@k = 1 / (rank of the first hit, 1-based) if there is a hit in the top k, else 0."""
    top = hits[:, :k]
    first = top.to(torch.int8).argmax(1).to(torch.float64) + 1.0
    return torch.where(top.any(1), 1.0 / first, torch.zeros_like(first))


METRICS = {
    "recall": recall,
    "ndcg": ndcg,
    "precision": precision,
    "hit": hit_rate,
    "mrr": mrr,
    "truncated_recall": truncated_recall,
}
