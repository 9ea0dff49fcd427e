"""The one protocol every embedding table follows: a drop-in for ``torch.nn.Embedding``.

A table maps ``ids: LongTensor[...]`` to ``Tensor[..., embedding_dim]`` and knows its exact
inference footprint. Memory is counted, not estimated: ``memory_bytes()`` is the byte size of
the state dict of ``for_inference()``, i.e. exactly the tensors a saved artifact stores (weights
at their stored width, index maps, hash parameters, scales, masks).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slimrec.errors import DataError


def gaussian_rows(num_rows: int, dim: int, std: float, generator: torch.Generator) -> Tensor:
    """``N(0, std²)`` rows, scaled in place: one table-sized allocation, not two (a 10M-id
    table is 2.6 GB)."""
    return torch.randn(num_rows, dim, generator=generator).mul_(std)


def row_gradient(grad: Tensor, ids: Tensor, num_rows: int, sparse: bool = False) -> Tensor:
    """The gradient of a ``(num_rows, width)`` table from ``grad[b]`` of row ``ids[b]``: summed
    per row, as ``F.embedding``'s backward gives it (a sparse COO tensor when ``sparse``)."""
    if sparse:
        return torch.sparse_coo_tensor(ids.unsqueeze(0), grad, (num_rows, grad.shape[1]),
                                       check_invariants=False)
    return grad.new_zeros(num_rows, grad.shape[1]).index_add_(0, ids, grad)


class _DenseRowLookup(torch.autograd.Function):
    """``weight[ids]`` whose backward is one ``index_add_`` into a zero table.

    ``F.embedding``'s dense CPU backward adds the gradient one id at a time (a kernel call per
    id): on Gowalla's item table (40,981 x 64, 8,192 ids a BPR step) its lookup and backward
    took 3.0 ms against 1.2 ms this way, at one thread. Trainable tables read rows of their
    weights through it (``quantized`` has its own lookup, ``tt`` builds rows from its cores).
    """

    @staticmethod
    def forward(ctx, weight: Tensor, ids: Tensor) -> Tensor:
        flat = ids.reshape(-1)
        ctx.save_for_backward(flat)
        ctx.num_rows = weight.shape[0]
        return weight.index_select(0, flat).reshape(*ids.shape, weight.shape[1])

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (flat,) = ctx.saved_tensors
        return row_gradient(grad.reshape(len(flat), -1), flat, ctx.num_rows), None


def lookup_rows(weight: Tensor, ids: Tensor, sparse: bool = False) -> Tensor:
    """``F.embedding(ids, weight, sparse=sparse)``, with a faster dense backward."""
    if sparse or not (weight.requires_grad and torch.is_grad_enabled()):
        return F.embedding(ids, weight, sparse=sparse)
    return _DenseRowLookup.apply(weight, ids)


def state_bytes(state: dict[str, Tensor]) -> int:
    """Bytes of a state dict at each tensor's stored width."""
    return sum(tensor.numel() * tensor.element_size() for tensor in state.values())


