"""``svd``: compress an already-trained table to rank ``r`` by truncated SVD.

``SvdTableConfig.from_trained(table, budget_bytes, params)`` (what ``slimrec compress --method
svd`` calls) takes the trained rows ``W = U S Vᵀ`` and keeps the best rank-``r`` approximation
(Eckart–Young) as ``left = U_r S_r^½`` and ``right = S_r^½ V_rᵀ``; it may be fine-tuned after.
The stored form is exactly ``lowrank``'s, with the same byte count and budget solver.

Trained from scratch (``slimrec train --embedding svd``) there is no table to decompose yet, so
an ``svd`` table starts from a random factorisation and trains exactly like ``lowrank``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from slimrec.config import parse_config
from slimrec.embeddings.base import EmbeddingTable
from slimrec.embeddings.lowrank import LowRankTable, LowRankTableConfig
from slimrec.embeddings.spec import TableStats, register
from slimrec.errors import ConfigError


@register
class SvdTableConfig(LowRankTableConfig):
    method = "svd"

    def build(self, num_embeddings: int, embedding_dim: int, stats: TableStats | None,
              seed: int) -> SvdTable:
        return SvdTable(num_embeddings, embedding_dim, self, seed)

    @classmethod
    def from_trained(cls, table: EmbeddingTable, budget_bytes: int | None,
                     params: Mapping[str, Any]) -> SvdTable:
        """The rank-``r`` truncated SVD of ``table``'s rows, ``r`` solved from ``budget_bytes``
        (or given as ``params["rank"]`` when there is no budget)."""
        num_embeddings, embedding_dim = table.num_embeddings, table.embedding_dim
        if budget_bytes is None:
            config = parse_config(cls, params, where=cls.__name__)
        else:
            config = cls.for_budget(budget_bytes, num_embeddings, embedding_dim, None, params)
        return SvdTable.from_weight(table.full_weight().detach(), config)


class SvdTable(LowRankTable):
    """``LowRankTable`` whose factors can come from the SVD of trained rows."""

    @classmethod
    def from_weight(cls, weight: Tensor, config: SvdTableConfig) -> SvdTable:
        """Factor ``weight: Tensor[n, d]`` into ``left: [n, rank]`` and ``right: [rank, d]``."""
        num_embeddings, embedding_dim = weight.shape
        if config.rank > min(num_embeddings, embedding_dim):
            raise ConfigError(
                f"SvdTableConfig.rank must be <= min(num_embeddings, embedding_dim) = "
                f"{min(num_embeddings, embedding_dim)}; got {config.rank}.")
        # float64 so the small singular values kept at high rank are not lost to rounding.
        u, s, vh = torch.linalg.svd(weight.double(), full_matrices=False)
        root = s[: config.rank].sqrt()
        table = cls(num_embeddings, embedding_dim, config)
        with torch.no_grad():
            table.left.copy_(u[:, : config.rank] * root)
            table.right.copy_(root[:, None] * vh[: config.rank])
        return table
