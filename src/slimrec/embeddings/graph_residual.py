"""``graph_residual``: a graph cluster row plus a per-id low-rank residual (SlimRec's own).

GraphHash gives all ids of a cluster one vector, so MF can neither rank the items of a cluster
against each other (every user scores them the same) nor tell its users apart. Hashing a second
row (``double_graph``) separates them with a random, shared row. Here every id gets ``rank``
numbers of its own instead, mapped into the embedding space by one shared ``rank x dim`` basis:

    vector(id) = weight[row_of[id]] + codes[id] @ basis

The cluster row carries what the community shares; the residual carries what sets the id
apart within it (popularity, taste), with no collision at all. Under a budget, ``residual_share``
of the bytes go to the residual (``rank = floor(share * budget / (4 * (num_embeddings + dim)))``,
at least 1) and the rest to cluster rows, solved as for ``graph``.
"""

from __future__ import annotations

import math
from typing import ClassVar, Self

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from slimrec.embeddings.graph import GraphTable, GraphTableConfig
from slimrec.embeddings.spec import TableStats, register


@register
class GraphResidualTableConfig(GraphTableConfig):
    method = "graph_residual"
    solved: ClassVar[tuple[str, ...]] = ("num_rows", "resolution", "rank")
    rank: int = Field(1, ge=1, description="per-id residual width; solved from a budget")
    residual_share: float = Field(0.25, gt=0, lt=1,
                                  description="share of a budget given to the residual")

    def extra_bytes(self, num_embeddings: int, embedding_dim: int) -> int:
        """fp32 ``codes[num_embeddings, rank]`` and ``basis[rank, embedding_dim]``."""
        return self.rank * (num_embeddings + embedding_dim) * 4

    def with_extras_for(self, budget_bytes: int, num_embeddings: int,
                        embedding_dim: int) -> Self:
        per_rank = (num_embeddings + embedding_dim) * 4
        rank = math.floor(self.residual_share * budget_bytes / per_rank)
        # Leave room for at least one row and the map, when the budget allows rank 1 at all.
        one_row = self.model_copy(update={"num_rows": 1, "rank": 1})
        room = budget_bytes - one_row.table_bytes(num_embeddings, embedding_dim) + per_rank
        return self.model_copy(update={"rank": max(1, min(rank, room // per_rank))})

    def build(self, num_embeddings: int, embedding_dim: int, stats: TableStats | None,
              seed: int) -> GraphResidualTable:
        rows, num_rows, _ = self.row_map(num_embeddings, stats)
        return GraphResidualTable(num_embeddings, embedding_dim, self, rows, num_rows, seed)


class GraphResidualTable(GraphTable):
    """``weight[num_rows, dim]``, ``codes[num_embeddings, rank]``, ``basis[rank, dim]``;
    vector of id = ``weight[row_of[id]] + codes[id] @ basis``.

    Bytes: ``num_rows * dim * 4 + num_embeddings * width(row_of)
    + rank * (num_embeddings + dim) * 4``.
    """

    rows_summed: ClassVar[int] = 2

    def register_extra(self, generator: torch.Generator) -> None:
        rank = self.config.rank
        codes = torch.randn(self.num_embeddings, rank, generator=generator)
        basis = torch.randn(rank, self.embedding_dim, generator=generator)
        # codes @ basis then has the spread of one summed row: init_std / sqrt(2) per entry.
        self.codes = nn.Parameter(codes * (self.config.init_std / math.sqrt(self.rows_summed)))
        self.basis = nn.Parameter(basis / math.sqrt(rank))

    def lookup(self, ids: Tensor) -> Tensor:
        return super().lookup(ids) + F.embedding(ids, self.codes) @ self.basis
