"""``full``: the uncompressed fp32 table, the reference every method is measured against."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from pydantic import Field
from torch import Tensor, nn

from slimrec.embeddings.base import EmbeddingTable, gaussian_rows, lookup_rows
from slimrec.embeddings.spec import (
    TableConfig,
    TableStats,
    budget_too_small,
    full_fp32_bytes,
    register,
)


@register
class FullTableConfig(TableConfig):
    method = "full"
    init_std: float = Field(0.1, gt=0)
    # Row-sparse gradients let the optimizer update only the rows of a batch: a step then costs
    # O(batch) instead of O(table), which is what makes CPU training of large tables fast.
    sparse_grad: bool = False

    def build(self, num_embeddings: int, embedding_dim: int, stats: TableStats | None,
              seed: int) -> FullTable:
        return FullTable(num_embeddings, embedding_dim, self, seed)

    @classmethod
    def for_budget(cls, budget_bytes: int, num_embeddings: int, embedding_dim: int,
                   stats: TableStats | None, params: Mapping[str, Any]) -> FullTableConfig:
        needed = full_fp32_bytes(num_embeddings, embedding_dim)
        if budget_bytes < needed:
            raise budget_too_small(cls.method, budget_bytes, needed)
        return cls(**params)


class FullTable(EmbeddingTable):
    """One fp32 row per id: ``num_embeddings * embedding_dim * 4`` bytes."""

    def __init__(self, num_embeddings: int, embedding_dim: int,
                 config: FullTableConfig | None = None, seed: int = 0) -> None:
        config = config or FullTableConfig()
        super().__init__(num_embeddings, embedding_dim, config)
        generator = torch.Generator().manual_seed(seed)
        weight = gaussian_rows(num_embeddings, embedding_dim, config.init_std, generator)
        self.weight = nn.Parameter(weight)

    def lookup(self, ids: Tensor) -> Tensor:
        return lookup_rows(self.weight, ids, self.config.sparse_grad)

    def sparse_parameters(self) -> list[nn.Parameter]:
        return [self.weight] if self.config.sparse_grad else []

    def full_weight(self, chunk_size: int = 65536) -> Tensor:
        return self.weight

    def score_rows(self, queries: Tensor, out: Tensor | None = None,
                   chunk_size: int = 8192) -> Tensor:
        weight = self.weight.detach()  # already fp32 rows: one product, no decoding
        return queries @ weight.T if out is None else torch.mm(queries, weight.T, out=out)
