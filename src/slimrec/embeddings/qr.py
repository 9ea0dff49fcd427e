"""``qr``: quotient–remainder compositional embeddings (Shi et al., KDD 2020).

Id ``i`` combines row ``i mod m`` of a remainder table (``m = num_buckets`` rows) with row
``i // m`` of a quotient table (``ceil(n / m)`` rows). No two ids share both rows, so every id
gets a distinct vector from ``m + ceil(n / m)`` rows instead of ``n``. The ``combiner`` is
``multiply`` (element-wise), ``add``, or ``concat`` (each table holds part of the width; the
remainder table, the one with more rows, gets the larger half when the width is odd).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from slimrec.embeddings.base import EmbeddingTable, lookup_rows
from slimrec.embeddings.sizing import fixed_choices, solve_size_field
from slimrec.embeddings.spec import TableConfig, TableStats, register
from slimrec.errors import ConfigError


def _balanced_buckets(num_embeddings: int) -> int:
    """Smallest ``m`` with ``m·(m+1) >= n``: the balanced split, where the solver starts.

    From there on one more remainder row removes at most one quotient row, and the remainder
    table is at least as wide as the quotient table, so the size never decreases as ``m`` grows
    and a binary search applies. With equal widths a smaller ``m`` is the same split with the
    two tables' roles swapped, so this is also the smallest table.
    """
    m = max(1, math.isqrt(num_embeddings) - 1)
    while m * (m + 1) < num_embeddings:
        m += 1
    return m


@register
class QRTableConfig(TableConfig):
    method = "qr"
    num_buckets: int = Field(ge=1, description="rows of the remainder table; solved from a budget")
    combiner: Literal["multiply", "add", "concat"] = "multiply"
    init_std: float = Field(0.1, gt=0)

    def widths(self, embedding_dim: int) -> tuple[int, int]:
        """``(quotient_dim, remainder_dim)`` of the two tables."""
        if self.combiner != "concat":
            return embedding_dim, embedding_dim
        if embedding_dim < 2:
            raise ConfigError(f"QRTableConfig.combiner='concat' needs embedding_dim >= 2 to split "
                              f"it between two tables; got {embedding_dim}. Use 'multiply'.")
        return embedding_dim // 2, embedding_dim - embedding_dim // 2

    def num_quotients(self, num_embeddings: int) -> int:
        return -(-num_embeddings // self.num_buckets)

    def table_bytes(self, num_embeddings: int, embedding_dim: int) -> int:
        """Exact ``memory_bytes()``: the two fp32 tables (ids are split by arithmetic, no map)."""
        quotient_dim, remainder_dim = self.widths(embedding_dim)
        return 4 * (self.num_quotients(num_embeddings) * quotient_dim
                    + self.num_buckets * remainder_dim)

    def build(self, num_embeddings: int, embedding_dim: int, stats: TableStats | None,
              seed: int) -> QRTable:
        return QRTable(num_embeddings, embedding_dim, self, seed)

    @classmethod
    def for_budget(cls, budget_bytes: int, num_embeddings: int, embedding_dim: int,
                   stats: TableStats | None, params: Mapping[str, Any]) -> QRTableConfig:
        config = fixed_choices(cls, params, free=("num_buckets",))
        # Grow the remainder table from the balanced split (see _balanced_buckets).
        return solve_size_field(config, "num_buckets", _balanced_buckets(num_embeddings),
                                num_embeddings, budget_bytes, num_embeddings, embedding_dim)


class QRTable(EmbeddingTable):
    """``quotient: Tensor[ceil(n/m), quotient_dim]`` and ``remainder: Tensor[m, remainder_dim]``.

    Bytes: ``4 * (ceil(n/m) * quotient_dim + m * remainder_dim)``.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, config: QRTableConfig,
                 seed: int = 0) -> None:
        super().__init__(num_embeddings, embedding_dim, config)
        quotient_dim, remainder_dim = config.widths(embedding_dim)
        generator = torch.Generator().manual_seed(seed)
        quotient = torch.randn(config.num_quotients(num_embeddings), quotient_dim,
                               generator=generator)
        remainder = torch.randn(config.num_buckets, remainder_dim, generator=generator)
        # The combined vector starts with the full table's spread, init_std.
        if config.combiner == "multiply":
            # The quotient factor starts near 1: each id starts as its remainder row (a modulo
            # hash) and gets full-size gradients, where two factors of spread sqrt(init_std)
            # would scale every early gradient down by sqrt(init_std).
            quotient = 1.0 + config.init_std * quotient
            remainder = config.init_std * remainder
        else:  # a sum of two rows needs each at init_std / sqrt(2), a concatenation at init_std
            std = config.init_std / math.sqrt(2) if config.combiner == "add" else config.init_std
            quotient, remainder = std * quotient, std * remainder
        self.quotient = nn.Parameter(quotient)
        self.remainder = nn.Parameter(remainder)

    def lookup(self, ids: Tensor) -> Tensor:
        buckets = self.config.num_buckets
        quotient = lookup_rows(self.quotient, ids // buckets)
        remainder = lookup_rows(self.remainder, ids % buckets)
        if self.config.combiner == "multiply":
            return quotient * remainder
        if self.config.combiner == "add":
            return quotient + remainder
        return torch.cat([quotient, remainder], dim=-1)
