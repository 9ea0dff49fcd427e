"""Helpers shared by the benchmark scripts: build a cell's config, run it, keep its results file,
skip done cells.

Each cell is one run config (``slimrec.tasks.RetrievalConfig`` or ``CTRConfig``); its results
document (the one results.json schema) is written to ``benchmarks/results/<name>.json``. A cell
whose file exists is skipped, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from slimrec.config import parse_config
from slimrec.env import peak_rss_bytes
from slimrec.io import atomic_write_json, file_lock
from slimrec.spine import run
from slimrec.tasks import CTRConfig, RetrievalConfig, RunConfig, get_task

RESULTS = Path(__file__).resolve().parent / "results"
RUNS = Path(__file__).resolve().parents[1] / "runs" / "benchmarks"

C = TypeVar("C", bound=RunConfig)


def command() -> str:
    """The command line of this benchmark process, as results documents record it."""
    return " ".join(["python", *sys.argv])


def retrieval_config(protocol: Mapping[str, Any], **updates: Any) -> RetrievalConfig:
    """A retrieval run config: ``protocol`` (``protocol.py``) with ``updates`` (see ``updated``)."""
    return updated(parse_config(RetrievalConfig, protocol, where="protocol"), **updates)


def ctr_config(protocol: Mapping[str, Any], **updates: Any) -> CTRConfig:
    """A CTR run config: ``protocol`` (``ctr_grid.PROTOCOL``) with ``updates``."""
    return updated(parse_config(CTRConfig, protocol, where="protocol"), **updates)


def updated(config: C, **updates: Any) -> C:
    """``config`` with ``updates``, validated again (a budget is parsed, a name checked).

    ``train`` updates merge key by key (``train={"lr": 5e-3}`` changes the lr only); every other
    key is replaced whole.
    """
    values = config.model_dump(mode="json")
    train = {**values["train"], **updates.pop("train", {})}
    return parse_config(type(config), {**values, **updates, "train": train}, where="cell")


def budget_slug(budget: str | float) -> str:
    """A budget as it appears in result file names: ``"5%"`` -> ``"5pct"``."""
    return str(budget).replace("%", "pct")


def cell_name(config: RunConfig) -> str:
    budget = "full" if config.budget is None else budget_slug(config.budget)
    return f"{config.dataset}_{config.model}_{config.embedding}_{budget}"


def summary_line(name: str, document: dict) -> str:
    """``[done] <name>: <the task's report metrics> bytes=<embedding bytes>``."""
    test = document["metrics"]["test"]
    metrics = " ".join(f"{key}={test[key]:.4f}"
                       for key in get_task(document["task"]).report_metrics if key in test)
    return f"[done] {name}: {metrics} bytes={document['memory_bytes']['embeddings']:,}"


def run_cell(config: RunConfig, name: str | None = None, force: bool = False,
             data: Any = None, lock: str | None = None) -> dict:
    """Run one benchmark cell (or read its committed result) and return the document.

    ``data`` (the dataset of ``config``, already loaded) skips loading; ``lock`` is a file held
    (flock) while the cell trains, so other heavy jobs take turns between cells.
    """
    name = name or cell_name(config)
    path = RESULTS / f"{name}.json"
    if path.is_file() and not force:
        print(f"[skip] {name}: {path} exists")
        return json.loads(path.read_text())
    config = updated(config, out=str(RUNS / name))
    with file_lock(lock):
        document = run(config, data=data, command=command())
    document["peak_rss_bytes"] = peak_rss_bytes()
    atomic_write_json(path, document)
    print(summary_line(name, document), flush=True)
    return document
