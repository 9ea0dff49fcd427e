"""Modularity clustering of the bipartite user–item training graph (Louvain and Leiden).

The graph has one vertex per user and per item (users first) and one edge per training
interaction. Two objectives, each with a resolution ``γ`` (higher: more, smaller clusters):

- ``"barber"``: Barber's bipartite modularity, which only compares user–item pairs,
  ``Q = Σ_ij [A_ij − γ k_i d_j / m] δ(c_i, c_j) / m`` over users ``i`` and items ``j``
  (``k``, ``d``: user and item degrees, ``m``: edges). It equals the directed modularity of the
  graph with every edge pointing from the user to the item (out-degree ``k``, in-degree ``d``),
  which is how the reference GraphHash code scores its clusters (scikit-network's default
  modularity on a bipartite input), so the resolutions are comparable.
- ``"modularity"``: Newman's modularity of the undirected graph,
  ``Q = Σ_ab [A_ab − γ k_a k_b / 2m] δ(c_a, c_b) / 2m`` over all vertex pairs (it also penalises
  user–user and item–item pairs, which can never share an edge).

Algorithms run in igraph's C core: ``"leiden"`` is ``community_leiden`` (either objective: Barber
through its directed node weights) and ``"louvain"`` is ``community_multilevel`` (undirected
modularity only). On Gowalla at resolution 200 (two Leiden passes each), igraph's Leiden took
1.7 s and leidenalg's (``RBConfigurationVertexPartition``) 66 s, so leidenalg is not used;
igraph's Louvain took 13-17 s. Runs are deterministic under a seed:
igraph draws from a private ``random.Random(seed)`` for the duration of the call.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import scipy.sparse as sp

from slimrec.errors import ConfigError, DataError

if TYPE_CHECKING:
    import igraph as ig

Algorithm = Literal["leiden", "louvain"]
Objective = Literal["barber", "modularity"]
ALGORITHMS: tuple[str, ...] = ("leiden", "louvain")
OBJECTIVES: tuple[str, ...] = ("barber", "modularity")
# Leiden passes over the graph. On Gowalla a second pass raises Barber modularity by 3% and
# the time by 70% (1.0 s -> 1.7 s at resolution 200); one pass already yields connected clusters.
LEIDEN_ITERATIONS = 1
# Edges handed to igraph per call: ~2 GB of Python pairs at most. Each call re-indexes the
# edges added so far, so chunks stay large (4 calls at 66M edges).
EDGE_CHUNK = 16_000_000


@dataclass(frozen=True, eq=False)  # holds arrays: compare labels explicitly
class Clustering:
    """A partition of the users and items of one training graph.

    ``labels: int32[num_users + num_items]`` gives the cluster of each vertex (users first),
    numbered ``0 .. num_clusters - 1``, or ``-1`` for a vertex without any training edge (no
    evidence to place it; tables hash those ids instead). A cluster may hold users, items or
    both. ``seconds`` is the time the clustering took when it was computed (a cache hit keeps
    the original time).
    """

    labels: np.ndarray
    num_users: int
    resolution: float
    algorithm: str
    objective: str
    seed: int
    seconds: float

    @property
    def num_items(self) -> int:
        return len(self.labels) - self.num_users

    @property
    def num_clusters(self) -> int:
        return int(self.labels.max()) + 1 if self.labels.size else 0

    def side(self, role: str) -> np.ndarray:
        """Joint cluster labels of the users (``role="user"``) or the items: ``int32[n]``."""
        if role == "user":
            return self.labels[: self.num_users]
        if role == "item":
            return self.labels[self.num_users:]
        raise ConfigError(f"a graph table's role must be 'user' or 'item'; got {role!r}. "
                          "Build graph tables for the user and item ids of a retrieval model.")

    def side_labels(self, role: str) -> np.ndarray:
        """Labels of one side renumbered ``0 .. k - 1`` over the clusters that side uses
        (``-1`` kept): ``int64[n]``. Clusters are numbered in order of their joint label."""
        joint = self.side(role)
        present = joint >= 0
        compact = np.full(joint.shape, -1, dtype=np.int64)
        _, compact[present] = np.unique(joint[present], return_inverse=True)
        return compact

    def num_side_clusters(self, role: str) -> int:
        joint = self.side(role)
        return int(np.unique(joint[joint >= 0]).size)

    @property
    def num_user_clusters(self) -> int:
        return self.num_side_clusters("user")

    @property
    def num_item_clusters(self) -> int:
        return self.num_side_clusters("item")


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """Raise a ``ConfigError`` naming ``name`` when ``value`` is not one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}.")


