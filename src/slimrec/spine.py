"""The spine: config -> task.load -> task.build (tables from the one budget) -> fit -> finish.

``run(config)`` is what ``slimrec train`` calls, for every task; ``finish`` evaluates a trained
model and writes the one results.json schema, config.yaml and the artifact into ``config.out``.
``load_config`` builds a run config from a YAML file and overrides (CLI flags), merged deeply,
and validates every name before any data loads.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from slimrec import __version__
from slimrec.config import deep_merge, parse_config, read_config_file
from slimrec.env import environment
from slimrec.io import atomic_write_json, atomic_write_text
from slimrec.models.base import RecModel
from slimrec.serve.artifact import save_artifact
from slimrec.tasks import RunConfig, get_task
from slimrec.train.distributed import LOCAL, Strategy
from slimrec.train.loop import TrainResult, fit


def load_config(file: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
                ) -> RunConfig:
    """Defaults, then ``file``, then ``overrides`` (keys whose value is None are not given).

    ``task`` (in either) picks the task's config class; nested settings (``train``,
    ``model_params``, ``embedding_params``) merge key by key.
    """
    layers = [read_config_file(file) if file else {}, _given(overrides or {})]
    task = get_task(str({**layers[0], **layers[1]}.get("task", "retrieval")))
    values: dict[str, Any] = {}
    for layer in layers:  # each layer nested alike, so a flag overrides one key of the file's
        values = deep_merge(values, task.config_class.nest_train_keys(layer)[0])
    return parse_config(task.config_class, values, where=str(file) if file else "settings")


def _given(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _given(value) if isinstance(value, Mapping) else value
            for key, value in values.items() if value is not None}


def apply_threads(config: RunConfig) -> None:
    if config.threads:
        import torch

        torch.set_num_threads(config.threads)


def prepare(config: RunConfig) -> Any:
    """The dataset of ``config``, split (train / val / test)."""
    return get_task(config.task).load(config)


def build_model(config: RunConfig, data: Any) -> RecModel:
    return get_task(config.task).build(config, data)


def run(config: RunConfig | Mapping[str, Any], *, data: Any = None,
        command: str | None = None, strategy: Strategy = LOCAL) -> dict[str, Any] | None:
    """Train and evaluate one model; write its results, config and artifact to ``config.out``.

    ``config`` is a run config or a mapping of settings (``{"task": "ctr", "dataset":
    "frappe", "budget": "10%"}``). ``data`` skips loading: the task's data (e.g.
    ``Interactions``), or for retrieval a pandas/polars frame or arrays of (user, item[,
    rating, time]) read with the config's column settings. Returns the results document.
    ``strategy``: how training spreads over processes (``train/distributed.py``); only its
    rank 0 evaluates and writes, the other ranks return None.
    """
    if not isinstance(config, RunConfig):
        config = load_config(overrides=config)
    apply_threads(config)
    start = time.perf_counter()
    task = get_task(config.task)
    data = task.adopt(config, data) if data is not None else task.load(config)
    model = build_model(config, data)
    preprocess_seconds = time.perf_counter() - start
    result = fit(model, data, config, strategy=strategy)
    if not strategy.is_main:
        return None
    return finish(config, model, data, result, preprocess_seconds, command)


def finish(config: RunConfig, model: RecModel, data: Any, result: TrainResult,
           preprocess_seconds: float, command: str | None = None,
           extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate a trained model on val and test; write results.json, config.yaml, artifact.

    ``extra`` entries are added to the results document (e.g. how a compressed run was made).
    """
    task = get_task(config.task)
    test = task.evaluate(model, data, "test", config)
    metrics: dict[str, Any] = {"test": test.metrics}
    # What a task reports of each evaluation beside its metrics (retrieval: tied users).
    evaluation = {"test": test.details} if test.details else {}
    if task.has_split(data, "val"):
        val = task.evaluate(model, data, "val", config)
        metrics["val"] = val.metrics
        if val.details:
            evaluation["val"] = val.details
    embedding_bytes, full_bytes = model.embedding_bytes(), model.full_embedding_bytes()
    document = {
        "slimrec_version": __version__,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command or " ".join(sys.argv),
        "task": config.task,
        "dataset": task.describe(data),
        "model": config.model, "dim": config.dim, "seed": config.seed,
        "model_params": model.config.model_dump(),
        **task.run_record(config),
        "embedding": {"method": config.embedding,
                      "params": {name: table.config.model_dump()
                                 for name, table in model.tables().items()},
                      "budget": None if config.budget is None else str(config.budget),
                      "budget_bytes": (None if config.budget is None
                                       else config.budget.resolve(full_bytes)),
                      "tables": model.table_report()},
        "memory_bytes": {"embeddings": embedding_bytes, "full_fp32_embeddings": full_bytes,
                         "dense": model.dense_bytes(), "model_total": model.memory_bytes()},
        "metrics": metrics,
        "metric_definitions": task.definitions,
        **({"evaluation": evaluation} if evaluation else {}),
        "timing": {"preprocess_seconds": preprocess_seconds,
                   "train_seconds": result.train_seconds, "epochs": result.epochs_run,
                   "best_epoch": result.best_epoch, "epoch_cap": config.train.epochs,
                   # A run compressed without fine-tuning trains no epoch.
                   "epoch_seconds_median": (float(np.median(result.epoch_seconds))
                                            if result.epoch_seconds else 0.0),
                   "val_eval_seconds": result.eval_seconds, "eval_seconds": test.seconds},
        "history": result.history,
        "environment": environment(),
        **model.structure_report(),
        **(extra or {}),
    }
    out = Path(config.out)
    settings = config.model_dump(mode="json")
    manifest = save_artifact(out, model, task.vocab(data), settings, metrics["test"],
                             task.artifact_files(data))
    # What serving needs may differ from the trained tables (LightGCN serves its propagated
    # vectors); the task's extra files (seen items) are counted apart from the model.
    document["memory_bytes"]["inference"] = manifest["memory_bytes"]["model_total"]
    document["memory_bytes"]["extra_files"] = manifest["extra_bytes"]
    atomic_write_text(out / "config.yaml", yaml.safe_dump(settings, sort_keys=False))
    atomic_write_json(out / "results.json", document)
    return document
