"""``double_hash``: two independent universal hashes per id; the two rows are summed.

Two ids collide only if both hashes collide, so far fewer ids share their whole vector than with
one hash of the same size (Zhang et al., RecSys 2020). The rows come from two tables of
``num_buckets`` rows each, or from one shared table with ``shared_table=True``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from pydantic import Field
from torch import Tensor, nn

from slimrec.embeddings.base import EmbeddingTable, lookup_rows
from slimrec.embeddings.hashing_utils import HASH_PARAM_BYTES, register_hash_params, universal_hash
from slimrec.embeddings.sizing import fixed_choices, solve_size_field
from slimrec.embeddings.spec import TableConfig, TableStats, register

NUM_HASHES = 2


@register
class DoubleHashTableConfig(TableConfig):
    method = "double_hash"
    num_buckets: int = Field(ge=1, description="rows per hash table; solved from a budget")
    shared_table: bool = Field(False, description="both hashes index one table of num_buckets")
    init_std: float = Field(0.1, gt=0)

    @property
    def num_rows(self) -> int:
        return self.num_buckets * (1 if self.shared_table else NUM_HASHES)

    def table_bytes(self, num_embeddings: int, embedding_dim: int) -> int:
        """Exact ``memory_bytes()`` of the table this config builds: fp32 rows + two (a, b)."""
        return self.num_rows * embedding_dim * 4 + NUM_HASHES * HASH_PARAM_BYTES

    def build(self, num_embeddings: int, embedding_dim: int, stats: TableStats | None,
              seed: int) -> DoubleHashTable:
        return DoubleHashTable(num_embeddings, embedding_dim, self, seed)

    @classmethod
    def for_budget(cls, budget_bytes: int, num_embeddings: int, embedding_dim: int,
                   stats: TableStats | None, params: Mapping[str, Any]) -> DoubleHashTableConfig:
        config = fixed_choices(cls, params, free=("num_buckets",))
        return solve_size_field(config, "num_buckets", 1, num_embeddings, budget_bytes,
                                num_embeddings, embedding_dim)


class DoubleHashTable(EmbeddingTable):
    """``weight: Tensor[num_rows, embedding_dim]``; vector of id = weight[h1(id)] + weight[h2(id)].

    With two tables, hash k indexes rows ``[k·num_buckets, (k+1)·num_buckets)``.
    Bytes: ``num_rows * embedding_dim * 4 + 32`` (two int64 (a, b) pairs).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, config: DoubleHashTableConfig,
                 seed: int = 0) -> None:
        super().__init__(num_embeddings, embedding_dim, config)
        generator = torch.Generator().manual_seed(seed)
        weight = torch.randn(config.num_rows, embedding_dim, generator=generator)
        # The sum of two independent rows should have the full table's spread.
        self.weight = nn.Parameter(weight * (config.init_std / math.sqrt(NUM_HASHES)))
        register_hash_params(self, NUM_HASHES, generator)
        offsets = torch.zeros(NUM_HASHES, dtype=torch.int64)
        if not config.shared_table:
            offsets = torch.arange(NUM_HASHES) * config.num_buckets
        # Derived from the config, so not part of the saved state (and not counted).
        self.register_buffer("offsets", offsets, persistent=False)

    def rows(self, ids: Tensor) -> Tensor:
        """Rows of each id: ``LongTensor[...] -> LongTensor[..., 2]``."""
        buckets = universal_hash(ids, self.hash_a, self.hash_b, self.config.num_buckets)
        return buckets + self.offsets

    def lookup(self, ids: Tensor) -> Tensor:
        return lookup_rows(self.weight, self.rows(ids)).sum(-2)
