"""``slimrec bench``: a sweep over models x methods x budgets x seeds on one dataset.

Each cell is one run config (``RunConfig`` for ``task: retrieval``, ``CTRRunConfig`` for
``task: ctr``); its results document (the DESIGN.md shape plus ``bench`` and
``peak_rss_bytes``) goes to ``<out>/cells/<cell>.json`` and its model, checkpoint and
``results.json`` to ``<runs_dir>/<cell>/``. A cell whose JSON exists is skipped, and a cell
interrupted mid-training resumes from its per-epoch checkpoint, so rerunning the same command
after an interruption continues where it stopped. A cell whose budget the method cannot meet is
recorded as ``"status": "infeasible"`` with the solver's message.

Budgets (retrieval): a fraction or percentage is of each table's full fp32 size (as in
``slimrec train``); an absolute size (``"5MB"``) is the TOTAL for the user and item tables
together, split in proportion to their full sizes. CTR budgets are global over the field tables,
as in ``slimrec train --task ctr``.

Config file (YAML), every key optional but ``methods``::

    dataset: gowalla
    data_dir: ../shared/data
    out: benchmarks/results/gowalla_pareto
    models: [mf, lightgcn]
    methods: [full, hash, qr]
    budgets: [1.0, 0.25, 0.1]
    seeds: [0]
    settings: {dim: 64, epochs: 400, lr: 0.001}     # run-config fields for every cell
    model_settings: {lightgcn: {model_params: {num_layers: 3}}}
    method_params: {qr: {operation: mult}}          # fixed parameters of a method
    method_budgets: {full: [1.0]}                   # a method's own budgets (default: budgets)

Cells run model by model, then budget by budget (in the order listed), then method by method,
so an interrupted sweep has whole budget columns rather than whole methods.
"""

from __future__ import annotations

import fcntl
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field
from tqdm.auto import tqdm

from slimrec.budget import parse_budget
from slimrec.config import FrozenConfig, parse_config
from slimrec.embeddings.spec import method_config
from slimrec.errors import BudgetError, ConfigError
from slimrec.experiment import peak_rss_bytes
from slimrec.io import atomic_write_json

# Run-config fields that the sweep sets per cell; ``settings`` may not set them.
SWEPT = ("dataset", "data_dir", "model", "embedding", "embedding_params", "budget", "seed", "out")
CHECKPOINT_FILE = "checkpoint.pt"
DEFAULT_METRICS = {"retrieval": "recall@20", "ctr": "auc"}


@dataclass(frozen=True)
class Task:
    """How cells of one task are run: the task's own config, data, model, loop and writer."""

    config_class: type[FrozenConfig]
    models: dict[str, Any]
    prepare: Callable[[Any], Any]
    data_key: Callable[[Any], Any]  # cells with equal keys share one loaded dataset
    build: Callable[[Any, Any], Any]
    train: Callable[..., Any]
    finish: Callable[..., dict[str, Any]]
    budget: Callable[[Any, Any], str | None]  # the budget the build step should apply


def task_runner(task: str) -> Task:
    """The ``Task`` of ``"retrieval"`` or ``"ctr"`` (imported lazily: CTR pulls in more)."""
    if task == "retrieval":
        from slimrec.experiment import MODELS, RunConfig, build_model, finish_run, prepare_data
        from slimrec.train.loop import train_bpr

        return Task(RunConfig, MODELS, prepare_data, lambda config: config.seed, build_model,
                    train_bpr, finish_run,
                    lambda config, data: table_budget(config.budget, data.num_users,
                                                      data.num_items, config.dim))
    from slimrec.ctr_experiment import (
        CTRRunConfig,
        build_ctr_model,
        finish_ctr_run,
        prepare_field_data,
    )
    from slimrec.models.ctr import CTR_MODELS
    from slimrec.train.ctr_loop import train_ctr

    return Task(CTRRunConfig, CTR_MODELS, prepare_field_data,
                lambda config: (config.data_seed, config.min_count, config.split),
                build_ctr_model, train_ctr, finish_ctr_run, lambda config, data: config.budget)


