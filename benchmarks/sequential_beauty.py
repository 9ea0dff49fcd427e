"""SASRec on the S3-Rec Amazon sequences (Beauty, Sports, Toys) and MovieLens-1M, full ranking,
leave-one-out; full and compressed item tables, dense or BlossomRec attention.

Three protocols, all fixed before looking at test; every cell early-stops and keeps its best
epoch on validation NDCG@10 only (checked every 2 epochs, patience 5, at most ``--epochs``;
``ml1m``: every 5, patience 3):

- ``slimrec`` (the default): max_len 50, dim 64, 2 blocks, 1 head, dropout 0.5 (SASRec's
  setting for the sparse Amazon data), learned positions, sampled softmax with 256 uniform
  negatives, Adam lr 1e-3, batch 128.
- ``esasrec``: the configuration of the eSASRec benchmark's "SASRec+SS" row
  (``blondered/transformer_benchmark``, ``configs/paper/loo/s3_vanilla.yaml``), whose Beauty
  0.0921 / 0.0531 is issue 13's target: dim 256, 1 block, 1 head, dropout 0.2, max_len 50,
  sampled softmax with 256 negatives; lr 1e-3 and batch 128 as the slimrec protocol.
- ``ml1m``: SASRec's ML-1M setting, max_len 200, dropout 0.2, otherwise as slimrec, with full
  cross-entropy over all items.

Each cell also records the test metrics of the ``uni100`` protocol under ``metrics_uni100``.
Cells: ``full`` (no budget) and ``<method>@<budget>`` for compressed item tables, each optionally
prefixed ``blossom:`` for BlossomRec attention (file stem ``blossom_<cell>``). Results go to
``benchmarks/results/sequential_<dataset>/[<protocol>_]<cell>.json`` (no prefix for the
slimrec protocol); a cell whose file exists is skipped. One torch thread, under the shared lock::

    .venv/bin/python benchmarks/sequential_beauty.py --cells full,graph_popularity@10%
    .venv/bin/python benchmarks/sequential_beauty.py --protocol esasrec --dataset toys --cells full
    .venv/bin/python benchmarks/sequential_beauty.py --protocol ml1m --dataset ml-1m \
        --cells full,blossom:full --epochs 50
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

RESULTS = Path(__file__).resolve().parent / "results"
LOCK = "/tmp/slimrec-bench.lock"
SLIMREC = {"task": "sequential", "model": "sasrec", "dim": 64,
           "max_len": 50, "loss": "sampled_softmax", "num_negatives": 256, "seed": 0,
           "threads": 1, "progress": False,
           "model_params": {"num_layers": 2, "num_heads": 1, "dropout": 0.5},
           "train": {"lr": 1e-3, "batch_size": 128, "eval_every": 2, "patience": 5}}
PROTOCOLS = {"slimrec": SLIMREC,
             "esasrec": {**SLIMREC, "dim": 256,
                         "model_params": {"num_layers": 1, "num_heads": 1, "dropout": 0.2}},
             # SASRec's ML-1M setting (max_len 200, dropout 0.2) with full cross-entropy, the
             # best loss of the published comparisons; 3,706 items make every logit cheap.
             "ml1m": {**SLIMREC, "max_len": 200, "loss": "full_ce",
                      "model_params": {"num_layers": 2, "num_heads": 1, "dropout": 0.2},
                      "train": {**SLIMREC["train"], "eval_every": 5, "patience": 3}}}
# A cell ``blossom:<cell>`` swaps SASRec's dense causal attention for BlossomRec's.
BLOSSOM = "blossom:"


def cell_settings(protocol: str, dataset: str, cell: str, epochs: int, data_dir: str) -> dict:
    base = PROTOCOLS[protocol]
    settings = {**base, "dataset": dataset, "data_dir": data_dir,
                "train": {**base["train"], "epochs": epochs}}
    if cell.startswith(BLOSSOM):
        settings["model_params"] = {**base["model_params"], "attention": "blossom"}
        cell = cell.removeprefix(BLOSSOM)
    if cell != "full":
        method, budget = cell.split("@")
        settings.update(embedding=method, budget=budget)
    return settings


def result_path(protocol: str, dataset: str, cell: str) -> Path:
    prefix = "" if protocol == "slimrec" else f"{protocol}_"
    name = f"{prefix}{cell.replace(BLOSSOM, 'blossom_').replace('@', '_').replace('%', 'pct')}"
    return RESULTS / f"sequential_{dataset}" / f"{name}.json"


def run_cell(protocol: str, dataset: str, cell: str, epochs: int, data_dir: str, data=None,
             lock: str | None = LOCK) -> dict:
    path = result_path(protocol, dataset, cell)
    if path.is_file():
        print(f"[skip] {cell}: {path} exists")
        return json.loads(path.read_text())
    out = RUNS / f"sequential_{dataset}" / path.stem
    settings = cell_settings(protocol, dataset, cell, epochs, data_dir)
    config = load_config(overrides={**settings, "out": str(out)})
    with file_lock(lock):
        document = run(config, data=data, command=command())
        task = get_task("sequential")
        sampled = config.model_copy(update={"eval": "uni100"})
        model = load_artifact(out).model
        document["metrics_uni100"] = {"test": task.evaluate(model, data or task.load(config),
                                                            "test", sampled).metrics}
    document["peak_rss_bytes"] = peak_rss_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
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
    parser.add_argument("--dataset", default="beauty",
                        choices=("beauty", "sports", "toys", "ml-1m"))
    parser.add_argument("--protocol", default="slimrec", choices=sorted(PROTOCOLS))
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--no-lock", action="store_true", help="do not take the shared lock "
                        "(accuracy is unaffected; timings become upper bounds)")
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2]
                                                  / "shared" / "data"))
    args = parser.parse_args()
    data = get_task("sequential").load(load_config(overrides=cell_settings(
        args.protocol, args.dataset, "full", args.epochs, args.data_dir)))
    for cell in args.cells.split(","):
        run_cell(args.protocol, args.dataset, cell, args.epochs, args.data_dir, data,
                 lock=None if args.no_lock else LOCK)


if __name__ == "__main__":
    main()
