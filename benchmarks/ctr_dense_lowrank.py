"""Low-rank dense layers on a trained DCN-V2 (Frappe): before, and after 2x and 4x compression.

    python benchmarks/ctr_dense_lowrank.py --data-dir ../shared/data
    python benchmarks/ctr_dense_lowrank.py --report

Starts from the full-table DCN-V2 run of ``ctr_grid.py`` (trained here first if absent), then
replaces every dense ``Linear`` whose factorised form is smaller by a rank-r pair chosen for 2x
and 4x fewer weights, from the principal components of the layer's outputs on 4,096 train rows
(``output``) or from the SVD of its weights (``svd``), without and with one epoch of
fine-tuning. Each cell is ``slimrec compress --model RUN --dense-rank 2x [...]`` and writes
``benchmarks/results/frappe_dcnv2_full_full_dense<ratio>_<method>[_ft1].json``; existing cells
are skipped. Each training step holds the benchmark lock (do not wrap the script in ``flock``).
"""

from __future__ import annotations

import argparse
import json

from common import RESULTS, RUNS, cell_name, command, ctr_config, updated
from ctr_grid import LOCK, PROTOCOL
from slimrec.budget import format_bytes
from slimrec.compress import compress_run
from slimrec.io import atomic_write_json, file_lock
from slimrec.spine import run

RATIOS = ("2x", "4x")
METHODS = ("output", "svd")
FINETUNE_EPOCHS = (0, 1)


def source_run(data_dir: str) -> str:
    """The full-table DCN-V2 Frappe run folder of the grid, trained now if missing."""
    config = ctr_config(PROTOCOL, dataset="frappe", data_dir=data_dir, model="dcnv2")
    name = cell_name(config)
    folder = RUNS / name
    if not (folder / "manifest.json").is_file():
        with file_lock(LOCK):
            document = run(updated(config, out=str(folder)), command=command())
        atomic_write_json(RESULTS / f"{name}.json", document)
    return str(folder)


def cell(ratio: str, method: str, epochs: int) -> str:
    source = cell_name(ctr_config(PROTOCOL, dataset="frappe", model="dcnv2"))
    return f"{source}_dense{ratio}_{method}" + (f"_ft{epochs}" if epochs else "")


def report() -> None:
    """A markdown table: the source run, then every compressed cell that has run."""
    print("| dense layers | fine-tune | test AUC | test LogLoss | dense bytes | model bytes |")
    print("|---|---|---|---|---|---|")
    shown_source = False
    for ratio in RATIOS:
        for method in METHODS:
            for epochs in FINETUNE_EPOCHS:
                path = RESULTS / f"{cell(ratio, method, epochs)}.json"
                if not path.is_file():
                    print(f"| {ratio} {method} | {epochs} epoch | missing | | | |")
                    continue
                document = json.loads(path.read_text())
                if not shown_source:
                    before = document["compression"]["before"]
                    test, memory = before["metrics"]["test"], before["memory_bytes"]
                    print(f"| full rank (trained) | – | {test['auc']:.4f} | "
                          f"{test['logloss']:.4f} | {format_bytes(memory['dense'])} | "
                          f"{format_bytes(memory['model_total'])} |")
                    shown_source = True
                test, memory = document["metrics"]["test"], document["memory_bytes"]
                print(f"| {ratio} {method} | {epochs} epoch | {test['auc']:.4f} | "
                      f"{test['logloss']:.4f} | {format_bytes(memory['dense'])} | "
                      f"{format_bytes(memory['model_total'])} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--force", action="store_true", help="rerun cells that have results")
    parser.add_argument("--report", action="store_true", help="print the results table")
    args = parser.parse_args()
    if args.report:
        report()
        return
    source = source_run(args.data_dir)
    for ratio in RATIOS:
        for method in METHODS:
            for epochs in FINETUNE_EPOCHS:
                name = cell(ratio, method, epochs)
                path = RESULTS / f"{name}.json"
                if path.is_file() and not args.force:
                    print(f"[skip] {name}: {path} exists")
                    continue
                with file_lock(LOCK):
                    document = compress_run(
                        source, dense_rank=ratio, dense_method=method, finetune_epochs=epochs,
                        out=RUNS / name, overrides={"data_dir": args.data_dir},
                        command=command())
                atomic_write_json(path, document)
                before = document["compression"]["before"]
                print(f"[done] {name}: auc {before['metrics']['test']['auc']:.4f} -> "
                      f"{document['metrics']['test']['auc']:.4f}, dense "
                      f"{format_bytes(before['memory_bytes']['dense'])} -> "
                      f"{format_bytes(document['memory_bytes']['dense'])}", flush=True)


if __name__ == "__main__":
    main()
