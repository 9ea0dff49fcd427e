"""``graph``: GraphHash (Wu et al., WWW 2025). Ids share the row of their graph cluster.

The user–item training graph is clustered by modularity (``slimrec.graph``); every user (item)
gets the row of its cluster in the user (item) table, so rows are shared along collaborative
signal instead of random collisions. Each table is built for one side (``TableStats.role``), but
both tables of a model use the same clustering.

Budgets. The table stores ``num_rows`` fp32 rows and an id -> row map (``row_of``, at the
smallest integer width holding ``num_rows - 1``). Given a byte budget, the solver takes the
largest ``num_rows`` that fits, derives the other side's rows from the same budget fraction, and
searches the largest resolution whose clusters fit both sides (``search_resolution``; cached on
disk, so the second table reuses the first one's clustering). The side whose clusters do not
fill its rows spends the rest on dedicated rows for its most frequent ids: popular ids carry
most of the training signal and most test positives, and a row of their own stops them from
dragging their cluster-mates along. An id that is alone in its cluster already has its own row
and is skipped. When the clusters outnumber the rows (a graph of many disconnected pieces), the
largest clusters keep their rows and the others are folded onto them in turn.

Ids with no training edge (e.g. items only seen at test time) have no cluster: a universal hash
seeded by ``cluster_seed`` spreads them over the rows, never onto one shared or zero row. The
map holds every id's final row, so a saved table needs no data to be rebuilt (``from_state``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, NamedTuple, Self

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn

from slimrec.embeddings.base import EmbeddingTable, lookup_rows
from slimrec.embeddings.hashing_utils import PRIME, universal_hash
from slimrec.embeddings.sizing import fixed_choices, index_dtype, largest_fitting
from slimrec.embeddings.spec import (
    TableConfig,
    TableStats,
    budget_too_small,
    full_fp32_bytes,
    register,
)
from slimrec.errors import ConfigError, DataError
from slimrec.graph import BipartiteGraph, Clustering, cached_clustering, search_resolution

ROLES = ("user", "item")


class RowMap(NamedTuple):
    """``rows: LongTensor[n]`` (the row of each id), the row count, and each id's training
    degree ``int64[n]``."""

    rows: Tensor
    num_rows: int
    degree: np.ndarray


def graph_of(stats: TableStats | None, num_embeddings: int,
             method: str) -> tuple[BipartiteGraph, TableStats]:
    """The training graph from ``stats`` (and ``stats``, now known to hold one), checked
    against the table's side and size."""
    if stats is None or stats.interactions is None:
        raise ConfigError(
            f"method {method!r} clusters the training graph; pass TableStats(role='user' or "
            "'item', interactions=<(num_users, num_items) train CSR>) to build_embedding "
            "(slimrec train does this).")
    if stats.role not in ROLES:
        raise ConfigError(f"TableStats.role must be 'user' or 'item' for method {method!r}; "
                          f"got {stats.role!r}.")
    graph = BipartiteGraph(stats.interactions)
    expected = graph.num_users if stats.role == "user" else graph.num_items
    if num_embeddings != expected:
        raise DataError(
            f"a {stats.role} table of method {method!r} needs num_embeddings equal to the "
            f"training graph's {stats.role} count {expected}; got {num_embeddings}.")
    return graph, stats


def assign_rows(labels: np.ndarray, degree: np.ndarray, num_rows: int, seed: int,
                spare_rows: bool = True) -> np.ndarray:
    """The row of every id: ``int64[n]`` with values in ``[0, num_rows)``.

    ``labels``: cluster of each id numbered ``0..k-1``, ``-1`` for ids with no edge;
    ``degree``: training interactions per id. Clusters take rows ``0..k-1`` (folded when
    ``k > num_rows``), spare rows go to the most frequent ids that share their cluster (unless
    ``spare_rows`` is False: the paper's GraphHash), and ids without a cluster are hashed with
    a universal hash seeded by ``seed``.
    """
    rows = np.full(labels.shape, -1, dtype=np.int64)
    placed = labels >= 0
    num_clusters = int(labels.max()) + 1 if placed.any() else 0
    sizes = np.bincount(labels[placed], minlength=num_clusters)
    if num_clusters > num_rows:
        rank = np.empty(num_clusters, dtype=np.int64)
        rank[np.argsort(-sizes, kind="stable")] = np.arange(num_clusters)
        rows[placed] = rank[labels[placed]] % num_rows
    else:
        rows[placed] = labels[placed]
        next_row = num_clusters if spare_rows else num_rows
        remaining = sizes.copy()
        for index in np.argsort(-degree, kind="stable"):
            if next_row == num_rows or degree[index] == 0:
                break
            cluster = labels[index]
            if remaining[cluster] > 1:
                remaining[cluster] -= 1
                rows[index] = next_row
                next_row += 1
    unplaced = np.flatnonzero(rows < 0)
    if unplaced.size:
        generator = torch.Generator().manual_seed(seed)
        a = torch.randint(1, PRIME, (1,), generator=generator)
        b = torch.randint(0, PRIME, (1,), generator=generator)
        rows[unplaced] = universal_hash(torch.from_numpy(unplaced), a, b, num_rows)[:, 0].numpy()
    return rows


