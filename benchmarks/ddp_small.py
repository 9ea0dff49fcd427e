"""Issue 15: data-parallel training on one 2-core machine — 1 process x 2 threads against
2 processes x 1 thread (gloo), the same global batch, the same seed and epochs.

Both runs go through ``slimrec train`` (the second with ``--nproc 2``) on ML-1M (MF-BPR, dim 64,
full tables with row-sparse gradients, and hash at 25%), and the script writes
``benchmarks/results/scale/ddp_<method>.json`` with each run's throughput (training pairs per
second over the epochs), epoch time, wall time and test metrics. With one evaluation per run
(at the last epoch) the two runs see exactly the same steps.

    flock /tmp/slimrec-bench.lock python benchmarks/ddp_small.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "scale"
RUNS = Path(__file__).resolve().parents[1] / "runs" / "benchmarks" / "ddp"
SLIMREC = str(Path(sys.executable).parent / "slimrec")
METHODS = {"full": ["--embedding", "full", "--embedding-param", "sparse_grad=true"],
           "hash": ["--embedding", "hash", "--budget", "25%"]}


def train(name: str, method: str, data_dir: str, epochs: int, layout: list[str]) -> dict:
    out = RUNS / name
    command = [SLIMREC, "train", "--dataset", "ml-1m", "--data-dir", data_dir, "--dim", "64",
               "--epochs", str(epochs), "--eval-every", str(epochs), "--batch-size", "4096",
               "--lr", "2e-3", "--l2", "0", "--ks", "20", "--seed", "0", "--no-progress",
               "--out", str(out), *METHODS[method], *layout]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - start
    document = json.loads((out / "results.json").read_text())
    timing = document["timing"]
    pairs = document["dataset"]["train"] * timing["epochs"]
    return {"command": " ".join(command), "wall_seconds": wall,
            "train_seconds": timing["train_seconds"],
            "epoch_seconds_median": timing["epoch_seconds_median"],
            "pairs_per_second": pairs / timing["train_seconds"],
            "test": document["metrics"]["test"], "val": document["metrics"].get("val"),
            "embedding_bytes": document["memory_bytes"]["embeddings"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] /
                                                  "shared" / "data"))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--methods", default="full,hash")
    args = parser.parse_args()
    from slimrec.io import atomic_write_json

    for method in args.methods.split(","):
        one = train(f"{method}_1x2", method, args.data_dir, args.epochs, ["--threads", "2"])
        two = train(f"{method}_2x1", method, args.data_dir, args.epochs,
                    ["--nproc", "2", "--threads", "1"])
        document = {"stage": "ddp", "dataset": "ml-1m", "method": method,
                    "epochs": args.epochs, "global_batch": 4096,
                    "one_process_two_threads": one, "two_processes_one_thread": two,
                    "throughput_ratio": two["pairs_per_second"] / one["pairs_per_second"]}
        atomic_write_json(RESULTS / f"ddp_{method}.json", document)
        print(json.dumps({"method": method, "1x2 pairs/s": one["pairs_per_second"],
                          "2x1 pairs/s": two["pairs_per_second"],
                          "1x2 recall@20": one["test"]["recall@20"],
                          "2x1 recall@20": two["test"]["recall@20"]}))


if __name__ == "__main__":
    main()
