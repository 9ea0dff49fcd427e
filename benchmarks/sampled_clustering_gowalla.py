"""Sampled GraphHash clustering (``slimrec.graph.sampled``) against whole-graph Leiden, Gowalla.

For the whole train graph and for degree-weighted samples of 10%, 25% and 50% of its edges
(the rest assigned by neighbour majority), at one resolution: clustering seconds, clusters,
Barber modularity and edge coverage on the WHOLE graph, and the accuracy of MF-BPR with
``graphhash`` tables (one row per cluster of each side, the paper's GraphHash) built from that
clustering, trained with the shared protocol (``protocol.GOWALLA_MF``, 1 thread). The
clustering is handed to the tables by replacing ``GraphTableConfig.clustering`` for the run
(the library's graph tables cluster the whole graph; this script measures the variant before
it is wired in). Writes ``benchmarks/results/scale/sampled_clustering_gowalla.json``.

    flock /tmp/slimrec-bench.lock python benchmarks/sampled_clustering_gowalla.py
"""

from __future__ import annotations

import argparse
import json

from common import RESULTS, RUNS, retrieval_config, updated
from protocol import GOWALLA_MF
from slimrec.embeddings.graph import GraphTableConfig
from slimrec.graph.clustering import (
    BipartiteGraph,
    Clustering,
    barber_modularity,
    edge_coverage,
)
from slimrec.graph.sampled import cluster_sampled
from slimrec.io import atomic_write_json
from slimrec.spine import prepare, run


def train_with(clustering: Clustering, config, data, name: str) -> dict:
    original = GraphTableConfig.clustering
    GraphTableConfig.clustering = lambda self, graph, stats: clustering
    try:
        document = run(updated(config, out=str(RUNS / "sampled_clustering" / name)), data=data,
                       command="python benchmarks/sampled_clustering_gowalla.py")
    finally:
        GraphTableConfig.clustering = original
    return {"test": document["metrics"]["test"], "val": document["metrics"]["val"],
            "embedding_bytes": document["memory_bytes"]["embeddings"],
            "full_fp32_bytes": document["memory_bytes"]["full_fp32_embeddings"],
            "epochs": document["timing"]["epochs"],
            "train_seconds": document["timing"]["train_seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=float, default=100.0)
    parser.add_argument("--fractions", default="0.1,0.25,0.5")
    parser.add_argument("--no-train", action="store_true", help="clustering figures only")
    args = parser.parse_args()
    base = retrieval_config(GOWALLA_MF, threads=1, embedding="graphhash",
                            embedding_params={"resolution": args.resolution})
    data = prepare(base)
    train = data.train
    variants: list[tuple[str, float]] = [("whole", 1.0)]
    variants += [(f"sampled_{f}", float(f)) for f in args.fractions.split(",")]
    rows = []
    for name, fraction in variants:
        if fraction == 1.0:
            clustering = BipartiteGraph(train).cluster(args.resolution, "leiden", "barber", 0)
        else:
            clustering = cluster_sampled(train, fraction, args.resolution, seed=0)
        row = {"variant": name, "sample_fraction": fraction, "seconds": clustering.seconds,
               "clusters": clustering.num_clusters,
               "user_clusters": clustering.num_user_clusters,
               "item_clusters": clustering.num_item_clusters,
               "barber_modularity": barber_modularity(train, clustering.labels),
               "edge_coverage": edge_coverage(train, clustering.labels)}
        if not args.no_train:
            row["mf_graphhash"] = train_with(clustering, base, data, name)
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "mf_graphhash"}
                         | ({"recall@20": row["mf_graphhash"]["test"]["recall@20"]}
                            if "mf_graphhash" in row else {})))
    atomic_write_json(RESULTS / "scale" / "sampled_clustering_gowalla.json",
                      {"dataset": "gowalla", "resolution": args.resolution,
                       "edges": int(train.nnz), "protocol": GOWALLA_MF, "variants": rows})


if __name__ == "__main__":
    main()