@register
class GraphTableConfig(TableConfig):
    method = "graph"
    resolution: float = Field(1.0, gt=0, description="modularity resolution; solved from a "
                              "budget (higher: more, smaller clusters)")
    num_rows: int | None = Field(None, ge=1, description="rows of this table; None: one per "
                                 "cluster of this side. Solved from a budget")
    algorithm: Literal["leiden", "louvain"] = "leiden"
    objective: Literal["barber", "modularity"] = Field(
        "barber", description="Barber's bipartite modularity or Newman's on the bipartite graph")
    cluster_seed: int = Field(0, description="seeds the clustering and the hash of edgeless ids")
    init_std: float = Field(0.1, gt=0)

    # Fields a budget solves (the user may not fix them alongside a budget).
    solved: ClassVar[tuple[str, ...]] = ("num_rows", "resolution")
    # Rows beyond the clusters go to the most frequent ids (``graphhash`` turns this off).
    spare_rows: ClassVar[bool] = True

    def extra_bytes(self, num_embeddings: int, embedding_dim: int) -> int:
        """Bytes beyond the rows and the map (state that subclasses add)."""
        return 0

    def with_extras_for(self, budget_bytes: int, num_embeddings: int,
                        embedding_dim: int) -> Self:
        """This config with the budget's share of subclass state sized (rows come after)."""
        return self

    def table_bytes(self, num_embeddings: int, embedding_dim: int) -> int:
        """Exact ``memory_bytes()``: fp32 rows + the id -> row map + ``extra_bytes()``."""
        if self.num_rows is None:
            raise ConfigError(f"{type(self).__name__}.num_rows is None: the size is known only "
                              "after clustering; set num_rows or give a budget.")
        map_bytes = num_embeddings * self.map_dtype(self.num_rows).itemsize
        return (self.num_rows * embedding_dim * 4 + map_bytes
                + self.extra_bytes(num_embeddings, embedding_dim))

    def clustering(self, graph: BipartiteGraph, stats: TableStats) -> Clustering:
        clustering, _ = cached_clustering(graph, self.resolution, self.algorithm, self.objective,
                                          self.cluster_seed, cache_dir=stats.cache_dir)
        return clustering

    def codes_per_row(self, num_rows: int) -> int:
        """How many map values share one row (subclasses pack more than the row in a value)."""
        return 1

    def map_dtype(self, num_rows: int) -> torch.dtype:
        """The narrowest integer width holding every map value."""
        return index_dtype(num_rows * self.codes_per_row(num_rows) - 1)

    def row_map(self, num_embeddings: int, stats: TableStats | None) -> RowMap:
        """Every id's row, from the training graph."""
        graph, stats = graph_of(stats, num_embeddings, self.method)
        clustering = self.clustering(graph, stats)
        labels = clustering.side_labels(stats.role)
        num_rows = self.num_rows or max(1, int(labels.max()) + 1)
        degree = graph.user_degree if stats.role == "user" else graph.item_degree
        rows = assign_rows(labels, degree, num_rows, self.cluster_seed, self.spare_rows)
        return RowMap(torch.from_numpy(rows), num_rows, degree)

    def build(self, num_embeddings: int, embedding_dim: int, stats: TableStats | None,
              seed: int) -> GraphTable:
        rows, num_rows, _ = self.row_map(num_embeddings, stats)
        return GraphTable(num_embeddings, embedding_dim, self, rows, num_rows, seed)

    @classmethod
    def for_budget(cls, budget_bytes: int, num_embeddings: int, embedding_dim: int,
                   stats: TableStats | None, params: Mapping[str, Any]) -> Self:
        fixed = fixed_choices(cls, params, free=cls.solved)
        graph, stats = graph_of(stats, num_embeddings, cls.method)
        config = fixed.with_extras_for(budget_bytes, num_embeddings, embedding_dim)
        rows = config.rows_for(budget_bytes, num_embeddings, embedding_dim)
        if rows is None:
            smallest = fixed.model_copy(update={"num_rows": 1})
            raise budget_too_small(cls.method, budget_bytes,
                                   smallest.table_bytes(num_embeddings, embedding_dim))
        # The other table gets the same fraction of its full size (rounded so that both tables
        # derive the same pair of row budgets, and so hit the same cached search).
        fraction = float(f"{budget_bytes / full_fp32_bytes(num_embeddings, embedding_dim):.6g}")
        other_count = graph.num_items if stats.role == "user" else graph.num_users
        other_budget = int(fraction * full_fp32_bytes(other_count, embedding_dim))
        other = fixed.with_extras_for(other_budget, other_count, embedding_dim)
        other_rows = other.rows_for(other_budget, other_count, embedding_dim) or 1
        user_rows, item_rows = (rows, other_rows) if stats.role == "user" else (other_rows, rows)
        search = search_resolution(graph, user_rows, item_rows, config.algorithm,
                                   config.objective, config.cluster_seed,
                                   cache_dir=stats.cache_dir)
        return config.model_copy(update={"num_rows": rows, "resolution": search.resolution})

    def rows_for(self, budget_bytes: int, num_embeddings: int, embedding_dim: int) -> int | None:
        """Most rows (at most one per id) whose table fits ``budget_bytes``; None if none."""
        return largest_fitting(
            1, num_embeddings,
            lambda r: self.model_copy(update={"num_rows": r}).table_bytes(
                num_embeddings, embedding_dim),
            budget_bytes)


