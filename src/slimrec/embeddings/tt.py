"""``tt``: tensor-train embeddings (TT-Rec, Yin et al., MLSys 2021).

The ``n × d`` table is viewed as a ``num_cores``-way tensor with row index ``(i_1, …, i_K)``
(``n <= n_1 ⋯ n_K``, mixed radix) and column index ``(j_1, …, j_K)`` (``d = d_1 ⋯ d_K``), and
stored as cores ``G_k: [n_k, r_{k-1}, d_k, r_k]`` with ``r_0 = r_K = 1``. Row ``i`` is the chain
product ``G_1[i_1] G_2[i_2] ⋯ G_K[i_K]``. Both factorisations are chosen automatically, as
balanced as possible; every inner TT rank is ``rank``, capped where a larger rank could not add
expressiveness (at the size of the smaller side of the bond).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from pydantic import Field
from torch import Tensor, nn

from slimrec.embeddings.base import EmbeddingTable
from slimrec.embeddings.sizing import fixed_choices, solve_size_field
from slimrec.embeddings.spec import TableConfig, TableStats, register


def _ends_largest(factors: list[int]) -> list[int]:
    """Put the two largest factors on the end cores, which have one rank bond instead of two."""
    ordered = sorted(factors, reverse=True)
    return [ordered[0], *ordered[2:], ordered[1]] if len(ordered) > 1 else ordered


def row_factors(num_embeddings: int, num_cores: int) -> list[int]:
    """Balanced ``n_1..n_K`` with ``n_1 ⋯ n_K >= num_embeddings`` and as little slack as a
    greedy pass finds (e.g. 40,981 -> [35, 34, 35])."""
    side = max(1, round(num_embeddings ** (1 / num_cores)))
    while side**num_cores < num_embeddings:
        side += 1
    while side > 1 and (side - 1) ** num_cores >= num_embeddings:
        side -= 1
    factors = [side] * num_cores
    for k in range(num_cores):
        while factors[k] > 1 and math.prod(factors) // factors[k] * (factors[k] - 1) \
                >= num_embeddings:
            factors[k] -= 1
    return _ends_largest(factors)


def dim_factors(embedding_dim: int, num_cores: int) -> list[int]:
    """Exact ``d_1 ⋯ d_K = embedding_dim`` with the smallest largest factor (64 -> [4, 4, 4];
    a prime width p gives [p, 1, …, 1])."""
    best: tuple[int, ...] = ()

    def search(rest: int, slots: int, largest: int, chosen: tuple[int, ...]) -> None:
        nonlocal best
        if slots == 1:
            candidate = (*chosen, rest)
            if rest <= largest and (not best or (max(candidate), sum(candidate))
                                    < (max(best), sum(best))):
                best = candidate
            return
        for factor in range(min(largest, rest), 0, -1):
            # Non-increasing factors: the rest must fit in `slots` factors of at most `factor`.
            if rest % factor == 0 and factor**slots >= rest:
                search(rest // factor, slots - 1, factor, (*chosen, factor))

    search(embedding_dim, num_cores, embedding_dim, ())
    return _ends_largest(list(best))


@register
class TTTableConfig(TableConfig):
    method = "tt"
    rank: int = Field(ge=1, description="TT rank of every inner bond; solved from a budget")
    num_cores: int = Field(3, ge=2, le=8)
    init_std: float = Field(0.1, gt=0)

    def core_shapes(self, num_embeddings: int,
                    embedding_dim: int) -> list[tuple[int, int, int, int]]:
        """``(n_k, r_{k-1}, d_k, r_k)`` of each core."""
        rows = row_factors(num_embeddings, self.num_cores)
        dims = dim_factors(embedding_dim, self.num_cores)
        sizes = [n * d for n, d in zip(rows, dims, strict=True)]
        ranks = [1] + [min(self.rank, math.prod(sizes[:k]), math.prod(sizes[k:]))
                       for k in range(1, self.num_cores)] + [1]
        return [(rows[k], ranks[k], dims[k], ranks[k + 1]) for k in range(self.num_cores)]

    def max_useful_rank(self, num_embeddings: int, embedding_dim: int) -> int:
        """The rank above which every bond is capped, so nothing changes."""
        full = self.model_copy(update={"rank": num_embeddings * embedding_dim})
        return max(shape[1] for shape in full.core_shapes(num_embeddings, embedding_dim)[1:])

    def table_bytes(self, num_embeddings: int, embedding_dim: int) -> int:
        """Exact ``memory_bytes()``: the fp32 cores (row indices are mixed-radix arithmetic)."""
        return 4 * sum(math.prod(shape) for shape in self.core_shapes(num_embeddings,
                                                                        embedding_dim))

    def build(self, num_embeddings: int, embedding_dim: int, stats: TableStats | None,
              seed: int) -> TTTable:
        return TTTable(num_embeddings, embedding_dim, self, seed)

    @classmethod
    def for_budget(cls, budget_bytes: int, num_embeddings: int, embedding_dim: int,
                   stats: TableStats | None, params: Mapping[str, Any]) -> TTTableConfig:
        config = fixed_choices(cls, params, free=("rank",))
        return solve_size_field(config, "rank", 1,
                                config.max_useful_rank(num_embeddings, embedding_dim),
                                budget_bytes, num_embeddings, embedding_dim)


class TTTable(EmbeddingTable):
    """``cores[k]: Tensor[n_k, r_{k-1}, d_k, r_k]``; bytes ``4 * sum_k n_k r_{k-1} d_k r_k``."""

    # A step multiplies against the whole core when that forms at most this many products per
    # (prefix, i_k) pair the batch needs; measured on CPU, one GEMM beats per-pair products
    # up to about this ratio.
    dense_factor = 8

    def __init__(self, num_embeddings: int, embedding_dim: int, config: TTTableConfig,
                 seed: int = 0) -> None:
        super().__init__(num_embeddings, embedding_dim, config)
        shapes = config.core_shapes(num_embeddings, embedding_dim)
        self.row_factors = [shape[0] for shape in shapes]
        self.strides = [math.prod(self.row_factors[k + 1:]) for k in range(len(shapes))]
        # An output entry sums prod(inner ranks) products of K core entries; choose the cores'
        # spread s so that sqrt(prod(ranks)) · s^K equals init_std, like the full table.
        paths = math.prod(shape[3] for shape in shapes[:-1])
        std = (config.init_std**2 / paths) ** (1 / (2 * len(shapes)))
        generator = torch.Generator().manual_seed(seed)
        self.cores = nn.ParameterList(
            nn.Parameter(torch.randn(shape, generator=generator) * std) for shape in shapes)

    def lookup(self, ids: Tensor) -> Tensor:
        flat = ids.reshape(-1)
        digits = [(flat // stride) % size
                  for size, stride in zip(self.row_factors, self.strides, strict=True)]
        # partial[slot[b]]: Tensor[d_1⋯d_k, r_k], the product of the first k cores for sample b.
        # Each product is formed once per distinct prefix (i_1..i_k) in the batch, not per sample.
        partial, slot = self.cores[0][:, 0], digits[0]
        for core, digit in zip(self.cores[1:], digits[1:], strict=True):
            needed, slot = torch.unique(slot, return_inverse=True)
            size = core.shape[0]
            keys, pair_slot = torch.unique(slot * size + digit, return_inverse=True)
            left = partial[needed]  # [U, D, r]
            if left.shape[0] * size <= self.dense_factor * keys.numel():
                # Most (prefix, i_k) pairs occur: one GEMM against the whole core beats many
                # tiny per-pair products, and its output stays within a few batches' rows.
                partial = torch.einsum("udr,nrqs->undqs", left, core).flatten(0, 1)
                partial, slot = partial.flatten(1, 2), slot * size + digit
            else:  # few pairs occur: multiply only the core slices those pairs use
                pairs = torch.einsum("pdr,prqs->pdqs", left[keys // size], core[keys % size])
                partial, slot = pairs.flatten(1, 2), pair_slot
        return partial[slot, :, 0].reshape(*ids.shape, self.embedding_dim)
