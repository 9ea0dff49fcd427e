"""GraphHash clustering of graphs too big for whole-graph Leiden: cluster a sample, then assign.

1. Sample users with probability proportional to their degree (Efraimidis–Spirakis keys
   ``u ** (1 / degree)``, the largest first) until their edges reach ``sample_fraction`` of all
   edges; keep every edge of a sampled user.
2. Cluster that subgraph with the same Leiden (Barber objective) as the whole-graph path.
3. Every other user takes the label most of its items carry (neighbour majority); then every
   item still without a label takes the label most of its users carry; repeated while an edge
   has an unlabelled end (a user whose items the sample never reached). Ties go to the smaller
   label. Components the sample never reached share one extra cluster; ids without any edge
   stay ``-1`` (tables hash them).

Step 2 costs what Leiden costs on ``sample_fraction`` of the edges; steps 1 and 3 are a few
sorts over the edge arrays (no per-edge Python objects), so the whole graph need never be built
in igraph. ``benchmarks/sampled_clustering_gowalla.py`` compares it with whole-graph Leiden.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from slimrec.errors import ConfigError
from slimrec.graph.clustering import BipartiteGraph, Clustering, check_graph


def degree_weighted_users(user_degree: np.ndarray, sample_fraction: float,
                          rng: np.random.Generator) -> np.ndarray:
    """Sorted users whose edges make about ``sample_fraction`` of all, drawn by degree."""
    keys = np.full(user_degree.size, -1.0)
    active = user_degree > 0
    keys[active] = rng.random(int(active.sum())) ** (1.0 / user_degree[active])
    order = np.argsort(-keys, kind="stable")
    edges = np.cumsum(user_degree[order])
    count = int(np.searchsorted(edges, sample_fraction * edges[-1])) + 1
    return np.sort(order[:count])


def majority_label(sources: np.ndarray, labels: np.ndarray, size: int) -> np.ndarray:
    """For each of ``size`` vertices, the most frequent of the ``labels`` of its edges
    (``sources[e]`` is the vertex of edge ``e``); -1 where no edge has a label."""
    known = labels >= 0
    sources, labels = sources[known], labels[known].astype(np.int64)
    result = np.full(size, -1, dtype=np.int64)
    if sources.size == 0:
        return result
    width = int(labels.max()) + 1
    pairs, counts = np.unique(sources.astype(np.int64) * width + labels, return_counts=True)
    vertex, label = pairs // width, pairs % width
    # Per vertex, the largest count first and then the smallest label: the first row wins.
    order = np.lexsort((label, -counts, vertex))
    first = np.ones(order.size, dtype=bool)
    first[1:] = vertex[order][1:] != vertex[order][:-1]
    winners = order[first]
    result[vertex[winners]] = label[winners]
    return result


def cluster_sampled(matrix: sp.spmatrix, sample_fraction: float, resolution: float = 1.0,
                    seed: int = 0) -> Clustering:
    """Labels of every user and item (module docstring), numbered like ``Clustering``."""
    if not 0 < sample_fraction <= 1:
        raise ConfigError(f"sample_fraction must be in (0, 1]; got {sample_fraction}.")
    start = time.perf_counter()
    matrix = check_graph(matrix)
    num_users, num_items = matrix.shape
    user_degree = np.diff(matrix.indptr)
    sampled = degree_weighted_users(user_degree, sample_fraction, np.random.default_rng(seed))
    part = BipartiteGraph(matrix[sampled]).cluster(resolution, "leiden", "barber", seed)
    users = np.full(num_users, -1, dtype=np.int64)
    users[sampled] = part.labels[:sampled.size]
    items = part.labels[sampled.size:].astype(np.int64)
    edge_users = np.repeat(np.arange(num_users), user_degree)
    edge_items = matrix.indices.astype(np.int64)
    while True:  # users from items, then items from users, while that labels anything new
        before = int((users >= 0).sum() + (items >= 0).sum())
        missing = users < 0
        users[missing] = majority_label(edge_users, items[edge_items], num_users)[missing]
        missing = items < 0
        items[missing] = majority_label(edge_items, users[edge_users], num_items)[missing]
        if int((users >= 0).sum() + (items >= 0).sum()) == before:
            break
    # Components the sample never reached share one extra cluster.
    rest = max(int(users.max()), int(items.max())) + 1
    users[(users < 0) & (user_degree > 0)] = rest
    items[(items < 0) & (np.bincount(edge_items, minlength=num_items) > 0)] = rest
    labels = np.concatenate([users, items])
    placed = labels >= 0
    _, renumbered = np.unique(labels[placed], return_inverse=True)
    labels[placed] = renumbered
    return Clustering(labels.astype(np.int32), num_users, float(resolution), "leiden",
                      "barber", seed, time.perf_counter() - start)