class GraphTable(EmbeddingTable):
    """``weight: Tensor[num_rows, embedding_dim]``; vector of id = ``weight[row_of[id]]``.

    Bytes: ``num_rows * embedding_dim * 4 + num_embeddings * width(row_of)``.
    """

    # Rows summed into one vector (the init scale divides by its square root).
    rows_summed: ClassVar[int] = 1

    def __init__(self, num_embeddings: int, embedding_dim: int, config: GraphTableConfig,
                 rows: Tensor, num_rows: int, seed: int = 0) -> None:
        super().__init__(num_embeddings, embedding_dim, config)
        limit = num_rows * config.codes_per_row(num_rows)
        if rows.shape != (num_embeddings,) or int(rows.min()) < 0 or int(rows.max()) >= limit:
            raise DataError(f"{type(self).__name__} needs one value in [0, {limit}) per id for "
                            f"{num_embeddings} ids; got a map of shape {tuple(rows.shape)}.")
        generator = torch.Generator().manual_seed(seed)
        weight = torch.randn(num_rows, embedding_dim, generator=generator)
        # A vector that sums several rows gets the same spread as one row of a full table.
        self.weight = nn.Parameter(weight * (config.init_std / math.sqrt(self.rows_summed)))
        self.register_buffer("row_of", rows.to(config.map_dtype(num_rows)))
        self.register_extra(generator)

    def register_extra(self, generator: torch.Generator) -> None:
        """Register further state drawn from the seeded ``generator`` (subclasses)."""

    @property
    def num_rows(self) -> int:
        return self.weight.shape[0]

    def lookup(self, ids: Tensor) -> Tensor:
        return lookup_rows(self.weight, self.row_of[ids].long())

    def distinct_rows(self) -> tuple[Tensor, Tensor]:
        """A vector per map value: the row (``graph_popularity``: row and level)."""
        return self._distinct_by_code(self.row_of.long())

    @classmethod
    def from_state(cls, config: GraphTableConfig, num_embeddings: int, embedding_dim: int,
                   state: dict[str, Tensor]) -> Self:
        """Rebuild from a saved state: the map comes from the state, not from data."""
        table = cls(num_embeddings, embedding_dim, config, state["row_of"].long(),
                    state["weight"].shape[0])
        table.load_state_dict(state)
        return table
