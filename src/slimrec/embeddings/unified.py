"""``unified``: Unified Embedding / feature multiplexing (Coleman et al., NeurIPS 2023).

One table of ``num_rows`` rows of width ``embedding_dim / num_probes`` serves every id: an id is
hashed by ``num_probes`` independent universal hashes and its embedding is the concatenation of
the ``num_probes`` rows it lands on. Collisions rarely repeat across all probes, so two ids
seldom share their whole vector.

The config sets ``shared_across_fields = True``: a multi-field model (the CTR models) builds ONE
such table over the concatenated id space of all its fields, with the whole budget, instead of
one table per field; field ``f``'s id ``i`` is id ``offset_f + i`` there, so each field is hashed
by functions of its own. As a single table (e.g. MF's item table) it is multi-probe hashing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import Tensor, nn

from slimrec.embeddings.base import EmbeddingTable, lookup_rows
from slimrec.embeddings.hashing_utils import HASH_PARAM_BYTES, register_hash_params, universal_hash
from slimrec.embeddings.sizing import fixed_choices, solve_size_field
from slimrec.embeddings.spec import TableConfig, TableStats, register
from slimrec.errors import ConfigError


@register
class UnifiedTableConfig(TableConfig):
    method = "unified"
    shared_across_fields: ClassVar[bool] = True
    num_rows: int = Field(ge=1, description="rows of the shared table; solved from a budget")
    num_probes: int = Field(2, ge=1, description="hashes per id; each gives dim/num_probes")
    init_std: float = Field(0.1, gt=0)

    def chunk_dim(self, embedding_dim: int) -> int:
        if embedding_dim % self.num_probes:
            raise ConfigError(
                f"UnifiedTableConfig.num_probes must divide embedding_dim ({embedding_dim}); "
                f"got {self.num_probes}. Pick a divisor such as 1, 2 or 4."
            )
        return embedding_dim // self.num_probes

    def table_bytes(self, num_embeddings: int, embedding_dim: int) -> int:
        """Exact ``memory_bytes()``: fp32 rows plus one (a, b) pair per probe."""
        return (self.num_rows * self.chunk_dim(embedding_dim) * 4
                + self.num_probes * HASH_PARAM_BYTES)

    def build(self, num_embeddings: int, embedding_dim: int, stats: TableStats | None,
              seed: int) -> UnifiedTable:
        return UnifiedTable(num_embeddings, embedding_dim, self, seed)

    @classmethod
    def for_budget(cls, budget_bytes: int, num_embeddings: int, embedding_dim: int,
                   stats: TableStats | None, params: Mapping[str, Any]) -> UnifiedTableConfig:
        config = fixed_choices(cls, params, free=("num_rows",))
        # num_embeddings * num_probes rows of width dim/num_probes is the full table's size.
        return solve_size_field(config, "num_rows", 1, num_embeddings * config.num_probes,
                                budget_bytes, num_embeddings, embedding_dim)


class UnifiedTable(EmbeddingTable):
    """``weight: Tensor[num_rows, embedding_dim / num_probes]``; id -> concat of its probes' rows.

    Bytes: ``num_rows * (embedding_dim / num_probes) * 4 + 16 * num_probes``.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, config: UnifiedTableConfig,
                 seed: int = 0) -> None:
        super().__init__(num_embeddings, embedding_dim, config)
        generator = torch.Generator().manual_seed(seed)
        weight = torch.randn(config.num_rows, config.chunk_dim(embedding_dim),
                             generator=generator)
        self.weight = nn.Parameter(weight * config.init_std)
        register_hash_params(self, config.num_probes, generator)

    def lookup(self, ids: Tensor) -> Tensor:
        rows = universal_hash(ids, self.hash_a, self.hash_b, self.config.num_rows)  # [..., k]
        return lookup_rows(self.weight, rows).flatten(-2)  # [..., k, dim/k] -> [..., dim]
