"""LightGCN (He et al., SIGIR 2020): linear propagation over the user–item graph.

With ``E_0 = [user_table; item_table]`` (the ego embeddings, ``(U + I, d)``, taken from the
two possibly compressed tables with ``full_weight()``) and the symmetric-normalised adjacency
``Â = D^-1/2 A D^-1/2`` of the bipartite graph ``A = [[0, R], [Rᵀ, 0]]``, each layer is
``E_{k+1} = Â E_k`` and the final vectors are the mean ``(E_0 + ... + E_K) / (K + 1)``;
``score(u, i) = <e_u, e_i>``.

Training needs the whole propagation at every step (that is LightGCN). Inference does not: the
final vectors are computed once, so the saved artifact is an ``MF`` over the propagated vectors
(fp32, ``(U + I) * d * 4`` bytes) and holds nothing of the training graph. With
``keep_graph: true`` the artifact instead stores the compressed ego tables plus the binary
training graph (``int32`` CSR, ``4 * (U + 1 + nnz)`` bytes) and propagates once at load time,
which is smaller when the ego tables are compressed.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import Field
from torch import Tensor

from slimrec.config import FrozenConfig
from slimrec.embeddings.base import EmbeddingTable
from slimrec.embeddings.full import FullTable
from slimrec.errors import ConfigError, DataError
from slimrec.models.base import RetrievalModel, Scorer, register_model
from slimrec.models.mf import MF


class LightGCNConfig(FrozenConfig):
    """Settings of LightGCN (``model_params`` of a run)."""

    num_layers: int = Field(3, ge=0, description="propagation layers K (0 gives MF)")
    keep_graph: bool = Field(False, description="store ego tables + graph in the artifact "
                             "instead of the propagated vectors")


def normalized_adjacency(train: sp.csr_matrix) -> Tensor:
    """``D^-1/2 A D^-1/2`` of ``A = [[0, R], [Rᵀ, 0]]`` for ``R = train`` (users x items).

    Returns a float32 torch sparse CSR tensor of shape ``(U + I, U + I)`` with int32 indices
    (half the index memory of int64, and as fast in ``torch.sparse.mm`` on CPU). Rows of
    isolated nodes (degree 0) are empty.
    """
    binary = sp.csr_matrix(train, dtype=np.float32)
    binary.data[:] = 1.0
    adjacency = sp.bmat([[None, binary], [binary.T, None]], format="csr", dtype=np.float32)
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    scale = np.zeros_like(degree)
    np.divide(1.0, np.sqrt(degree), out=scale, where=degree > 0)
    normalized = sp.csr_matrix(sp.diags(scale) @ adjacency @ sp.diags(scale), dtype=np.float32)
    normalized.sort_indices()
    if normalized.nnz >= np.iinfo(np.int32).max:
        raise DataError(f"the training graph has {normalized.nnz:,} adjacency entries; int32 "
                        "indices hold at most 2,147,483,647.")
    with warnings.catch_warnings():
        # torch flags sparse CSR as beta on first use; the operations used here are stable.
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(normalized.indptr.astype(np.int32)),
            torch.from_numpy(normalized.indices.astype(np.int32)),
            torch.from_numpy(normalized.data), size=normalized.shape, check_invariants=False)


class _SymmetricSpMM(torch.autograd.Function):
    """``Â @ X`` for a symmetric sparse ``Â``: the gradient is ``Âᵀ G = Â G``, one more sparse
    product, about 2-3x faster on CPU than autograd through ``torch.sparse.mm`` (which
    transposes the CSR matrix at every backward)."""

    @staticmethod
    def forward(ctx: Any, adjacency: Tensor, dense: Tensor) -> Tensor:
        ctx.adjacency = adjacency
        return torch.sparse.mm(adjacency, dense)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor]:
        return None, torch.sparse.mm(ctx.adjacency, grad)


@register_model
class LightGCN(RetrievalModel):
    """LightGCN over two embedding tables of any compression method.

    ``train`` is the ``(num_users, num_items)`` binary training graph. It is kept as int32 CSR
    buffers (``graph_indptr``, ``graph_indices``) that enter the state dict, and so the
    artifact, only when ``config.keep_graph``; the normalised adjacency is derived from it.
    """

    name = "lightgcn"
    config_class = LightGCNConfig

    def __init__(self, user_table: EmbeddingTable, item_table: EmbeddingTable,
                 train: sp.csr_matrix, config: LightGCNConfig | None = None) -> None:
        super().__init__()
        if user_table.embedding_dim != item_table.embedding_dim:
            raise ValueError(
                f"user and item tables must have the same embedding_dim; got "
                f"{user_table.embedding_dim} and {item_table.embedding_dim}.")
        if train.shape != (user_table.num_embeddings, item_table.num_embeddings):
            raise DataError(
                f"the training graph has shape {train.shape}; the tables need "
                f"({user_table.num_embeddings}, {item_table.num_embeddings}) (users x items).")
        if user_table.sparse_parameters() or item_table.sparse_parameters():
            raise ConfigError(
                "LightGCN propagates over every row, so every row gets a gradient at each step: "
                "row-sparse gradients (sparse_grad: true) cannot apply. Set sparse_grad: false.")
        self.config = config or LightGCNConfig()
        self.user_table = user_table
        self.item_table = item_table
        graph = sp.csr_matrix(train)
        graph.sort_indices()
        persistent = self.config.keep_graph
        self.register_buffer("graph_indptr", torch.from_numpy(graph.indptr.astype(np.int32)),
                             persistent=persistent)
        self.register_buffer("graph_indices",
                             torch.from_numpy(graph.indices.astype(np.int32)),
                             persistent=persistent)
        self.adjacency = normalized_adjacency(graph)

    @classmethod
    def from_data(cls, user_table: EmbeddingTable, item_table: EmbeddingTable,
                  train: sp.csr_matrix, config: FrozenConfig) -> LightGCN:
        return cls(user_table, item_table, train, config)

    @classmethod
    def from_artifact(cls, tables: dict[str, EmbeddingTable], dense: dict[str, Tensor],
                      config: FrozenConfig, info: Mapping[str, Any]) -> LightGCN:
        """Rebuild a ``keep_graph`` artifact: ego tables plus the stored training graph."""
        user_table, item_table = tables["user_table"], tables["item_table"]
        indptr, indices = dense["graph_indptr"].numpy(), dense["graph_indices"].numpy()
        train = sp.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr),
                              shape=(user_table.num_embeddings, item_table.num_embeddings))
        return cls(user_table, item_table, train, config)

    @property
    def num_users(self) -> int:
        return self.user_table.num_embeddings

    def propagate(self) -> tuple[Tensor, Tensor]:
        """``(ego, final)``: layer-0 and mean-over-layers vectors, both ``(U + I, d)``."""
        ego = torch.cat([self.user_table.full_weight(), self.item_table.full_weight()])
        total, layer = ego, ego
        for _ in range(self.config.num_layers):
            layer = _SymmetricSpMM.apply(self.adjacency, layer)
            total = total + layer
        return ego, total / (self.config.num_layers + 1)

    def final_vectors(self) -> tuple[Tensor, Tensor]:
        """Propagated ``(users (U, d), items (I, d))``, computed without gradients."""
        with torch.no_grad():
            _, final = self.propagate()
        return final[: self.num_users], final[self.num_users:]

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        _, final = self.propagate()
        return (final[users] * final[items + self.num_users]).sum(-1)

    def bpr_terms(self, users: Tensor, positives: Tensor, negatives: Tensor,
                  penalty: bool = True) -> tuple[Tensor, Tensor, Tensor | None]:
        ego, final = self.propagate()
        offset = self.num_users
        user_vectors = final[users]
        positive = (user_vectors * final[positives + offset]).sum(-1)
        negative = (user_vectors * final[negatives + offset]).sum(-1)
        if not penalty:
            return positive, negative, None
        # As in the paper, L2 applies to the ego (layer-0) rows of the batch.
        l2 = (ego[users].square().sum() + ego[positives + offset].square().sum()
              + ego[negatives + offset].square().sum()) / 2
        return positive, negative, l2

    def scorer(self, stored: bool = False) -> Scorer:
        """Propagates once; each batch is then one dense product, as for MF. The propagated
        vectors mix every table's rows, so they are fp32 whatever ``stored`` says."""
        return self._propagated_mf().scorer()

    def _propagated_mf(self) -> MF:
        """MF over frozen copies of the propagated vectors (fp32 ``FullTable``s)."""
        users, items = self.final_vectors()
        tables = []
        for vectors in (users, items):
            table = FullTable(vectors.shape[0], vectors.shape[1])
            table.weight.data.copy_(vectors)
            table.weight.requires_grad_(False)
            tables.append(table)
        return MF(*tables).eval()

    def for_inference(self) -> RetrievalModel:
        """``self`` with ``keep_graph``; otherwise an ``MF`` over the propagated vectors."""
        return self if self.config.keep_graph else self._propagated_mf()
