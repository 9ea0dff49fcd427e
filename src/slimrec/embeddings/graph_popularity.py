"""``graph_popularity``: a graph cluster row plus a popularity-level row, at no extra map bytes.

GraphHash gives all ids of a cluster one vector, so MF scores the items of a cluster alike for
every user and cannot put the popular ones first (nor tell heavy users from light ones). Here
each id also gets the row of its popularity level: ids are split into ``num_levels``
equal-count levels by training degree (ids without an edge get level 0), and

    vector(id) = weight[row(id)] + level_weight[level(id)]

The level costs no map byte: the map is stored at a whole-byte integer width, whose range
``num_rows`` rows rarely fill (2,752 rows use 12 of an int16's 15 bits), so each map value packs
``row + num_rows * level``. ``num_levels`` is the number of levels that fit,
``(max of the map's dtype + 1) // num_rows``, capped at ``max_levels`` and at ``num_rows``; the
level table adds ``num_levels * dim * 4`` bytes. Rows and budgets are otherwise exactly ``graph``'s.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from slimrec.embeddings.graph import GraphTable, GraphTableConfig
from slimrec.embeddings.sizing import index_dtype
from slimrec.embeddings.spec import TableStats, register


def popularity_levels(degree: np.ndarray, num_levels: int) -> np.ndarray:
    """Level of each id, ``int64[n]`` in ``[0, num_levels)``: equal-count bins of the training
    degree over the ids that have one (ties share a level); degree 0 gives level 0."""
    levels = np.zeros(degree.shape, dtype=np.int64)
    seen = degree > 0
    if num_levels > 1 and seen.any():
        cuts = np.quantile(degree[seen], np.arange(1, num_levels) / num_levels)
        levels[seen] = np.searchsorted(cuts, degree[seen], side="right")
    return levels


@register
class GraphPopularityTableConfig(GraphTableConfig):
    method = "graph_popularity"
    max_levels: int = Field(16, ge=1, le=256, description="most popularity levels per table")

    def codes_per_row(self, num_rows: int) -> int:
        """Popularity levels: as many as the map's range leaves room for, at most
        ``max_levels`` and never more than rows (the sizes then grow with ``num_rows``)."""
        capacity = torch.iinfo(index_dtype(num_rows - 1)).max + 1
        return max(1, min(self.max_levels, capacity // num_rows, num_rows))

    def extra_bytes(self, num_embeddings: int, embedding_dim: int) -> int:
        """The fp32 level table; the levels themselves ride in the map's spare range."""
        assert self.num_rows is not None  # table_bytes checked it
        return self.codes_per_row(self.num_rows) * embedding_dim * 4

    def build(self, num_embeddings: int, embedding_dim: int, stats: TableStats | None,
              seed: int) -> GraphPopularityTable:
        rows, num_rows, degree = self.row_map(num_embeddings, stats)
        levels = popularity_levels(degree, self.codes_per_row(num_rows))
        codes = rows + num_rows * torch.from_numpy(levels)
        return GraphPopularityTable(num_embeddings, embedding_dim, self, codes, num_rows, seed)


class GraphPopularityTable(GraphTable):
    """``weight[num_rows, dim]`` and ``level_weight[num_levels, dim]``; ``row_of[id]`` packs
    ``row + num_rows * level`` and vector of id = ``weight[row] + level_weight[level]``.

    Bytes: ``(num_rows + num_levels) * dim * 4 + num_embeddings * width(row_of)``.
    """

    rows_summed: ClassVar[int] = 2

    def register_extra(self, generator: torch.Generator) -> None:
        num_levels = self.config.codes_per_row(self.num_rows)
        weight = torch.randn(num_levels, self.embedding_dim, generator=generator)
        self.level_weight = nn.Parameter(weight * (self.config.init_std
                                                   / math.sqrt(self.rows_summed)))

    def lookup(self, ids: Tensor) -> Tensor:
        codes = self.row_of[ids].long()
        return (F.embedding(codes % self.num_rows, self.weight)
                + F.embedding(codes // self.num_rows, self.level_weight))
