"""``hash``: the hashing trick. Ids share ``num_buckets`` rows through one hash function.

``hash_kind="modulo"`` maps id -> id mod m (no parameters); ``"universal"`` maps id ->
((a·id + b) mod p) mod m with seeded a, b (see ``hashing_utils``), which spreads ids that are
close together (and ids with a common stride) over different rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from slimrec.embeddings.base import EmbeddingTable, lookup_rows
from slimrec.embeddings.hashing_utils import HASH_PARAM_BYTES, register_hash_params, universal_hash
from slimrec.embeddings.sizing import fixed_choices, solve_size_field
from slimrec.embeddings.spec import TableConfig, TableStats, register


@register
class HashTableConfig(TableConfig):
    method = "hash"
    num_buckets: int = Field(ge=1, description="rows shared by all ids; solved from a budget")
    hash_kind: Literal["modulo", "universal"] = "universal"
    init_std: float = Field(0.1, gt=0)

    def table_bytes(self, num_embeddings: int, embedding_dim: int) -> int:
        """Exact ``memory_bytes()`` of the table this config builds: fp32 rows + (a, b)."""
        hash_bytes = HASH_PARAM_BYTES if self.hash_kind == "universal" else 0
        return self.num_buckets * embedding_dim * 4 + hash_bytes

    def build(self, num_embeddings: int, embedding_dim: int, stats: TableStats | None,
              seed: int) -> HashTable:
        return HashTable(num_embeddings, embedding_dim, self, seed)

    @classmethod
    def for_budget(cls, budget_bytes: int, num_embeddings: int, embedding_dim: int,
                   stats: TableStats | None, params: Mapping[str, Any]) -> HashTableConfig:
        config = fixed_choices(cls, params, free=("num_buckets",))
        # More buckets than ids would only add rows no id maps to (modulo) or can be told apart by.
        return solve_size_field(config, "num_buckets", 1, num_embeddings, budget_bytes,
                                num_embeddings, embedding_dim)


class HashTable(EmbeddingTable):
    """``weight: Tensor[num_buckets, embedding_dim]``; row of id = hash(id).

    Bytes: ``num_buckets * embedding_dim * 4`` plus 16 for (a, b) when universal.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, config: HashTableConfig,
                 seed: int = 0) -> None:
        super().__init__(num_embeddings, embedding_dim, config)
        generator = torch.Generator().manual_seed(seed)
        weight = torch.randn(config.num_buckets, embedding_dim, generator=generator)
        self.weight = nn.Parameter(weight * config.init_std)
        if config.hash_kind == "universal":
            register_hash_params(self, 1, generator)

    def buckets(self, ids: Tensor) -> Tensor:
        """Row of each id: ``LongTensor[...] -> LongTensor[...]``."""
        if self.config.hash_kind == "modulo":
            return ids % self.config.num_buckets
        return universal_hash(ids, self.hash_a, self.hash_b, self.config.num_buckets)[..., 0]

    def lookup(self, ids: Tensor) -> Tensor:
        return lookup_rows(self.weight, self.buckets(ids))

    def distinct_rows(self) -> tuple[Tensor, Tensor]:
        return self._distinct_by_code(self.buckets(torch.arange(self.num_embeddings)))
