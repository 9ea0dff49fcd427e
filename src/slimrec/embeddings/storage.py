"""Compact inference storage shared by several methods: narrow index dtypes and CSR tables.

Not a method (nothing here is registered). ``pruned`` and ``dynamic_sparse`` both export a
``SparseTable``; ``mixed_dim`` stores its id map at ``index_dtype`` width.

CSR layout of a ``SparseTable`` of ``n`` rows, ``d`` columns and ``nnz`` stored entries:
- ``values``: ``float32[nnz]``, the kept entries in row-major order;
- ``columns``: ``index_dtype(d - 1)[nnz]``, the column of each entry (uint8 when ``d <= 256``);
- ``row_pointers``: ``index_dtype(max_nonzeros)[n + 1]``, row ``i`` owns entries
  ``row_pointers[i]:row_pointers[i + 1]``. Its width is fixed by the cap on nonzeros, not by the
  actual count, so the bytes of a table never exceed ``csr_bytes(n, d, cap)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from slimrec.embeddings.base import EmbeddingTable

_INDEX_DTYPES = (torch.uint8, torch.int16, torch.int32, torch.int64)


def index_dtype(max_value: int) -> torch.dtype:
    """The narrowest of uint8/int16/int32/int64 that holds every integer in ``[0, max_value]``."""
    for dtype in _INDEX_DTYPES:
        if max_value <= torch.iinfo(dtype).max:
            return dtype
    raise ValueError(f"index {max_value} does not fit in int64.")


def index_bytes(max_value: int) -> int:
    """Bytes per entry of ``index_dtype(max_value)``."""
    return torch.empty(0, dtype=index_dtype(max_value)).element_size()


def csr_bytes(num_embeddings: int, embedding_dim: int, max_nonzeros: int,
              nonzeros: int | None = None) -> int:
    """Bytes of a ``SparseTable`` holding ``nonzeros`` entries (default: the cap) under a cap of
    ``max_nonzeros``: fp32 values + column indices + row pointers."""
    nonzeros = max_nonzeros if nonzeros is None else nonzeros
    return ((num_embeddings + 1) * index_bytes(max_nonzeros)
            + nonzeros * (4 + index_bytes(embedding_dim - 1)))


def max_nonzeros_for_budget(budget_bytes: int, num_embeddings: int, embedding_dim: int) -> int:
    """The largest cap ``k <= n*d`` with ``csr_bytes(n, d, k) <= budget_bytes``; 0 when even one
    entry does not fit. ``csr_bytes`` grows with ``k`` (the pointer width only widens), so a
    binary search over ``k`` is exact and takes ``O(log(n*d))`` steps at any table size."""
    low, high = 0, num_embeddings * embedding_dim
    while low < high:
        middle = (low + high + 1) // 2
        if csr_bytes(num_embeddings, embedding_dim, middle) <= budget_bytes:
            low = middle
        else:
            high = middle - 1
    return low


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
