"""``double_graph``: DoubleGraphHash (Wu et al., WWW 2025): a cluster row plus a hashed row.

Each id sums two rows of one shared table: the row of its graph cluster (exactly as ``graph``)
and a row chosen by a seeded universal hash of the id. Cluster-mates share the first row but
rarely the second, so they are no longer forced onto one vector, while the sharing that matters
most still follows the graph. Budgets are solved as for ``graph``; the hash costs its two
int64 parameters.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from slimrec.embeddings.base import lookup_rows
from slimrec.embeddings.graph import GraphTable, GraphTableConfig
from slimrec.embeddings.hashing_utils import HASH_PARAM_BYTES, register_hash_params, universal_hash
from slimrec.embeddings.spec import TableStats, register


@register
class DoubleGraphTableConfig(GraphTableConfig):
    method = "double_graph"

    def extra_bytes(self, num_embeddings: int, embedding_dim: int) -> int:
        return HASH_PARAM_BYTES

    def build(self, num_embeddings: int, embedding_dim: int, stats: TableStats | None,
              seed: int) -> DoubleGraphTable:
        rows, num_rows, _ = self.row_map(num_embeddings, stats)
        return DoubleGraphTable(num_embeddings, embedding_dim, self, rows, num_rows, seed)


class DoubleGraphTable(GraphTable):
    """``weight: Tensor[num_rows, embedding_dim]``; vector of id =
    ``weight[row_of[id]] + weight[h(id) mod num_rows]``.

    Bytes: ``num_rows * embedding_dim * 4 + num_embeddings * width(row_of) + 16`` (``a``, ``b``).
    """

    rows_summed: ClassVar[int] = 2

    def register_extra(self, generator: torch.Generator) -> None:
        register_hash_params(self, 1, generator)

    def rows(self, ids: Tensor) -> Tensor:
        """Cluster row and hashed row of each id: ``LongTensor[...] -> LongTensor[..., 2]``."""
        hashed = universal_hash(ids, self.hash_a, self.hash_b, self.num_rows)
        return torch.cat([self.row_of[ids].long().unsqueeze(-1), hashed], dim=-1)

    def lookup(self, ids: Tensor) -> Tensor:
        return lookup_rows(self.weight, self.rows(ids)).sum(-2)

    def distinct_rows(self) -> None:
        """The hashed row depends on the id, not on the map value: no shared vectors."""
        return None
