"""SASRec on Amazon Beauty (S3-Rec sequences), full ranking, leave-one-out; full and compressed
item tables.

Protocol (fixed before looking at test): max_len 50, dim 64, 2 blocks, 1 head, dropout 0.5
(SASRec's setting for the sparse Amazon data), learned positions, sampled softmax with 256
uniform negatives (the eSASRec benchmark's "SASRec+SS", whose 0.0921 / 0.0531 is the target),
Adam lr 1e-3, batch 128, at most ``--epochs`` epochs with validation NDCG@10 every 2 epochs and
patience 5 (early stopping and the best epoch on validation only). Each cell also records the
test metrics of the ``uni100`` protocol under ``metrics_uni100``.

Cells: ``full`` (no budget) and ``<method>@<budget>`` for compressed item tables. Results go to
``benchmarks/results/sequential_beauty/<cell>.json``; a cell whose file exists is skipped.
One torch thread, under the shared lock::

    .venv/bin/python benchmarks/sequential_beauty.py --cells full,graph_popularity@10%
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import RUNS, command
from slimrec.env import peak_rss_bytes
from slimrec.io import atomic_write_json, file_lock
from slimrec.serve.artifact import load_artifact
from slimrec.spine import load_config, run
from slimrec.tasks import get_task

RESULTS = Path(__file__).resolve().parent / "results" / "sequential_beauty"
LOCK = "/tmp/slimrec-bench.lock"
PROTOCOL = {"task": "sequential", "dataset": "beauty", "model": "sasrec", "dim": 64,
            "max_len": 50, "loss": "sampled_softmax", "num_negatives": 256, "seed": 0,
            "threads": 1, "progress": False,
            "model_params": {"num_layers": 2, "num_heads": 1, "dropout": 0.5},
            "train": {"lr": 1e-3, "batch_size": 128, "eval_every": 2, "patience": 5}}


def cell_settings(cell: str, epochs: int, data_dir: str) -> dict:
    settings = {**PROTOCOL, "data_dir": data_dir,
                "train": {**PROTOCOL["train"], "epochs": epochs}}
    if cell != "full":
        method, budget = cell.split("@")
        settings.update(embedding=method, budget=budget)
    return settings


def run_cell(cell: str, epochs: int, data_dir: str, data=None, lock: str | None = LOCK) -> dict:
    path = RESULTS / f"{cell.replace('@', '_').replace('%', 'pct')}.json"
    if path.is_file():
        print(f"[skip] {cell}: {path} exists")
        return json.loads(path.read_text())
    out = RUNS / "sequential_beauty" / path.stem
    config = load_config(overrides={**cell_settings(cell, epochs, data_dir), "out": str(out)})
    with file_lock(lock):
        document = run(config, data=data, command=command())
        task = get_task("sequential")
        sampled = config.model_copy(update={"eval": "uni100"})
        model = load_artifact(out).model
        document["metrics_uni100"] = {"test": task.evaluate(model, data or task.load(config),
                                                            "test", sampled).metrics}
    document["peak_rss_bytes"] = peak_rss_bytes()
    atomic_write_json(path, document)
    test = document["metrics"]["test"]
    print(f"[done] {cell}: recall@10={test['recall@10']:.4f} ndcg@10={test['ndcg@10']:.4f} "
          f"uni100 ndcg@10={document['metrics_uni100']['test']['ndcg@10']:.4f} "
          f"item bytes={document['memory_bytes']['embeddings']:,} "
          f"epochs={document['timing']['epochs']} best={document['timing']['best_epoch']}",
          flush=True)
    return document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", default="full,graph_popularity@10%,graph_popularity@5%")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--no-lock", action="store_true", help="do not take the shared lock "
                        "(accuracy is unaffected; timings become upper bounds)")
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2]
                                                  / "shared" / "data"))
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = get_task("sequential").load(load_config(overrides=cell_settings(
        "full", args.epochs, args.data_dir)))
    for cell in args.cells.split(","):
        run_cell(cell, args.epochs, args.data_dir, data, lock=None if args.no_lock else LOCK)


if __name__ == "__main__":
    main()
