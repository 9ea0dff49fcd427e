"""``mixed_dim``: frequency-bucketed dimensions (MDE, Ginart et al., ISIT 2021).

Ids are sorted by training frequency (most frequent first, ties by id) and cut into
``num_buckets`` buckets of equal size. Bucket ``k`` stores ``d_k``-dimensional rows and, when
``d_k < d``, a projection ``(d_k, d)`` to the model dimension; a bucket at full width needs none.
Following MDE's power law, ``d_k = round(d_0 * ((p_k + 1) / (p_0 + 1)) ** alpha)`` clipped to
``[1, d_0]``, where ``p_k`` is the mean frequency of bucket ``k`` (add-one smoothed so that
never-seen ids are defined). The budget solver picks the largest head dimension ``d_0 <= d``
whose table fits; ``dims`` may also be given outright.

Inference state: the bucket rows and projections (fp32), ``positions`` (each id's rank in
frequency order, at the narrowest integer width) and ``bucket_offsets`` (``int64[K + 1]``)::

    bytes = 4 * sum_k n_k * d_k + 4 * sum_{k: d_k < d} d_k * d + n * width(n - 1) + 8 * (K + 1)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Self

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn

from slimrec.embeddings.base import EmbeddingTable, gaussian_rows, lookup_rows
from slimrec.embeddings.sizing import fixed_choices, index_dtype
from slimrec.embeddings.spec import SparseGrad, TableConfig, TableStats, budget_too_small, register
from slimrec.errors import ConfigError, DataError


def bucket_sizes(num_embeddings: int, num_buckets: int) -> list[int]:
    """Sizes of ``min(num_buckets, n)`` equal buckets (the first ``n % K`` one larger)."""
    count = min(num_buckets, num_embeddings)
    base, extra = divmod(num_embeddings, count)
    return [base + (1 if k < extra else 0) for k in range(count)]


def frequency_order(frequencies: np.ndarray) -> np.ndarray:
    """Ids from most to least frequent, ties broken by id (stable)."""
    return np.argsort(-np.asarray(frequencies, dtype=np.float64), kind="stable")


def bucket_popularity(frequencies: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """Mean frequency of each bucket, buckets taken in frequency order."""
    ordered = np.asarray(frequencies, dtype=np.float64)[frequency_order(frequencies)]
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    return np.array([ordered[bounds[k]: bounds[k + 1]].mean() for k in range(len(sizes))])


def power_law_dims(popularity: Sequence[float], head_dim: int, alpha: float) -> list[int]:
    """MDE dims ``round(head_dim * ((p_k + 1) / (p_0 + 1)) ** alpha)``, clipped to
    ``[1, head_dim]``."""
    popularity = np.asarray(popularity, dtype=np.float64)
    ratio = (popularity + 1.0) / (popularity[0] + 1.0)
    dims = np.clip(np.round(head_dim * ratio ** alpha), 1, head_dim)
    return [int(dim) for dim in dims]


def mixed_dim_bytes(sizes: Sequence[int], dims: Sequence[int], embedding_dim: int) -> int:
    """Inference bytes of a table with buckets of ``sizes`` and widths ``dims`` (see module)."""
    num_embeddings = sum(sizes)
    rows = sum(size * dim for size, dim in zip(sizes, dims, strict=True))
    projections = sum(dim * embedding_dim for dim in dims if dim < embedding_dim)
    return (4 * (rows + projections) + num_embeddings * index_dtype(num_embeddings - 1).itemsize
            + 8 * (len(sizes) + 1))


def solve_head_dim(sizes: Sequence[int], popularity: Sequence[float], embedding_dim: int,
                   alpha: float, budget_bytes: int) -> list[int] | None:
    """Power-law dims with the largest head dimension whose table fits; None if none does."""
    # Bytes are not monotone in the head dim (a bucket reaching full width drops its
    # projection), so try every head dim from the widest down; there are only d of them.
    for head_dim in range(embedding_dim, 0, -1):
        dims = power_law_dims(popularity, head_dim, alpha)
        if mixed_dim_bytes(sizes, dims, embedding_dim) <= budget_bytes:
            return dims
    return None


def _frequencies(stats: TableStats | None, num_embeddings: int) -> np.ndarray:
    if stats is None or stats.frequencies is None:
        raise ConfigError("method 'mixed_dim' needs id frequencies (TableStats.frequencies) to "
                          "sort ids into buckets; pass stats to build_embedding.")
    frequencies = np.asarray(stats.frequencies)
    if frequencies.shape != (num_embeddings,):
        raise DataError(f"TableStats.frequencies must have shape ({num_embeddings},) for a table "
                        f"of {num_embeddings} rows; got {frequencies.shape}.")
    return frequencies


@register
class MixedDimTableConfig(TableConfig):
    """Frequency buckets with power-law dimensions and projections to the model dimension."""

    method = "mixed_dim"
    num_buckets: int = Field(8, ge=1, description="equal-size frequency buckets")
    alpha: float = Field(0.3, ge=0, description="power-law temperature; 0 gives equal dims")
    dims: tuple[Annotated[int, Field(ge=1)], ...] | None = Field(
        None, description="dimension of each bucket, most frequent first; solved from the "
                          "budget, or the power law with head dim = embedding_dim when absent")
    init_std: float = Field(0.1, gt=0)
    sparse_grad: SparseGrad = False

    def build(self, num_embeddings: int, embedding_dim: int, stats: TableStats | None,
              seed: int) -> MixedDimTable:
        frequencies = _frequencies(stats, num_embeddings)
        sizes = bucket_sizes(num_embeddings, len(self.dims) if self.dims else self.num_buckets)
        dims = list(self.dims) if self.dims else power_law_dims(
            bucket_popularity(frequencies, sizes), embedding_dim, self.alpha)
        self._check_dims(dims, sizes, embedding_dim)
        positions = np.empty(num_embeddings, dtype=np.int64)
        positions[frequency_order(frequencies)] = np.arange(num_embeddings)
        # The table records the dims it was built with, so its config alone gives its size.
        return MixedDimTable(num_embeddings, embedding_dim,
                             self.model_copy(update={"dims": tuple(dims)}),
                             torch.from_numpy(positions), sizes, dims, seed)

    def _check_dims(self, dims: Sequence[int], sizes: Sequence[int], embedding_dim: int) -> None:
        if len(dims) != len(sizes):
            raise ConfigError(f"MixedDimTableConfig.dims has {len(dims)} entries but a table of "
                              f"{sum(sizes)} ids has at most {len(sizes)} buckets; give fewer "
                              "dims.")
        if max(dims) > embedding_dim:
            raise ConfigError(f"MixedDimTableConfig.dims must be <= embedding_dim "
                              f"({embedding_dim}); got {list(dims)}.")

    def table_bytes(self, num_embeddings: int, embedding_dim: int) -> int:
        """Exact ``memory_bytes()`` once ``dims`` is set (by the user or the solver)."""
        if self.dims is None:
            raise ConfigError("MixedDimTableConfig.dims is unset: the power law needs id "
                              "frequencies, so the size is known only once the table is built.")
        return mixed_dim_bytes(bucket_sizes(num_embeddings, len(self.dims)), self.dims,
                               embedding_dim)

    @classmethod
    def for_budget(cls, budget_bytes: int, num_embeddings: int, embedding_dim: int,
                   stats: TableStats | None, params: Mapping[str, Any]) -> Self:
        if "dims" in params:
            raise ConfigError(f"MixedDimTableConfig.dims is solved from the budget; give either "
                              f"dims={params['dims']!r} or a budget, not both.")
        config = fixed_choices(cls, params, free=())
        sizes = bucket_sizes(num_embeddings, config.num_buckets)
        popularity = bucket_popularity(_frequencies(stats, num_embeddings), sizes)
        dims = solve_head_dim(sizes, popularity, embedding_dim, config.alpha, budget_bytes)
        if dims is None:
            smallest = min(mixed_dim_bytes(sizes, power_law_dims(popularity, head_dim,
                                                                 config.alpha), embedding_dim)
                           for head_dim in range(1, embedding_dim + 1))
            raise budget_too_small(cls.method, budget_bytes, smallest)
        return config.model_copy(update={"dims": tuple(dims)})


class MixedDimTable(EmbeddingTable):
    """Rows of bucket ``k`` are ``weight_k[row] @ projection_k``: ``(d_k,) -> (d,)``.

    Buffers: ``positions: (n,)`` rank of each id in frequency order; ``bucket_offsets:
    int64[K + 1]`` first rank of each bucket. Parameters: ``weight_k: (n_k, d_k)`` and, for
    ``d_k < d``, ``projection_k: (d_k, d)``.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, config: MixedDimTableConfig,
                 positions: Tensor, sizes: Sequence[int], dims: Sequence[int],
                 seed: int = 0) -> None:
        super().__init__(num_embeddings, embedding_dim, config)
        self.dims = [int(dim) for dim in dims]
        self.register_buffer("positions", positions.to(index_dtype(num_embeddings - 1)))
        offsets = torch.zeros(len(sizes) + 1, dtype=torch.int64)
        offsets[1:] = torch.tensor(list(sizes)).cumsum(0)
        self.register_buffer("bucket_offsets", offsets)
        generator = torch.Generator().manual_seed(seed)
        for k, (size, dim) in enumerate(zip(sizes, self.dims, strict=True)):
            weight = gaussian_rows(size, dim, config.init_std, generator)
            self.register_parameter(f"weight_{k}", nn.Parameter(weight))
            if dim < embedding_dim:
                # Variance 1/d_k keeps projected rows at the scale init_std of a full table.
                projection = torch.randn(dim, embedding_dim, generator=generator) / dim ** 0.5
                self.register_parameter(f"projection_{k}", nn.Parameter(projection))

    @classmethod
    def from_state(cls, config: MixedDimTableConfig, num_embeddings: int, embedding_dim: int,
                   state: dict[str, Tensor]) -> MixedDimTable:
        """Rebuild from saved tensors alone (no frequencies needed): the bucket sizes and dims
        are the shapes of the saved ``weight_k``."""
        num_buckets = state["bucket_offsets"].numel() - 1
        shapes = [state[f"weight_{k}"].shape for k in range(num_buckets)]
        table = cls(num_embeddings, embedding_dim, config, state["positions"],
                    [shape[0] for shape in shapes], [shape[1] for shape in shapes])
        table.load_state_dict(state)
        return table

    def sparse_parameters(self) -> list[nn.Parameter]:
        if not self.config.sparse_grad:
            return []
        return [getattr(self, f"weight_{k}") for k in range(len(self.dims))]

    def lookup(self, ids: Tensor) -> Tensor:
        flat = ids.reshape(-1)
        ranks = self.positions[flat].long()
        buckets = torch.bucketize(ranks, self.bucket_offsets[1:-1], right=True)
        out = torch.zeros(flat.numel(), self.embedding_dim, device=ranks.device)
        for k, dim in enumerate(self.dims):
            selected = (buckets == k).nonzero().squeeze(1)
            if selected.numel() == 0:
                continue
            rows = lookup_rows(getattr(self, f"weight_{k}"),
                               ranks[selected] - self.bucket_offsets[k], self.config.sparse_grad)
            if dim < self.embedding_dim:
                rows = rows @ getattr(self, f"projection_{k}")
            out[selected] = rows
        return out.reshape(*ids.shape, self.embedding_dim)