def check_graph(matrix: sp.spmatrix) -> sp.csr_matrix:
    """The training graph as a CSR matrix with sorted indices and at least one edge."""
    if not sp.issparse(matrix) or matrix.ndim != 2:
        raise DataError("the training graph must be a (num_users, num_items) scipy sparse "
                        f"matrix; got {type(matrix).__name__}.")
    matrix = sp.csr_matrix(matrix)
    if matrix.nnz == 0:
        raise DataError("the training graph has no edge; graph clustering needs interactions.")
    if not matrix.has_sorted_indices:
        matrix = matrix.sorted_indices()
    return matrix


def _igraph() -> Any:
    """The ``igraph`` module, imported on first use: ``import slimrec`` (and serving, and the
    embedding tables) must not pay for loading igraph's C core."""
    import igraph

    return igraph


@contextmanager
def _seeded_igraph(seed: int) -> Iterator[None]:
    """Let igraph draw from ``random.Random(seed)``, leaving the global ``random`` untouched."""
    ig = _igraph()
    ig.set_random_number_generator(random.Random(seed))
    try:
        yield
    finally:
        ig.set_random_number_generator(random)


class BipartiteGraph:
    """The training graph of ``matrix`` (``(num_users, num_items)``, nonzero = edge), with the
    igraph graphs built once and reused by every clustering of it (a budget search runs many).
    """

    def __init__(self, matrix: sp.spmatrix) -> None:
        self.matrix = check_graph(matrix)
        self.num_users, self.num_items = self.matrix.shape
        self.user_degree = np.diff(self.matrix.indptr).astype(np.int64)
        self.item_degree = np.bincount(self.matrix.indices, minlength=self.num_items)
        self._igraphs: dict[bool, ig.Graph] = {}

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of the shape and edges; equals ``Interactions.fingerprint()`` of the
        ``Interactions`` whose ``train`` is this matrix (so either can key a cache)."""
        digest = hashlib.sha256()
        digest.update(np.asarray(self.matrix.shape, dtype=np.int64).tobytes())
        digest.update(self.matrix.indptr.astype(np.int64).tobytes())
        digest.update(self.matrix.indices.astype(np.int64).tobytes())
        return digest.hexdigest()

    @property
    def degree(self) -> np.ndarray:
        """Degree of every vertex, users first: ``int64[num_users + num_items]``."""
        return np.concatenate([self.user_degree, self.item_degree])

    def igraph(self, directed: bool) -> ig.Graph:
        """Vertices ``0..num_users-1`` are users, the rest items; directed edges point
        user -> item."""
        if directed not in self._igraphs:
            users = np.repeat(np.arange(self.num_users), self.user_degree)
            items = self.matrix.indices.astype(np.int64) + self.num_users
            graph = _igraph().Graph(n=self.num_users + self.num_items, directed=directed)
            # igraph converts a list of Python int pairs fastest (a numpy array goes through
            # the generic sequence protocol, 2x slower and ~100 B per edge at once). The list
            # costs ~120 B per edge, so it is built EDGE_CHUNK edges at a time.
            for begin in range(0, users.size, EDGE_CHUNK):
                end = begin + EDGE_CHUNK
                graph.add_edges(list(zip(users[begin:end].tolist(), items[begin:end].tolist(),
                                         strict=True)))
            self._igraphs[directed] = graph
        return self._igraphs[directed]

    def cluster(self, resolution: float = 1.0, algorithm: str = "leiden",
                objective: str = "barber", seed: int = 0,
                iterations: int = LEIDEN_ITERATIONS) -> Clustering:
        """Cluster the graph (not cached; ``slimrec.graph.cached_clustering`` caches).

        ``iterations`` is the number of Leiden passes (ignored by Louvain).
        """
        check_choice("algorithm", algorithm, ALGORITHMS)
        check_choice("objective", objective, OBJECTIVES)
        if not resolution > 0:
            raise ConfigError(f"resolution must be > 0; got {resolution}.")
        if iterations < 1:
            raise ConfigError(f"iterations must be an int >= 1; got {iterations}.")
        if objective == "barber" and algorithm == "louvain":
            raise ConfigError(
                "algorithm 'louvain' supports objective 'modularity' only (igraph's multilevel "
                "method is undirected); got objective 'barber'. Use algorithm='leiden' for "
                "Barber's bipartite modularity.")
        start = time.perf_counter()
        with _seeded_igraph(seed):
            membership = self._membership(float(resolution), algorithm, objective, iterations)
        labels = np.full(membership.shape, -1, dtype=np.int32)
        connected = self.degree > 0
        # Renumber the clusters of connected vertices 0..k-1 in order of first appearance.
        _, first, inverse = np.unique(membership[connected], return_index=True,
                                      return_inverse=True)
        labels[connected] = np.argsort(np.argsort(first))[inverse]
        return Clustering(labels, self.num_users, float(resolution), algorithm, objective, seed,
                          time.perf_counter() - start)

    def _membership(self, resolution: float, algorithm: str, objective: str,
                    iterations: int) -> np.ndarray:
        if objective == "barber":
            zeros_user, zeros_item = np.zeros(self.num_users), np.zeros(self.num_items)
            # Directed modularity with out-weight k (users) and in-weight d (items) is Barber's;
            # igraph's "modularity" objective would take both weights from the total degree.
            membership, _ = _igraph().GraphBase.community_leiden(
                self.igraph(directed=True), edge_weights=None,
                node_weights=np.concatenate([self.user_degree, zeros_item]).tolist(),
                node_in_weights=np.concatenate([zeros_user, self.item_degree]).tolist(),
                resolution=resolution / self.matrix.nnz, normalize_resolution=False,
                beta=0.01, initial_membership=None, n_iterations=iterations)
        elif algorithm == "leiden":
            membership = self.igraph(directed=False).community_leiden(
                objective_function="modularity", resolution=resolution,
                n_iterations=iterations).membership
        else:
            membership = self.igraph(directed=False).community_multilevel(
                resolution=resolution).membership
        return np.asarray(membership, dtype=np.int64)


def cluster_bipartite(matrix: sp.spmatrix, resolution: float = 1.0, algorithm: str = "leiden",
                      objective: str = "barber", seed: int = 0,
                      iterations: int = LEIDEN_ITERATIONS) -> Clustering:
    """Cluster the bipartite graph of ``matrix`` once (see ``BipartiteGraph.cluster``)."""
    return BipartiteGraph(matrix).cluster(resolution, algorithm, objective, seed, iterations)


def modularity(matrix: sp.spmatrix, labels: np.ndarray, resolution: float = 1.0) -> float:
    """Newman modularity ``Σ_c [e_c / m − γ (K_c / 2m)²]`` of the undirected bipartite graph.

    ``e_c``: edges inside cluster ``c``; ``K_c``: summed degree of its vertices; ``labels``:
    joint labels, users first (``-1`` vertices have no edge and add nothing).
    """
    matrix = check_graph(matrix)
    inside, user_weight, item_weight = _cluster_sums(matrix, labels)
    total = user_weight + item_weight
    m = matrix.nnz
    return float(inside.sum() / m - resolution * np.square(total / (2 * m)).sum())


def barber_modularity(matrix: sp.spmatrix, labels: np.ndarray, resolution: float = 1.0) -> float:
    """Barber's bipartite modularity ``Σ_c [e_c / m − γ K_c D_c / m²]``.

    ``K_c`` and ``D_c`` are the summed degrees of the users and of the items of cluster ``c``.
    """
    matrix = check_graph(matrix)
    inside, user_weight, item_weight = _cluster_sums(matrix, labels)
    m = matrix.nnz
    return float(inside.sum() / m - resolution * (user_weight * item_weight).sum() / m**2)


def edge_coverage(matrix: sp.spmatrix, labels: np.ndarray) -> float:
    """Share of the training edges whose user and item share a cluster."""
    matrix = check_graph(matrix)
    inside, _, _ = _cluster_sums(matrix, labels)
    return float(inside.sum() / matrix.nnz)


def _cluster_sums(matrix: sp.csr_matrix,
                  labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per cluster: edges inside, summed user degree, summed item degree."""
    num_users = matrix.shape[0]
    if labels.shape != (sum(matrix.shape),):
        raise DataError(f"labels must have one entry per user and item, {sum(matrix.shape)}; "
                        f"got shape {labels.shape}.")
    size = int(labels.max()) + 1
    users = np.repeat(np.arange(num_users), np.diff(matrix.indptr))
    user_label, item_label = labels[users], labels[num_users + matrix.indices]
    same = user_label == item_label
    inside = np.bincount(user_label[same], minlength=size)
    user_weight = np.bincount(user_label, minlength=size).astype(np.float64)
    item_weight = np.bincount(item_label, minlength=size).astype(np.float64)
    return inside, user_weight, item_weight


