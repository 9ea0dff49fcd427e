"""``graph_popularity``: a graph cluster row plus a popularity-level row, at no extra map bytes.

GraphHash gives all ids of a cluster one vector, so MF scores the items of a cluster alike for
every user and cannot put the popular ones first (nor tell heavy users from light ones). Here
each id also gets the row of its popularity level: ids are split into ``num_levels``
equal-count levels by training degree (ids without an edge get level 0), and

    vector(id) = weight[row(id)] + level_weight[level(id)]

The level usually costs no map byte: the map is stored at a whole-byte integer width, whose
range ``num_rows`` rows rarely fill (2,752 rows use 12 of an int16's 15 bits), so each map value
packs ``row + num_rows * level``. The level count is ``min(max_levels, num_rows)`` when that fits
the range of ``graph``'s map; otherwise the levels that fit, ``(max of the map's dtype + 1) //
num_rows``, as long as they are at least ``min_levels``; below that the map widens to the next
integer width (int8 -> int16 at 33-128 rows, int16 -> int32 at 8,193-32,768 rows) and keeps
``min(max_levels, num_rows)`` levels, rather than silently dropping to one or two. The budget
solver sees the wider map's bytes, so it trades rows for levels only where they fit. The level
count chosen is written into the table's config (``num_levels``, hence results.json's
``embedding.params``); the level table adds ``num_levels * dim * 4`` bytes. Rows and budgets are
otherwise exactly ``graph``'s.
"""

from __future__ import annotations

import math
from typing import ClassVar, Self

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn

from slimrec.embeddings.base import lookup_rows
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
    min_levels: int = Field(4, ge=1, le=256, description="fewest levels the map's spare range "
                            "may give before the map widens to keep max_levels")
    num_levels: int | None = Field(None, ge=1, description="popularity levels; None: chosen "
                                   "from the rows (set on the built table's config)")

    def codes_per_row(self, num_rows: int) -> int:
        """Popularity levels (see the module docstring); never more than rows, so the sizes
        grow with ``num_rows`` and the budget search stays monotone."""
        if self.num_levels is not None:
            return self.num_levels
        wanted = min(self.max_levels, num_rows)
        capacity = torch.iinfo(index_dtype(num_rows - 1)).max + 1
        free = capacity // num_rows
        return min(wanted, free) if free >= min(wanted, self.min_levels) else wanted

    def extra_bytes(self, num_embeddings: int, embedding_dim: int) -> int:
        """The fp32 level table; the levels themselves ride in the map's spare range."""
        assert self.num_rows is not None  # table_bytes checked it
        return self.codes_per_row(self.num_rows) * embedding_dim * 4

    def build(self, num_embeddings: int, embedding_dim: int, stats: TableStats | None,
              seed: int) -> GraphPopularityTable:
        rows, num_rows, degree = self.row_map(num_embeddings, stats)
        config = self.model_copy(update={"num_levels": self.codes_per_row(num_rows)})
        levels = popularity_levels(degree, config.num_levels)
        codes = rows + num_rows * torch.from_numpy(levels)
        return GraphPopularityTable(num_embeddings, embedding_dim, config, codes, num_rows, seed)


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
        return (lookup_rows(self.weight, codes % self.num_rows)
                + lookup_rows(self.level_weight, codes // self.num_rows))

    @classmethod
    def from_state(cls, config: GraphPopularityTableConfig, num_embeddings: int,
                   embedding_dim: int, state: dict[str, Tensor]) -> Self:
        """Tables saved before ``num_levels`` was recorded hold their count in the level
        table's length (the rule that chooses it has changed since)."""
        if config.num_levels is None:
            config = config.model_copy(update={"num_levels": len(state["level_weight"])})
        return super().from_state(config, num_embeddings, embedding_dim, state)
