"""Clustering time and cluster statistics on the Gowalla training graph (GraphHash, issue 4).

    flock /tmp/slimrec-bench.lock python benchmarks/clustering_gowalla.py --data-dir ../shared/data

Measures, on Gowalla's train split (29,858 users x 40,981 items, 810,128 edges):
- one clustering at a fixed resolution (default 200, where the reference scikit-network
  Louvain keeps about 16% of the rows in ~1.3 s), end to end from the CSR matrix: building the
  igraph graph, clustering, renumbering; the median of ``--repeats`` runs, plus the single-run
  time of the other algorithm/objective pairs at the same resolution;
- the full budget search (``search_resolution``) for the model tables at 16/10/5% of the dim-64
  fp32 bytes (each table at that fraction of its own bytes, as the allocator shares out a
  fractional budget of both), cold (empty cache) and warm (second table / rerun: answered from
  the cache);
- cluster statistics (counts, size distribution, modularities, coverage) of each clustering.

Writes ``benchmarks/results/clustering_gowalla.json``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import RESULTS
from slimrec.data.registry import load_dataset
from slimrec.embeddings import EmbeddingSpec, TableStats, resolve_config
from slimrec.env import environment
from slimrec.graph import BipartiteGraph, cluster_statistics, search_resolution
from slimrec.io import atomic_write_json

PAIRS = (("leiden", "barber"), ("leiden", "modularity"), ("louvain", "modularity"))


def time_one(matrix, resolution: float, algorithm: str,
             objective: str) -> tuple[float, float, dict]:
    """Wall and CPU seconds of graph construction + clustering from the CSR matrix, and the
    statistics. CPU seconds are less sensitive to other processes on a shared machine."""
    start, start_cpu = time.perf_counter(), time.process_time()
    graph = BipartiteGraph(matrix)
    clustering = graph.cluster(resolution, algorithm, objective, seed=0)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    return seconds, cpu_seconds, cluster_statistics(graph, clustering)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--resolution", type=float, default=200.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--budgets", nargs="+", default=["0.16", "0.1", "0.05"])
    args = parser.parse_args()
    data = load_dataset("gowalla", args.data_dir, progress=False)
    matrix = data.train
    print(f"gowalla train: {matrix.shape[0]:,} users x {matrix.shape[1]:,} items, "
          f"{matrix.nnz:,} edges")
    document: dict = {"dataset": {"name": "gowalla", "users": matrix.shape[0],
                                  "items": matrix.shape[1], "edges": int(matrix.nnz)},
                      "resolution": args.resolution, "fixed_resolution": {}, "budgets": {}}

    # The first build also imports igraph; the median of the next ones is the build's own cost.
    builds = []
    for _ in range(args.repeats + 1):
        build_start = time.process_time()
        BipartiteGraph(matrix).igraph(directed=True)
        builds.append(time.process_time() - build_start)
    document["igraph_build_cpu_seconds_first"] = builds[0]
    document["igraph_build_cpu_seconds_median"] = statistics.median(builds[1:])
    print(f"igraph graph build: {builds[0]:.2f}s CPU the first time (imports igraph), "
          f"{document['igraph_build_cpu_seconds_median']:.2f}s after (median)")
    for algorithm, objective in PAIRS:
        repeats = args.repeats if (algorithm, objective) == PAIRS[0] else 1
        runs = [time_one(matrix, args.resolution, algorithm, objective) for _ in range(repeats)]
        seconds, cpu_seconds = [run[0] for run in runs], [run[1] for run in runs]
        stats = runs[0][2]
        key = f"{algorithm}-{objective}"
        document["fixed_resolution"][key] = {
            "seconds_median": statistics.median(seconds), "seconds_all": seconds,
            "cpu_seconds_median": statistics.median(cpu_seconds), "statistics": stats}
        rows = (stats["user_clusters"] + stats["item_clusters"]) / sum(matrix.shape)
        print(f"{key} at resolution {args.resolution:g}: {statistics.median(seconds):.2f}s wall, "
              f"{statistics.median(cpu_seconds):.2f}s CPU (median of {repeats}, graph build "
              f"included), {stats['user_clusters']:,} user / "
              f"{stats['item_clusters']:,} item clusters = {rows:.1%} of the rows, Barber "
              f"modularity {stats['barber_modularity']:.4f}, modularity {stats['modularity']:.4f}")

    cache = Path(tempfile.mkdtemp(prefix="slimrec-clusters-"))
    for budget in args.budgets:
        configs, seconds = {}, {}
        for role, count in (("user", data.num_users), ("item", data.num_items)):
            start = time.perf_counter()
            configs[role] = resolve_config(EmbeddingSpec("graph", budget=budget), count,
                                           args.dim, TableStats(role=role, interactions=matrix,
                                                                cache_dir=cache))
            seconds[role] = time.perf_counter() - start
        graph = BipartiteGraph(matrix)
        search = search_resolution(graph, configs["user"].num_rows, configs["item"].num_rows,
                                   cache_dir=cache)
        stats = cluster_statistics(graph, search.clustering)
        document["budgets"][budget] = {
            "user_rows": configs["user"].num_rows, "item_rows": configs["item"].num_rows,
            "search": search.to_dict(), "search_seconds_cold": search.seconds,
            "user_table_solve_seconds": seconds["user"],
            "item_table_solve_seconds_cached": seconds["item"], "statistics": stats}
        print(f"budget {budget}: {configs['user'].num_rows:,} user / "
              f"{configs['item'].num_rows:,} item rows -> resolution {search.resolution:.4g} "
              f"({stats['user_clusters']:,} / {stats['item_clusters']:,} clusters) after "
              f"{len(search.evaluations)} clusterings ({sum(e.cached for e in search.evaluations)} "
              f"from earlier budgets' cache) in {search.seconds:.1f}s; second table "
              f"{seconds['item']:.2f}s from the cache")
    document["environment"] = environment()
    path = atomic_write_json(RESULTS / "clustering_gowalla.json", document)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
