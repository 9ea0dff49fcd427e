"""Matrix factorisation: score(u, i) = <user_table(u), item_table(i)>."""

from __future__ import annotations

import torch
from torch import Tensor

from slimrec.embeddings.base import EmbeddingTable
from slimrec.models.base import RetrievalModel, Scorer, register_model


@register_model
class MF(RetrievalModel):
    """MF (trained with BPR). The two tables may use any compression method."""

    name = "mf"

    def __init__(self, user_table: EmbeddingTable, item_table: EmbeddingTable) -> None:
        super().__init__()
        if user_table.embedding_dim != item_table.embedding_dim:
            raise ValueError(
                f"user and item tables must have the same embedding_dim; got "
                f"{user_table.embedding_dim} and {item_table.embedding_dim}."
            )
        self.user_table = user_table
        self.item_table = item_table

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        return (self.user_table(users) * self.item_table(items)).sum(-1)

    def bpr_terms(self, users: Tensor, positives: Tensor, negatives: Tensor,
                  penalty: bool = True) -> tuple[Tensor, Tensor, Tensor | None]:
        user_vectors = self.user_table(users)
        # One lookup (and one gradient to accumulate) for the positive and negative items.
        item_vectors = self.item_table(torch.cat([positives, negatives]))
        positive_vectors, negative_vectors = item_vectors.split(len(positives))
        positive = (user_vectors * positive_vectors).sum(-1)
        negative = (user_vectors * negative_vectors).sum(-1)
        if not penalty:
            return positive, negative, None
        l2 = (user_vectors.square().sum() + item_vectors.square().sum()) / 2
        return positive, negative, l2

    def scorer(self, stored: bool = False) -> Scorer:
        shared = self.item_table.distinct_rows()
        if shared is not None:
            return self._shared_row_scorer(*shared)
        if stored:
            return self._stored_scorer()
        item_matrix = self.item_table.full_weight().detach()

        def score_all(users: Tensor, out: Tensor | None = None) -> Tensor:
            user_vectors = self.user_table(users).detach()
            if out is None:
                return user_vectors @ item_matrix.T
            return torch.mm(user_vectors, item_matrix.T, out=out)

        return score_all

    def _stored_scorer(self) -> Scorer:
        """Scores computed from the item table as stored, rows decoded chunk by chunk."""

        def score_all(users: Tensor, out: Tensor | None = None) -> Tensor:
            return self.item_table.score_rows(self.user_table(users).detach(), out)

        return score_all

    def _shared_row_scorer(self, vectors: Tensor, index: Tensor) -> Scorer:
        """Items that share a vector are scored once (R dot products per user instead of n),
        then spread to their columns: 24x fewer FLOPs for Gowalla's item table at 5%, and
        bit-identical scores for the ids of one vector, so ties are exact."""
        vectors = vectors.detach()

        def score_all(users: Tensor, out: Tensor | None = None) -> Tensor:
            distinct = self.user_table(users).detach() @ vectors.T
            return torch.index_select(distinct, 1, index, out=out)

        return score_all
