"""Re-run committed benchmark cells with the current code and compare them with the committed
figures (issue 11: every figure must still reproduce after the one-spine refactor).

Each cell is built from its benchmark's own protocol (``protocol.GOWALLA_MF``,
``ctr_grid.PROTOCOL``), trained into ``runs/benchmarks/spine_reruns/<name>``, and its results
document is written to ``benchmarks/results/spine_reruns/<name>.json``; the table compares the
test metric and the embedding bytes with ``benchmarks/results/<name>.json``.

    python benchmarks/spine_reruns.py --data-dir ../shared/data [--cells a,b] [--report]
"""

from __future__ import annotations

import argparse
import json

from common import RESULTS, RUNS, command, ctr_config, retrieval_config, updated
from ctr_grid import PROTOCOL
from protocol import GOWALLA_MF
from slimrec.env import peak_rss_bytes
from slimrec.io import atomic_write_json
from slimrec.spine import run

OUT = RESULTS / "spine_reruns"
# Committed cell -> (metric, how to rebuild its config from the benchmark's protocol).
CELLS = {
    "gowalla_mf_full_full": ("recall@20", lambda d: retrieval_config(GOWALLA_MF, data_dir=d)),
    "gowalla_mf_graph_popularity_0.05": ("recall@20", lambda d: retrieval_config(
        GOWALLA_MF, data_dir=d, embedding="graph_popularity", budget="0.05")),
    "frappe_deepfm_full_full": ("auc", lambda d: ctr_config(
        PROTOCOL, dataset="frappe", data_dir=d, model="deepfm")),
    "frappe_deepfm_double_graph_0.25": ("auc", lambda d: ctr_config(
        PROTOCOL, dataset="frappe", data_dir=d, model="deepfm", embedding="double_graph",
        budget="0.25")),
    "ml-100k_dlrm_quantized_0.1": ("auc", lambda d: ctr_config(
        PROTOCOL, dataset="ml-100k", data_dir=d, model="dlrm", embedding="quantized",
        budget="0.1")),
}


def rerun(name: str, data_dir: str) -> dict:
    config = updated(CELLS[name][1](data_dir), out=str(RUNS / "spine_reruns" / name))
    document = run(config, command=command())
    document["peak_rss_bytes"] = peak_rss_bytes()
    atomic_write_json(OUT / f"{name}.json", document)
    return document


def report() -> None:
    print("| cell | metric | committed | re-run | difference | committed bytes | re-run bytes |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, (metric, _) in CELLS.items():
        path = OUT / f"{name}.json"
        if not path.is_file():
            print(f"| {name} | {metric} | | not re-run yet | | | |")
            continue
        before = json.loads((RESULTS / f"{name}.json").read_text())
        after = json.loads(path.read_text())
        old, new = before["metrics"]["test"][metric], after["metrics"]["test"][metric]
        print(f"| {name} | {metric} | {old:.6f} | {new:.6f} | {new - old:+.2e} "
              f"| {before['memory_bytes']['embeddings']:,} "
              f"| {after['memory_bytes']['embeddings']:,} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="folder of the datasets")
    parser.add_argument("--cells", help="comma-separated subset of " + ", ".join(CELLS))
    parser.add_argument("--report", action="store_true", help="only print the comparison")
    args = parser.parse_args()
    if not args.report:
        names = args.cells.split(",") if args.cells else list(CELLS)
        for name in names:
            document = rerun(name, args.data_dir or GOWALLA_MF["data_dir"])
            metric = CELLS[name][0]
            print(f"[done] {name}: {metric}={document['metrics']['test'][metric]:.6f}",
                  flush=True)
    report()


if __name__ == "__main__":
    main()