class EmbeddingTable(nn.Module):
    """Base class of all embedding tables.

    Subclasses implement ``lookup(ids)`` (ids already validated, any shape) and may override:
    - ``for_inference()`` when the trained form differs from the stored one (quantization,
      pruning): return a module whose state dict is what inference needs;
    - ``regularizer()`` and ``after_step()``: hooks the training loop calls each step;
    - ``from_state()`` when the constructor needs data-derived arrays (cluster maps).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, config: Any = None) -> None:
        super().__init__()
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        self.config = config

    def lookup(self, ids: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, ids: Tensor) -> Tensor:
        """Rows for ``ids`` (LongTensor of any shape) -> ``Tensor[*ids.shape, embedding_dim]``."""
        if ids.dtype not in (torch.int64, torch.int32):
            raise DataError(f"embedding ids must be integers; got dtype {ids.dtype}.")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.num_embeddings):
            bad = int(ids.max()) if int(ids.max()) >= self.num_embeddings else int(ids.min())
            raise DataError(
                f"embedding id {bad} is out of range for a table of {self.num_embeddings} rows."
            )
        return self.lookup(ids.long())

    # ------------------------------------------------------------------ memory
    def for_inference(self) -> EmbeddingTable:
        """The module that serves this table at inference; ``self`` unless overridden."""
        return self

    def inference_state(self) -> dict[str, Tensor]:
        """Tensors a saved artifact stores for this table."""
        return {key: value.detach() for key, value in self.for_inference().state_dict().items()}

    def memory_bytes(self) -> int:
        """Exact bytes needed at inference, including index maps, codebooks and scales."""
        return state_bytes(self.inference_state())

    def full_fp32_bytes(self) -> int:
        """Bytes of the uncompressed fp32 table this one replaces."""
        return self.num_embeddings * self.embedding_dim * 4

    def compression_ratio(self) -> float:
        return self.full_fp32_bytes() / max(1, self.memory_bytes())

    # ------------------------------------------------------------------ all rows
    def iter_rows(self, chunk_size: int = 65536) -> Iterator[tuple[int, Tensor]]:
        """Yield ``(start, rows[start:start+chunk])`` without materialising the whole table."""
        device = next(iter(self.state_dict().values()), torch.empty(0)).device
        for start in range(0, self.num_embeddings, chunk_size):
            stop = min(start + chunk_size, self.num_embeddings)
            yield start, self.lookup(torch.arange(start, stop, device=device))

    def full_weight(self, chunk_size: int = 65536) -> Tensor:
        """All rows as one ``(num_embeddings, embedding_dim)`` tensor, built chunk by chunk."""
        return torch.cat([rows for _, rows in self.iter_rows(chunk_size)], dim=0)

    def score_rows(self, queries: Tensor, out: Tensor | None = None,
                   chunk_size: int = 8192) -> Tensor:
        """``queries @ rows.T`` against every row, ``[B, num_embeddings]``, computed from the
        stored form ``chunk_size`` rows at a time: no fp32 copy of the table is kept (what
        serving a compressed table in its stored form costs: decoding the rows per call)."""
        if out is None:
            out = queries.new_empty(len(queries), self.num_embeddings)
        for start, rows in self.iter_rows(chunk_size):
            out[:, start: start + len(rows)] = queries @ rows.T
        return out

    def distinct_rows(self) -> tuple[Tensor, Tensor] | None:
        """``(vectors [R, dim], index LongTensor[n])`` with ``self(i) == vectors[index[i]]``,
        when ids share vectors (R < n): a scorer then takes R dot products instead of n, and
        ids of one vector get bit-identical scores. None (the default) when ids do not share."""
        return None

    def _distinct_by_code(self, codes: Tensor) -> tuple[Tensor, Tensor]:
        """``distinct_rows`` for a table whose vector is a function of ``codes[id]`` alone."""
        values, index = torch.unique(codes, return_inverse=True)
        # One id per code (any: they share the vector).
        representative = torch.empty(len(values), dtype=torch.long, device=codes.device)
        representative[index] = torch.arange(len(codes), device=codes.device)
        return self.lookup(representative), index

    # ------------------------------------------------------------------ training hooks
    def regularizer(self) -> Tensor | None:
        """Extra loss term for this table (e.g. a sparsity penalty); None when there is none."""
        return None

    def after_step(self, step: int) -> None:
        """Called after each optimizer step (e.g. to prune and regrow)."""

    def sparse_parameters(self) -> list[nn.Parameter]:
        """Parameters whose gradients are sparse (row-wise); the loop gives them a lazy Adam
        that only touches the rows of the batch. Empty unless the table opts in."""
        return []

    # ------------------------------------------------------------------ artifacts
    @classmethod
    def from_state(cls, config: Any, num_embeddings: int, embedding_dim: int,
                   state: dict[str, Tensor]) -> EmbeddingTable:
        """Rebuild an inference table from its config and saved state."""
        table = config.build(num_embeddings, embedding_dim, stats=None, seed=0)
        table = table.for_inference()
        table.load_state_dict(state)
        return table

    def extra_repr(self) -> str:
        return (f"{self.num_embeddings}, {self.embedding_dim}, "
                f"memory_bytes={self.memory_bytes()}")
