"""CSR inference storage shared by the sparse methods (``pruned``, ``dynamic_sparse``).

Not a method (nothing here is registered). Both methods' configs derive from
``SparseMethodConfig``: they keep at most ``nonzero_cap(density, n, d)`` entries, solve
``density`` with ``solve_density`` and export a ``SparseTable``.

CSR layout of a ``SparseTable`` of ``n`` rows, ``d`` columns and ``nnz`` stored entries, index
arrays at the narrowest signed width (``sizing.index_dtype``):
- ``values``: ``float32[nnz]``, the kept entries in row-major order;
- ``columns``: ``index_dtype(d - 1)[nnz]``, the column of each entry (int8 when ``d <= 128``);
- ``row_pointers``: ``index_dtype(max_nonzeros)[n + 1]``, row ``i`` owns entries
  ``row_pointers[i]:row_pointers[i + 1]``. Its width is fixed by the cap on nonzeros, not by the
  actual count, so the bytes of a table never exceed ``csr_bytes(n, d, cap)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction
from typing import Any, Self

import torch
from torch import Tensor

from slimrec.embeddings.base import EmbeddingTable
from slimrec.embeddings.sizing import C, fixed_choices, index_dtype, largest_fitting
from slimrec.embeddings.spec import TableConfig, TableStats, budget_too_small


def csr_bytes(num_embeddings: int, embedding_dim: int, max_nonzeros: int,
              nonzeros: int | None = None) -> int:
    """Bytes of a ``SparseTable`` holding ``nonzeros`` entries (default: the cap) under a cap of
    ``max_nonzeros``: fp32 values + column indices + row pointers."""
    nonzeros = max_nonzeros if nonzeros is None else nonzeros
    return ((num_embeddings + 1) * index_dtype(max_nonzeros).itemsize
            + nonzeros * (4 + index_dtype(embedding_dim - 1).itemsize))


def nonzero_cap(density: float, num_embeddings: int, embedding_dim: int) -> int:
    """Entries a table of ``density`` keeps: ``floor(density * n * d)``, at least 1.

    Shared by ``pruned`` and ``dynamic_sparse``; flooring means a solver that sets
    ``density = k / (n*d)`` never gets more than ``k`` back.
    """
    # Exact rational arithmetic: a float product would round up past k for tables of 2^50+ entries.
    return max(1, math.floor(Fraction(density) * num_embeddings * embedding_dim))


def solve_density(config_cls: type[C], budget_bytes: int, num_embeddings: int,
                  embedding_dim: int, params: Mapping[str, Any]) -> C:
    """The config of ``config_cls`` (a sparse method with a ``density`` field) whose CSR export
    keeps as many entries as ``budget_bytes`` allows."""
    config = fixed_choices(config_cls, params, free=("density",))
    total = num_embeddings * embedding_dim
    # csr_bytes grows with the cap (the pointer width only widens), so the search is exact.
    cap = largest_fitting(1, total, lambda k: csr_bytes(num_embeddings, embedding_dim, k),
                          budget_bytes)
    if cap is None:
        raise budget_too_small(config_cls.method, budget_bytes,
                               csr_bytes(num_embeddings, embedding_dim, 1))
    density = cap / total
    # cap / total rounds to the nearest float, which may sit just above it; step down to the
    # float whose cap is exactly ``cap`` (at most a few steps, and only for enormous tables).
    while nonzero_cap(density, num_embeddings, embedding_dim) > cap:
        density = math.nextafter(density, 0.0)
    return config.model_copy(update={"density": density})


class SparseMethodConfig(TableConfig):
    """Base of the sparse methods' configs. A subclass defines the field ``density``; its
    table exports at most ``nonzero_cap(density, n, d)`` entries as a ``SparseTable``."""

    def table_bytes(self, num_embeddings: int, embedding_dim: int) -> int:
        """Bytes of the CSR export when all ``max_nonzeros`` entries are kept: exact for
        ``dynamic_sparse`` (it always keeps that many), a bound for ``pruned``."""
        return csr_bytes(num_embeddings, embedding_dim,
                         nonzero_cap(self.density, num_embeddings, embedding_dim))

    @classmethod
    def for_budget(cls, budget_bytes: int, num_embeddings: int, embedding_dim: int,
                   stats: TableStats | None, params: Mapping[str, Any]) -> Self:
        return solve_density(cls, budget_bytes, num_embeddings, embedding_dim, params)


class SparseTable(EmbeddingTable):
    """Inference table stored in CSR form (see the module docstring); rows are rebuilt densely
    per lookup. ``config`` is the config of the method that produced it."""

    def __init__(self, num_embeddings: int, embedding_dim: int, config: Any, values: Tensor,
                 columns: Tensor, row_pointers: Tensor) -> None:
        super().__init__(num_embeddings, embedding_dim, config)
        self.register_buffer("values", values)
        self.register_buffer("columns", columns)
        self.register_buffer("row_pointers", row_pointers)

    @classmethod
    def from_dense(cls, weight: Tensor, keep: Tensor, max_nonzeros: int,
                   config: Any) -> SparseTable:
        """Store the entries of ``weight: (n, d)`` where ``keep: bool (n, d)`` is set; at most
        ``max_nonzeros`` of them (the cap fixes the row-pointer width)."""
        num_embeddings, embedding_dim = weight.shape
        counts = keep.sum(dim=1)
        if int(counts.sum()) > max_nonzeros:
            raise ValueError(f"{int(counts.sum())} entries kept, over the cap of {max_nonzeros}.")
        rows, columns = keep.nonzero(as_tuple=True)  # row-major order, as CSR needs
        row_pointers = torch.zeros(num_embeddings + 1, dtype=torch.int64, device=weight.device)
        row_pointers[1:] = counts.cumsum(0)
        return cls(num_embeddings, embedding_dim, config,
                   weight[rows, columns].detach().float().contiguous(),
                   columns.to(index_dtype(embedding_dim - 1)),
                   row_pointers.to(index_dtype(max_nonzeros)))

    @classmethod
    def from_state(cls, config: Any, num_embeddings: int, embedding_dim: int,
                   state: dict[str, Tensor]) -> SparseTable:
        """Rebuild from saved tensors; their lengths and dtypes are taken as stored."""
        return cls(num_embeddings, embedding_dim, config, state["values"], state["columns"],
                   state["row_pointers"])

    @property
    def nonzeros(self) -> int:
        return int(self.values.numel())

    def lookup(self, ids: Tensor) -> Tensor:
        flat = ids.reshape(-1)
        starts = self.row_pointers[flat].long()
        counts = self.row_pointers[flat + 1].long() - starts
        # One output row index and one stored-entry position per gathered entry, without a
        # Python loop over ids: entry j of id b sits at starts[b] + j.
        out_rows = torch.repeat_interleave(torch.arange(flat.numel(), device=flat.device), counts)
        first_entry = torch.repeat_interleave(counts.cumsum(0) - counts, counts)
        positions = starts[out_rows] + torch.arange(out_rows.numel(), device=flat.device) \
            - first_entry
        out = torch.zeros(flat.numel(), self.embedding_dim, dtype=self.values.dtype,
                          device=self.values.device)
        out[out_rows, self.columns[positions].long()] = self.values[positions]
        return out.reshape(*ids.shape, self.embedding_dim)
