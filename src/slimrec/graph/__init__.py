"""Bipartite clustering of the user–item training graph, with budget targeting and a cache.

``BipartiteGraph(matrix).cluster(resolution, ...)`` runs Leiden or Louvain (igraph's C core);
``cached_clustering`` and ``search_resolution`` (the resolution whose clusters fit a row budget)
go through an on-disk cache keyed by the graph's hash and the parameters.
"""

from slimrec.graph.cache import cached_clustering, default_cache_dir
from slimrec.graph.clustering import (
    ALGORITHMS,
    OBJECTIVES,
    BipartiteGraph,
    Clustering,
    barber_modularity,
    cluster_bipartite,
    cluster_statistics,
    edge_coverage,
    modularity,
)
from slimrec.graph.search import ResolutionSearch, search_resolution

__all__ = [
    "ALGORITHMS",
    "OBJECTIVES",
    "BipartiteGraph",
    "Clustering",
    "ResolutionSearch",
    "barber_modularity",
    "cached_clustering",
    "cluster_bipartite",
    "cluster_statistics",
    "default_cache_dir",
    "edge_coverage",
    "modularity",
    "search_resolution",
]
