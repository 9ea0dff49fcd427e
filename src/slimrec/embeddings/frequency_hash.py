"""``frequency_hash``: the most frequent ids get their own rows; the rest share hashed rows.

Popularity is heavy-tailed, so a few ids carry most of the training signal (and most of the
test positives): giving them collision-free rows costs little and protects what matters, while
the long tail shares ``num_buckets`` rows through a universal hash. ``head_fraction`` is the share
of the ``num_rows`` rows given to the head. The head is found from ``TableStats.frequencies``
at build time and stored as a sorted list of head ids (``head_ids``, at the smallest integer
width that holds every id); a lookup finds an id's head row by binary search.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, Self

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn

from slimrec.embeddings.base import EmbeddingTable, lookup_rows
from slimrec.embeddings.hashing_utils import HASH_PARAM_BYTES, register_hash_params, universal_hash
from slimrec.embeddings.sizing import fixed_choices, index_dtype, solve_size_field
from slimrec.embeddings.spec import TableConfig, TableStats, register
from slimrec.errors import ConfigError, DataError


@register
class FrequencyHashTableConfig(TableConfig):
    method = "frequency_hash"
    # Hash functions applied to tail ids (their rows are summed); double_frequency uses 2.
    num_hashes: ClassVar[int] = 1
    num_rows: int = Field(ge=1, description="head rows + hashed tail rows; solved from a budget")
    head_fraction: float = Field(0.5, ge=0, le=1,
                                 description="share of num_rows given to the most frequent ids")
    init_std: float = Field(0.1, gt=0)

    def split(self, num_embeddings: int) -> tuple[int, int]:
        """``(num_head, num_buckets)``: dedicated rows and hashed tail rows.

        At least one bucket is kept while any id is left in the tail; when the head covers every
        id, no bucket is needed.
        """
        num_head = min(math.floor(self.head_fraction * self.num_rows), num_embeddings)
        if num_head == num_embeddings:
            return num_head, 0
        num_head = min(num_head, self.num_rows - 1)
        return num_head, self.num_rows - num_head

    def table_bytes(self, num_embeddings: int, embedding_dim: int) -> int:
        """Exact ``memory_bytes()``: fp32 rows + the head id list + the hash parameters."""
        num_head, num_buckets = self.split(num_embeddings)
        id_bytes = index_dtype(num_embeddings - 1).itemsize
        return ((num_head + num_buckets) * embedding_dim * 4 + num_head * id_bytes
                + self.num_hashes * HASH_PARAM_BYTES)

    def head_ids(self, num_embeddings: int, stats: TableStats | None) -> Tensor:
        """Sorted ids of the ``num_head`` most frequent ids (ties go to the smaller id)."""
        if stats is None or stats.frequencies is None:
            raise ConfigError(
                f"{self.method} needs id frequencies to choose its head ids; pass "
                "TableStats(frequencies=...) to build_embedding (slimrec train does this).")
        frequencies = np.asarray(stats.frequencies)
        if frequencies.shape != (num_embeddings,):
            raise DataError(
                f"TableStats.frequencies must have shape ({num_embeddings},), one count per id; "
                f"got {frequencies.shape}.")
        num_head, _ = self.split(num_embeddings)
        head = np.sort(np.argsort(-frequencies, kind="stable")[:num_head])
        return torch.from_numpy(head.astype(np.int64))

    def build(self, num_embeddings: int, embedding_dim: int, stats: TableStats | None,
              seed: int) -> FrequencyHashTable:
        return FrequencyHashTable(num_embeddings, embedding_dim, self,
                                  self.head_ids(num_embeddings, stats), seed)

    @classmethod
    def for_budget(cls, budget_bytes: int, num_embeddings: int, embedding_dim: int,
                   stats: TableStats | None, params: Mapping[str, Any]) -> Self:
        config = fixed_choices(cls, params, free=("num_rows",))
        # table_bytes is non-decreasing in num_rows on [1, n]: the head and the total both grow.
        return solve_size_field(config, "num_rows", 1, num_embeddings, budget_bytes,
                                num_embeddings, embedding_dim)


class FrequencyHashTable(EmbeddingTable):
    """``weight: Tensor[num_head + num_buckets, embedding_dim]``.

    Row ``k < num_head`` belongs to head id ``head_ids[k]``; a tail id gets the sum of rows
    ``num_head + h_j(id) mod num_buckets`` over the config's ``num_hashes`` hash functions.
    Bytes: ``(num_head + num_buckets) * embedding_dim * 4 + num_head * width(head_ids)
    + 16 * num_hashes``.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int,
                 config: FrequencyHashTableConfig, head_ids: Tensor, seed: int = 0) -> None:
        super().__init__(num_embeddings, embedding_dim, config)
        self.num_head, self.num_buckets = config.split(num_embeddings)
        if head_ids.shape != (self.num_head,):
            raise DataError(f"{type(self).__name__} needs {self.num_head} head ids; got a "
                            f"tensor of shape {tuple(head_ids.shape)}.")
        generator = torch.Generator().manual_seed(seed)
        weight = torch.randn(self.num_head + self.num_buckets, embedding_dim, generator=generator)
        # A tail vector sums num_hashes rows; scale those so every vector has the same spread.
        scale = torch.full((weight.shape[0], 1), config.init_std / math.sqrt(config.num_hashes))
        scale[: self.num_head] = config.init_std
        self.weight = nn.Parameter(weight * scale)
        self.register_buffer("head_ids", head_ids.to(index_dtype(num_embeddings - 1)))
        register_hash_params(self, config.num_hashes, generator)

    def lookup(self, ids: Tensor) -> Tensor:
        if self.num_buckets == 0:  # the head holds every id, in order
            return lookup_rows(self.weight, ids)
        tail_rows = self.num_head + universal_hash(ids, self.hash_a, self.hash_b, self.num_buckets)
        vectors = lookup_rows(self.weight, tail_rows).sum(-2)
        if self.num_head == 0:
            return vectors
        position = torch.searchsorted(self.head_ids, ids.to(self.head_ids.dtype))
        position = position.clamp_max(self.num_head - 1)
        is_head = self.head_ids[position] == ids
        return torch.where(is_head.unsqueeze(-1), lookup_rows(self.weight, position), vectors)

    @classmethod
    def from_state(cls, config: FrequencyHashTableConfig, num_embeddings: int,
                   embedding_dim: int, state: dict[str, Tensor]) -> FrequencyHashTable:
        """Rebuild from a saved state: the head ids come from the state, not from data."""
        table = cls(num_embeddings, embedding_dim, config, state["head_ids"].long())
        table.load_state_dict(state)
        return table
