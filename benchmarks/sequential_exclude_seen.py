"""Issue 13: how much of the gap to the published SASRec figures is the evaluation's treatment of
seen items? Re-evaluates trained runs of ``sequential_beauty.py`` on test, full ranking, with the
user's history items rankable (``exclude_seen: false``, SlimRec's default and what the issue
asks) and dropped from the ranking (``exclude_seen: true``, what many published evaluators do).
The models are not retrained; only the evaluation differs.

    .venv/bin/python benchmarks/sequential_exclude_seen.py beauty:full toys:full sports:full \\
        beauty:esasrec_full

Each argument is ``<dataset>:<cell file stem>``; the run folder is
``runs/benchmarks/sequential_<dataset>/<stem>``. Writes
``benchmarks/results/sequential_exclude_seen.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from common import RUNS, command
from slimrec.io import atomic_write_json
from slimrec.serve.artifact import load_artifact
from slimrec.spine import load_config
from slimrec.tasks import get_task

RESULTS = Path(__file__).resolve().parent / "results" / "sequential_exclude_seen.json"
SHOWN = ("recall@10", "ndcg@10", "recall@20", "ndcg@20", "mrr")


def evaluate_both(dataset: str, stem: str, data_dir: str) -> dict:
    """Test metrics of the run ``stem`` with seen items kept and dropped."""
    task = get_task("sequential")
    model = load_artifact(RUNS / f"sequential_{dataset}" / stem).model
    config = load_config(overrides={"task": "sequential", "dataset": dataset,
                                    "data_dir": data_dir, "max_len": model.max_len})
    data = task.load(config)
    cell = {"dataset": dataset, "run": stem}
    for exclude in (False, True):
        metrics = task.evaluate(model, data, "test",
                                config.model_copy(update={"exclude_seen": exclude})).metrics
        cell[f"exclude_seen_{str(exclude).lower()}"] = {k: metrics[k] for k in SHOWN}
    return cell


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="<dataset>:<cell file stem>")
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2]
                                                  / "shared" / "data"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    cells = []
    for spec in args.runs:
        dataset, _, stem = spec.partition(":")
        cell = evaluate_both(dataset, stem, args.data_dir)
        kept, dropped = cell["exclude_seen_false"], cell["exclude_seen_true"]
        print(f"{dataset:7s} {stem:22s} recall@10 {kept['recall@10']:.4f} -> "
              f"{dropped['recall@10']:.4f}, ndcg@10 {kept['ndcg@10']:.4f} -> "
              f"{dropped['ndcg@10']:.4f}", flush=True)
        cells.append(cell)
    atomic_write_json(RESULTS, {"cells": cells, "command": command()})


if __name__ == "__main__":
    main()
