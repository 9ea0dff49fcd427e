"""``graphhash``: GraphHash as the paper defines it (Wu et al., WWW 2025): id -> its cluster row.

The faithful baseline beside ``graph``. The same clustering of the user–item training graph
(``slimrec.graph``, the same resolution search under a budget), but the table holds exactly one
row per cluster of its side and every id reads its cluster's row: no spare rows for the most
frequent ids. What ``graph`` adds over it is those spare rows; what ``graph_popularity`` adds
over ``graph`` is a popularity-level row per id.

Budgets. The solver searches the resolution as ``graph`` does, for the largest row count that
fits, then keeps one row per cluster found (at most that count): a budget the clusters do not
fill is left unspent, as in the paper. Two cases the paper does not cover are handled as in
``graph``: clusters that outnumber the rows (many disconnected pieces) are folded onto the rows
of the largest ones, and ids with no training edge are spread over the rows by a seeded
universal hash. A ``num_rows`` fixed by hand above the cluster count leaves the extra rows to
those edgeless ids only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

from slimrec.embeddings.graph import GraphTableConfig, graph_of
from slimrec.embeddings.spec import TableStats, register


@register
class GraphHashTableConfig(GraphTableConfig):
    method = "graphhash"

    spare_rows: ClassVar[bool] = False

    @classmethod
    def for_budget(cls, budget_bytes: int, num_embeddings: int, embedding_dim: int,
                   stats: TableStats | None, params: Mapping[str, Any]) -> Self:
        """``graph``'s resolution for the budget, with one row per cluster of this side."""
        config = super().for_budget(budget_bytes, num_embeddings, embedding_dim, stats, params)
        graph, stats = graph_of(stats, num_embeddings, cls.method)
        labels = config.clustering(graph, stats).side_labels(stats.role)
        clusters = max(1, int(labels.max()) + 1)
        assert config.num_rows is not None  # the budget solved it
        return config.model_copy(update={"num_rows": min(config.num_rows, clusters)})
