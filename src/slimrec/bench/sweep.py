"""``slimrec bench``: a sweep over models x methods x budgets x seeds on one dataset.

Each cell is one run config of the sweep's task (any registered task: ``retrieval``, ``ctr``);
its results document (the one results.json schema plus ``bench`` and ``peak_rss_bytes``) goes
to ``<out>/cells/<cell>.json`` and its model, checkpoint and
``results.json`` to ``<runs_dir>/<cell>/``. A cell whose JSON exists is skipped, and a cell
interrupted mid-training resumes from its per-epoch checkpoint, so rerunning the same command
after an interruption continues where it stopped. A cell whose budget the method cannot meet is
recorded as ``"status": "infeasible"`` with the solver's message.

Budgets mean what they mean everywhere: a fraction of the fp32 bytes of all the model's tables,
or a total size, split over the tables by the one allocator.

Config file (YAML), every key optional but ``methods``::

    dataset: gowalla
    data_dir: ../shared/data
    out: benchmarks/results/gowalla_pareto
    models: [mf, lightgcn]
    methods: [full, hash, qr]
    budgets: [1.0, 0.25, 0.1]
    seeds: [0]
    settings: {dim: 64, train: {epochs: 400, lr: 0.001}}   # run settings of every cell
    model_settings: {lightgcn: {model_params: {num_layers: 3}}}
    method_params: {qr: {operation: mult}}          # fixed parameters of a method
    method_budgets: {full: [1.0]}                   # a method's own budgets (default: budgets)

Cells run model by model, then budget by budget (in the order listed), then method by method,
so an interrupted sweep has whole budget columns rather than whole methods.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from tqdm.auto import tqdm

from slimrec.budget import parse_budget
from slimrec.config import FrozenConfig, deep_merge, parse_config
from slimrec.embeddings.spec import method_config
from slimrec.env import peak_rss_bytes
from slimrec.errors import BudgetError, ConfigError
from slimrec.io import atomic_write_json, file_lock
from slimrec.models.base import model_class
from slimrec.spine import apply_threads, finish
from slimrec.tasks import RunConfig, Task, get_task
from slimrec.train.loop import fit

# Run-config fields that the sweep sets per cell; ``settings`` may not set them.
SWEPT = ("task", "dataset", "data_dir", "model", "embedding", "embedding_params", "budget",
         "seed", "out")
CHECKPOINT_FILE = "checkpoint.pt"


class BenchConfig(FrozenConfig):
    """A sweep: the grid, shared run settings, where results go."""

    task: str = "retrieval"
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
        return self.metric or get_task(self.task).default_metric

    @field_validator("task")
    @classmethod
    def _known_task(cls, task: str) -> str:
        try:
            get_task(task)
        except ConfigError as error:
            raise ValueError(str(error)) from None
        return task


@dataclass(frozen=True)
class Cell:
    """One point of the grid; ``config.budget`` is still the budget as written in the sweep."""

    name: str
    config: RunConfig

    def result_path(self, bench: BenchConfig) -> Path:
        return Path(bench.out) / "cells" / f"{self.name}.json"


def budget_label(budget: str | float) -> str:
    """File-name-safe label: ``0.1`` -> ``10pct``, ``"5MB"`` -> ``5000000B``."""
    parsed = parse_budget(budget)
    if parsed.fraction is not None:
        return f"{parsed.fraction * 100:g}pct"
    return f"{parsed.num_bytes}B"


def _check_names(bench: BenchConfig) -> None:
    for model in [*bench.models, *bench.model_settings]:
        model_class(model, bench.task)
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


def cells(bench: BenchConfig) -> list[Cell]:
    """Every cell of the grid, validated before anything runs (a typo fails at once)."""
    task = get_task(bench.task)
    _check_names(bench)
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
                    nest = task.config_class.nest_train_keys
                    values = {**deep_merge(nest(bench.settings)[0],
                                           nest(bench.model_settings.get(model, {}))[0]),
                              "task": bench.task, "dataset": bench.dataset,
                              "data_dir": bench.data_dir,
                              "model": model, "embedding": method,
                              "embedding_params": bench.method_params.get(method, {}),
                              "budget": budget, "seed": seed,
                              "out": str(bench.runs_path() / name)}
                    values.setdefault("progress", bench.progress)
                    grid.append(Cell(name, parse_config(task.config_class, values,
                                                        where=f"bench cell {name}")))
    return grid


def run_cell(cell: Cell, bench: BenchConfig, data: Any, command: str) -> dict[str, Any]:
    """Train and evaluate one cell (resuming its checkpoint); write and return its document."""
    config, task = cell.config, get_task(bench.task)
    apply_threads(config)
    checkpoint = Path(config.out) / CHECKPOINT_FILE
    info = {"cell": cell.name, "budget": None if config.budget is None else str(config.budget)}
    start = time.perf_counter()
    try:
        model = task.build(config, data)
    except BudgetError as error:
        document = {"status": "infeasible", "error": str(error), "task": bench.task,
                    "model": config.model,
                    "embedding": {"method": config.embedding, "budget": info["budget"]},
                    "seed": config.seed, "bench": info}
        atomic_write_json(cell.result_path(bench), document)
        return document
    preprocess_seconds = time.perf_counter() - start
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    result = fit(model, data, config, checkpoint=checkpoint)
    document = finish(config, model, data, result, preprocess_seconds, command,
                      extra={"status": "done", "bench": info})
    document["peak_rss_bytes"] = peak_rss_bytes()
    atomic_write_json(cell.result_path(bench), document)
    checkpoint.unlink(missing_ok=True)  # the cell is complete; the artifact holds the model
    return document


def _by_data(grid: list[Cell], task: Task) -> Iterator[list[Cell]]:
    """Cells grouped by the data they need, grid order kept, so each dataset loads once."""
    for key in dict.fromkeys(task.data_key(cell.config) for cell in grid):
        yield [cell for cell in grid if task.data_key(cell.config) == key]


@dataclass(frozen=True)
class Only:
    """The part of the grid to run or report (``--methods``, ``--seeds``, ``--budgets``);
    each field: every value of the sweep when None."""

    methods: list[str] | None = None
    seeds: list[int] | None = None
    budgets: list[str | float] | None = None

    def select(self, grid: list[Cell]) -> list[Cell]:
        """The cells of ``grid`` chosen; a value the sweep does not have is a ConfigError."""
        labels = None if self.budgets is None else [budget_label(b) for b in self.budgets]
        keys = (("--methods", self.methods, lambda cell: cell.config.embedding),
                ("--seeds", self.seeds, lambda cell: cell.config.seed),
                ("--budgets", labels, lambda cell: budget_label(cell.config.budget)))
        for flag, chosen, key in keys:
            known = list(dict.fromkeys(key(cell) for cell in grid))
            unknown = sorted(set(chosen or ()) - set(known), key=str)
            if unknown:
                raise ConfigError(f"{flag}: {', '.join(map(str, unknown))} not in the sweep's "
                                  f"{flag[2:]} ({', '.join(map(str, known))}).")
        return [cell for cell in grid
                if all(chosen is None or key(cell) in chosen for _, chosen, key in keys)]


def _run_local(todo: list[Cell], bench: BenchConfig, command: str) -> Iterator[dict[str, Any]]:
    """Run the cells one after the other in this process, loading each dataset once."""
    task = get_task(bench.task)
    for group in _by_data(todo, task):
        data = task.load(group[0].config)
        for cell in group:
            with file_lock(bench.lock):
                yield run_cell(cell, bench, data, command)


def run_bench(bench: BenchConfig, command: str | None = None, only: Only = Only(),
              executor: str = "local", address: str | None = None) -> list[dict[str, Any]]:
    """Run every unfinished cell (only those ``only`` selects), then return the documents of
    all finished cells of the grid, in grid order.

    ``executor``: "local" runs cells one by one here; "ray" runs each as a Ray task
    (``bench/ray_executor.py``) on the cluster at ``address``, or on a local Ray instance.
    """
    command = command or " ".join(sys.argv)
    task = get_task(bench.task)
    whole = cells(bench)
    grid = only.select(whole)
    todo = [cell for cell in grid if not cell.result_path(bench).is_file()]
    if executor == "ray":
        from slimrec.bench import ray_executor

        documents = ray_executor.run_cells(_by_data(todo, task), bench,
                                           lambda cell: task.load(cell.config), command, address)
    elif executor == "local":
        documents = _run_local(todo, bench, command)
    else:
        raise ConfigError(f"--executor must be local or ray; got {executor!r}.")
    bar = tqdm(total=len(grid), initial=len(grid) - len(todo), desc="bench cells",
               unit="cell", disable=not bench.progress)
    with bar:
        for document in documents:
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


def finished_documents(bench: BenchConfig, only: Only = Only()) -> list[dict[str, Any]]:
    """Documents of the grid's cells that have finished (or were found infeasible), only
    those ``only`` selects."""
    return _finished(only.select(cells(bench)), bench)


def foreign_cells(bench: BenchConfig) -> list[str]:
    """Names of the result files under ``out/cells`` that are not cells of this sweep's grid:
    another sweep writes to the same folder, and each one's report would overwrite the other's."""
    ours = {cell.result_path(bench).name for cell in cells(bench)}
    return sorted(path.stem for path in (Path(bench.out) / "cells").glob("*.json")
                  if path.name not in ours)


def _finished(grid: list[Cell], bench: BenchConfig) -> list[dict[str, Any]]:
    return [load_cell(cell.result_path(bench)) for cell in grid
            if cell.result_path(bench).is_file()]
