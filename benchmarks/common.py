"""Helpers shared by the benchmark scripts: run one cell, keep its results file, skip done cells.

Each cell is one ``RunConfig``; its results document (the DESIGN.md shape) is written to
``benchmarks/results/<name>.json``. A cell whose file exists is skipped, so an interrupted sweep
resumes where it stopped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from slimrec.experiment import RunConfig, peak_rss_bytes, run_retrieval
from slimrec.io import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"
RUNS = Path(__file__).resolve().parents[1] / "runs" / "benchmarks"


def cell_name(config: RunConfig) -> str:
    budget = "full" if config.budget is None else str(config.budget).replace("%", "pct")
    return f"{config.dataset}_{config.model}_{config.embedding}_{budget}"


def run_cell(config: RunConfig, name: str | None = None, force: bool = False) -> dict:
    """Run one benchmark cell (or read its committed result) and return the document."""
    name = name or cell_name(config)
    path = RESULTS / f"{name}.json"
    if path.is_file() and not force:
        print(f"[skip] {name}: {path} exists")
        return json.loads(path.read_text())
    config = config.model_copy(update={"out": str(RUNS / name)})
    document = run_retrieval(config, command=" ".join(["python", *sys.argv]))
    document["peak_rss_bytes"] = peak_rss_bytes()
    atomic_write_json(path, document)
    test = document["metrics"]["test"]
    print(f"[done] {name}: recall@20={test['recall@20']:.4f} ndcg@20={test['ndcg@20']:.4f} "
          f"bytes={document['memory_bytes']['embeddings']:,}")
    return document
