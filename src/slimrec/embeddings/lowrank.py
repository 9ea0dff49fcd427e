"""``lowrank``: the table is a product ``E = A · B`` of two thin factors, trained end to end.

``A`` has one ``rank``-wide row per id and ``B`` maps rank to width, so the table costs
``rank · (n + d)`` floats instead of ``n · d``. Every id keeps its own (short) row: there are no
collisions, only a shared basis of ``rank`` directions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Self

import torch
from pydantic import Field
from torch import Tensor, nn

from slimrec.embeddings.base import EmbeddingTable, lookup_rows
from slimrec.embeddings.sizing import fixed_choices, solve_size_field
from slimrec.embeddings.spec import TableConfig, TableStats, register


@register
class LowRankTableConfig(TableConfig):
    method = "lowrank"
    rank: int = Field(ge=1, description="inner width of the factors; solved from a budget")
    init_std: float = Field(0.1, gt=0)

    def table_bytes(self, num_embeddings: int, embedding_dim: int) -> int:
        """Exact ``memory_bytes()``: the two fp32 factors."""
        return 4 * self.rank * (num_embeddings + embedding_dim)

    def build(self, num_embeddings: int, embedding_dim: int, stats: TableStats | None,
              seed: int) -> LowRankTable:
        return LowRankTable(num_embeddings, embedding_dim, self, seed)

    @classmethod
    def for_budget(cls, budget_bytes: int, num_embeddings: int, embedding_dim: int,
                   stats: TableStats | None, params: Mapping[str, Any]) -> Self:
        config = fixed_choices(cls, params, free=("rank",))
        # A rank above min(n, d) adds bytes without adding expressiveness.
        return solve_size_field(config, "rank", 1, min(num_embeddings, embedding_dim),
                                budget_bytes, num_embeddings, embedding_dim)


class LowRankTable(EmbeddingTable):
    """``left: Tensor[n, rank]`` and ``right: Tensor[rank, d]``; row ``i`` is ``left[i] @ right``.

    Bytes: ``4 * rank * (n + d)``.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, config: LowRankTableConfig,
                 seed: int = 0) -> None:
        super().__init__(num_embeddings, embedding_dim, config)
        generator = torch.Generator().manual_seed(seed)
        # Entries of left @ right sum `rank` products of N(0, s²) pairs: spread sqrt(rank)·s².
        # Both factors get the same s so neither dominates the early updates.
        std = math.sqrt(config.init_std / math.sqrt(config.rank))
        left = torch.randn(num_embeddings, config.rank, generator=generator)
        right = torch.randn(config.rank, embedding_dim, generator=generator)
        self.left = nn.Parameter(left * std)
        self.right = nn.Parameter(right * std)

    def lookup(self, ids: Tensor) -> Tensor:
        return lookup_rows(self.left, ids) @ self.right

    def full_weight(self, chunk_size: int = 65536) -> Tensor:
        return self.left @ self.right