class BenchConfig(FrozenConfig):
    """A sweep: the grid, shared run settings, where results go."""

    task: Literal["retrieval", "ctr"] = "retrieval"
    dataset: str = "synthetic"
    data_dir: str | None = None
    out: str = "runs/bench"
    runs_dir: str | None = Field(None, description="models and checkpoints; default <out>/runs")
    models: list[str] = Field(default_factory=lambda: ["mf"], min_length=1)
    methods: list[str] = Field(min_length=1)
    budgets: list[str | float] = Field(default_factory=lambda: ["100%"], min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    settings: dict[str, Any] = Field(default_factory=dict)
    model_settings: dict[str, dict[str, Any]] = Field(default_factory=dict)
    method_params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    method_budgets: dict[str, list[str | float]] = Field(default_factory=dict)
    reference_method: str = Field("full", description="marked as the reference in the plot")
    metric: str | None = Field(None, description="test metric of the report and plot; "
                               "default recall@20 (retrieval) or auc (ctr)")
    lock: str | None = Field(None, description="file locked (flock) around each cell, to take "
                             "turns with other heavy jobs on a shared machine")
    progress: bool = True

    def runs_path(self) -> Path:
        return Path(self.runs_dir) if self.runs_dir else Path(self.out) / "runs"

    def report_metric(self) -> str:
        return self.metric or DEFAULT_METRICS[self.task]


@dataclass(frozen=True)
class Cell:
    """One point of the grid; ``config.budget`` is still the budget as written in the sweep."""

    name: str
    config: Any  # the task's run config

    def result_path(self, bench: BenchConfig) -> Path:
        return Path(bench.out) / "cells" / f"{self.name}.json"


def budget_label(budget: str | float) -> str:
    """File-name-safe label: ``0.1`` -> ``10pct``, ``"5MB"`` -> ``5000000B``."""
    parsed = parse_budget(budget)
    if parsed.fraction is not None:
        return f"{parsed.fraction * 100:g}pct"
    return f"{parsed.num_bytes}B"


def table_budget(budget: str | None, num_users: int, num_items: int, dim: int) -> str | None:
    """The per-table budget ``build_model`` applies for a sweep budget.

    Fractions pass through. An absolute size is a total over both tables; it becomes the
    fraction ``bytes / full bytes of both tables`` of each, so the shares are proportional to
    the tables' full sizes and sum to at most the total.
    """
    if budget is None:
        return None
    parsed = parse_budget(budget)
    if parsed.num_bytes is None:
        return budget
    full_bytes = (num_users + num_items) * dim * 4
    return f"{parsed.num_bytes / full_bytes * 100!r}%"


def _check_names(bench: BenchConfig, task: Task) -> None:
    for model in [*bench.models, *bench.model_settings]:
        if model not in task.models:
            raise ConfigError(f"BenchConfig.models: unknown {bench.task} model {model!r}; "
                              f"known: {', '.join(task.models)}.")
    for method in [*bench.methods, *bench.method_params, *bench.method_budgets]:
        method_config(method)  # raises with a "did you mean"
    fixed = sorted(set(bench.settings) & set(SWEPT))
    for overrides in bench.model_settings.values():
        fixed += sorted(set(overrides) & set(SWEPT))
    if fixed:
        raise ConfigError(f"BenchConfig.settings: {', '.join(fixed)} are set per cell by the "
                          f"sweep (from dataset, data_dir, models, methods, method_params, "
                          f"budgets, seeds, out); remove them from settings.")
    for budget in [*bench.budgets, *(b for own in bench.method_budgets.values() for b in own)]:
        parse_budget(budget)


def cells(bench: BenchConfig, task: Task) -> list[Cell]:
    """Every cell of the grid, validated before anything runs (a typo fails at once)."""
    _check_names(bench, task)
    grid = []
    budgets: dict[str, str | float] = {}  # by label, so 0.1 and "10%" are one budget
    for budget in [*bench.budgets, *(b for own in bench.method_budgets.values() for b in own)]:
        budgets.setdefault(budget_label(budget), budget)
    for model in bench.models:
        for label, budget in budgets.items():
            for method in bench.methods:
                own = bench.method_budgets.get(method, bench.budgets)
                if label not in {budget_label(b) for b in own}:
                    continue
                for seed in bench.seeds:
                    name = f"{bench.dataset}_{model}_{method}_{label}_s{seed}"
                    values = {**bench.settings, **bench.model_settings.get(model, {}),
                              "dataset": bench.dataset, "data_dir": bench.data_dir,
                              "model": model, "embedding": method,
                              "embedding_params": bench.method_params.get(method, {}),
                              "budget": str(budget), "seed": seed,
                              "out": str(bench.runs_path() / name)}
                    values.setdefault("progress", bench.progress)
                    grid.append(Cell(name, parse_config(task.config_class, values,
                                                        where=f"bench cell {name}")))
    return grid


def run_cell(cell: Cell, bench: BenchConfig, task: Task, data: Any,
             command: str) -> dict[str, Any]:
    """Train and evaluate one cell (resuming its checkpoint); write and return its document."""
    config = cell.config.model_copy(update={"budget": task.budget(cell.config, data)})
    if config.threads:
        torch.set_num_threads(config.threads)
    checkpoint = Path(config.out) / CHECKPOINT_FILE
    info = {"cell": cell.name, "budget": cell.config.budget, "table_budget": config.budget}
    start = time.perf_counter()
    try:
        model = task.build(config, data)
    except BudgetError as error:
        document = {"status": "infeasible", "error": str(error), "model": config.model,
                    "embedding": {"method": config.embedding, "budget": cell.config.budget},
                    "seed": config.seed, "bench": info}
        atomic_write_json(cell.result_path(bench), document)
        return document
    preprocess_seconds = time.perf_counter() - start
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    result = task.train(model, data, config.train_config(), checkpoint=checkpoint)
    document = task.finish(config, model, data, result, preprocess_seconds, command,
                          extra={"status": "done", "bench": info})
    document["peak_rss_bytes"] = peak_rss_bytes()
    atomic_write_json(cell.result_path(bench), document)
    checkpoint.unlink(missing_ok=True)  # the cell is complete; the artifact holds the model
    return document


def _by_data(grid: list[Cell], task: Task) -> Iterator[list[Cell]]:
    """Cells grouped by the data they need (retrieval: the seed carves the validation split),
    grid order kept, so each dataset is loaded once."""
    for key in dict.fromkeys(task.data_key(cell.config) for cell in grid):
        yield [cell for cell in grid if task.data_key(cell.config) == key]


@contextmanager
def held(lock: str | None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the file ``lock`` (created if missing) for the block;
    nothing when ``lock`` is None."""
    if lock is None:
        yield
        return
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_bench(bench: BenchConfig, command: str | None = None,
              only_methods: list[str] | None = None) -> list[dict[str, Any]]:
    """Run every unfinished cell (only those of ``only_methods`` when given), then return the
    documents of all finished cells of the grid, in grid order."""
    command = command or " ".join(sys.argv)
    task = task_runner(bench.task)
    whole = cells(bench, task)
    grid = whole
    if only_methods is not None:
        unknown = sorted(set(only_methods) - set(bench.methods))
        if unknown:
            raise ConfigError(f"--methods: {', '.join(unknown)} not in the sweep's methods "
                              f"({', '.join(bench.methods)}).")
        grid = [cell for cell in whole if cell.config.embedding in only_methods]
    todo = [cell for cell in grid if not cell.result_path(bench).is_file()]
    bar = tqdm(total=len(grid), initial=len(grid) - len(todo), desc="bench cells",
               unit="cell", disable=not bench.progress)
    with bar:
        for group in _by_data(todo, task):
            data = task.prepare(group[0].config)
            for cell in group:
                bar.set_postfix_str(cell.name)
                with held(bench.lock):
                    document = run_cell(cell, bench, task, data, command)
                bar.update()
                bar.write(describe(document, bench.report_metric()))
    return _finished(whole, bench)


def load_cell(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def describe(document: dict[str, Any], metric: str) -> str:
    """One line about a finished or infeasible cell."""
    name = document["bench"]["cell"]
    if document["status"] == "infeasible":
        return f"[infeasible] {name}: {document['error']}"
    value = document["metrics"]["test"].get(metric, math.nan)
    return (f"[done] {name}: {metric}={value:.4f} "
            f"bytes={document['memory_bytes']['embeddings']:,} "
            f"train={document['timing']['train_seconds']:.0f}s")


def finished_documents(bench: BenchConfig) -> list[dict[str, Any]]:
    """Documents of the grid's cells that have finished (or were found infeasible)."""
    return _finished(cells(bench, task_runner(bench.task)), bench)


def _finished(grid: list[Cell], bench: BenchConfig) -> list[dict[str, Any]]:
    return [load_cell(cell.result_path(bench)) for cell in grid
            if cell.result_path(bench).is_file()]
