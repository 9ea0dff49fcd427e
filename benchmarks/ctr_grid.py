"""CTR with compressed field embeddings: every method at 25% and 10% of the full tables' bytes.

    python benchmarks/ctr_grid.py --dataset frappe --data-dir ../shared/data
    python benchmarks/ctr_grid.py --dataset ml-100k --data-dir ../shared/data
    python benchmarks/ctr_grid.py --report          # markdown tables of what has run

Frappe runs DeepFM and DCN-V2, MovieLens-100K runs DLRM and Wide & Deep; each with full tables,
then ``hash``, ``qr``, ``double_graph``, ``lowrank``, ``quantized`` and ``unified`` under one
global budget of 25% and 10% of the fp32 bytes of all the fields' full tables. Each cell writes
``benchmarks/results/<dataset>_<model>_<method>_<budget>.json`` (the ``slimrec train`` shape);
a cell whose file exists is skipped, so an interrupted sweep resumes. Methods not registered (yet)
are listed as missing. Each cell takes the benchmark lock (``/tmp/slimrec-bench.lock``, as
``flock`` does) while it trains, so other sweeps interleave between cells; do not wrap the script
itself in ``flock``, which would hold the lock it waits for.
"""

from __future__ import annotations

import argparse
import json

from common import RESULTS, cell_name, ctr_config, run_cell, updated
from protocol import THREADS
from slimrec.budget import format_bytes
from slimrec.embeddings import METHODS
from slimrec.errors import BudgetError
from slimrec.spine import prepare
from slimrec.tasks import CTRConfig

LOCK = "/tmp/slimrec-bench.lock"
MODELS = {"frappe": ("deepfm", "dcnv2"), "ml-100k": ("dlrm", "widedeep")}
METHOD_GRID = ("hash", "qr", "double_graph", "lowrank", "quantized", "unified")
BUDGETS = ("0.25", "0.1")
# One protocol for every cell (CTRConfig's defaults, spelt out): dim 16, MLP 256-256, Adam
# lr 3e-3 divided by 10 after each epoch without a better val AUC (the plateau schedule, an
# improvement being a gain of at least 1e-4), batch 4096, L2 0.01 on the batch embeddings, at
# most 30 epochs, stop after 2 epochs without a better val AUC, fields of at most 16 ids kept
# full, 7:2:1 seeded split. Tuned on Frappe's validation split only.
PROTOCOL = {"dim": 16, "keep_full_rows": 16, "threads": THREADS, "progress": False,
            "train": {"epochs": 30, "lr": 3e-3, "lr_schedule": "plateau", "lr_gamma": 0.1,
                      "batch_size": 4096, "l2": 0.01, "patience": 2, "eval_every": 1,
                      "min_delta": 1e-4}}


def grid(dataset: str, data_dir: str | None) -> list[CTRConfig]:
    """The full-table cell then every (registered method, budget) cell, model by model."""
    cells = []
    for model in MODELS[dataset]:
        full = ctr_config(PROTOCOL, dataset=dataset, data_dir=data_dir, model=model)
        cells.append(full)
        cells += [updated(full, embedding=method, budget=budget)
                  for method in METHOD_GRID if method in METHODS for budget in BUDGETS]
    return cells


def run_grid(dataset: str, data_dir: str, force: bool) -> None:
    for method in METHOD_GRID:
        if method not in METHODS:
            print(f"[missing] {dataset} {method}: method {method!r} is not registered")
    configs = grid(dataset, data_dir)
    data = prepare(configs[0])  # every cell has the same data settings
    for config in configs:
        try:
            run_cell(config, force=force, data=data, lock=LOCK)
        except BudgetError as error:
            print(f"[budget] {cell_name(config)}: {error}")


def report() -> None:
    """One markdown table per dataset and model: every grid cell, run or missing."""
    for dataset, models in MODELS.items():
        for model in models:
            rows = []
            for config in grid(dataset, None):
                if config.model != model:
                    continue
                path = RESULTS / f"{cell_name(config)}.json"
                label = f"{config.embedding} @ {config.budget or 'full'}"
                if not path.is_file():
                    rows.append(f"| {label} | – | – | – | – | missing |")
                    continue
                document = json.loads(path.read_text())
                test, memory = document["metrics"]["test"], document["memory_bytes"]
                rows.append(
                    f"| {label} | {test['auc']:.4f} | {test['logloss']:.4f} | "
                    f"{format_bytes(memory['embeddings'])} "
                    f"({memory['embeddings'] / memory['full_fp32_embeddings']:.1%}) | "
                    f"{document['timing']['epoch_seconds_median']:.1f} s | "
                    f"{document['timing']['epochs']} (best {document['timing']['best_epoch']}) |")
            print(f"\n### {dataset} · {model}\n")
            print("| embedding | test AUC | test LogLoss | embedding bytes (of full) | "
                  "epoch | epochs |")
            print("|---|---|---|---|---|---|")
            print("\n".join(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(MODELS))
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--force", action="store_true", help="rerun cells that have results")
    parser.add_argument("--report", action="store_true", help="print the results tables")
    args = parser.parse_args()
    if args.report:
        report()
    elif args.dataset:
        run_grid(args.dataset, args.data_dir, args.force)
    else:
        parser.error("give --dataset or --report")


if __name__ == "__main__":
    main()
