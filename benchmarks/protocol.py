"""Training protocols shared by the benchmark scripts, so every method is trained the same way.

``GOWALLA_MF`` is the protocol of the method-comparison sweeps (compression, GraphHash): every
method, the full table included, gets the same optimiser, learning rate, batch size, epoch cap
and early stopping. It is deliberately short (about a minute a run on 2 cores) so a sweep of
dozens of cells fits on a CPU; its full-table figure is therefore below the tuned reference of
``GOWALLA_MF_REFERENCE`` (the issue-2 benchmark), and ratios are always taken within a protocol.

Each protocol is the settings of a ``slimrec.tasks.RetrievalConfig``, training settings nested
under ``train`` (``common.retrieval_config`` builds one, with per-cell changes).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# Torch threads per benchmark process: 2 uses both cores of the reference machine; two sweeps
# side by side each run with SLIMREC_BENCH_THREADS=1 (recorded in every result's environment).
THREADS = int(os.environ.get("SLIMREC_BENCH_THREADS", "2"))
SHARED_DATA = str(Path(__file__).resolve().parents[2] / "shared" / "data")

GOWALLA_MF: dict[str, Any] = {
    "dataset": "gowalla", "data_dir": SHARED_DATA, "model": "mf", "dim": 64,
    "train": {"lr": 2e-3, "batch_size": 4096, "l2": 0.0, "epochs": 20, "eval_every": 5,
              "patience": 2},
    "val_fraction": 0.1, "seed": 0, "threads": THREADS, "ks": [20], "progress": False,
}

# The tuned full-table reference (issue 2): small init (std 0.01), lazy Adam on row-sparse
# gradients so a step costs O(batch) instead of O(table), lr 2e-3, batch 2048, no L2.
GOWALLA_MF_REFERENCE: dict[str, Any] = {
    **GOWALLA_MF,
    "train": {**GOWALLA_MF["train"], "lr": 2e-3, "batch_size": 2048, "epochs": 150,
              "patience": 3},
    "embedding_params": {"init_std": 0.01, "sparse_grad": True}, "ks": [10, 20, 50],
}

ML100K_MF_REFERENCE: dict[str, Any] = {
    "dataset": "ml-100k", "data_dir": SHARED_DATA, "model": "mf", "dim": 64,
    "train": {"lr": 1e-3, "batch_size": 1024, "l2": 0.0, "epochs": 200, "eval_every": 5,
              "patience": 3},
    "val_fraction": 0.1, "test_fraction": 0.2, "seed": 0, "threads": THREADS, "ks": [10, 20, 50],
    "embedding_params": {"init_std": 0.01, "sparse_grad": True}, "progress": False,
}


def protocol_for(dataset: str, data_dir: str | None = None) -> dict[str, Any]:
    """The tuned full-table reference protocol of a dataset, reading data from ``data_dir``."""
    protocol = {"gowalla": GOWALLA_MF_REFERENCE, "ml-100k": ML100K_MF_REFERENCE}[dataset]
    return {**protocol, "data_dir": data_dir or protocol["data_dir"]}