def _size_summary(sizes: np.ndarray) -> dict[str, float | int]:
    if sizes.size == 0:
        return {"count": 0}
    return {"count": int(sizes.size), "singletons": int(np.count_nonzero(sizes == 1)),
            "mean": float(sizes.mean()), "p50": float(np.quantile(sizes, 0.5)),
            "p90": float(np.quantile(sizes, 0.9)), "p99": float(np.quantile(sizes, 0.99)),
            "max": int(sizes.max())}


def cluster_statistics(graph: BipartiteGraph, clustering: Clustering) -> dict[str, Any]:
    """Counts, size distributions, modularities and coverage of a clustering of ``graph``.

    ``edge_coverage``: share of training edges inside a cluster; ``user_coverage`` /
    ``item_coverage``: share of ids placed by the graph (the rest have no training edge and are
    hashed); ``modularity`` and ``barber_modularity`` are at resolution 1, ``quality`` is the
    optimised objective at the clustering's own resolution. Sizes count ids per cluster.
    """
    labels = clustering.labels
    matrix = graph.matrix
    size = clustering.num_clusters
    users, items = clustering.side("user"), clustering.side("item")
    user_sizes = np.bincount(users[users >= 0], minlength=size)
    item_sizes = np.bincount(items[items >= 0], minlength=size)
    objective = barber_modularity if clustering.objective == "barber" else modularity
    return {
        "resolution": clustering.resolution, "algorithm": clustering.algorithm,
        "objective": clustering.objective, "seed": clustering.seed,
        "seconds": clustering.seconds,
        "clusters": clustering.num_clusters,
        "user_clusters": clustering.num_user_clusters,
        "item_clusters": clustering.num_item_clusters,
        "mixed_clusters": int(np.count_nonzero((user_sizes > 0) & (item_sizes > 0))),
        "user_rows_fraction": clustering.num_user_clusters / graph.num_users,
        "item_rows_fraction": clustering.num_item_clusters / graph.num_items,
        "user_cluster_sizes": _size_summary(user_sizes[user_sizes > 0]),
        "item_cluster_sizes": _size_summary(item_sizes[item_sizes > 0]),
        "modularity": modularity(matrix, labels),
        "barber_modularity": barber_modularity(matrix, labels),
        "quality": objective(matrix, labels, clustering.resolution),
        "edge_coverage": edge_coverage(matrix, labels),
        "user_coverage": float(np.mean(graph.user_degree > 0)),
        "item_coverage": float(np.mean(graph.item_degree > 0)),
    }
