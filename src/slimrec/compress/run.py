"""``slimrec compress``: compress any task's saved run into a new evaluated run.

The source run's ``config.yaml`` recreates its data split; its tables are compressed by a
post-training method under the budget (``compress/tables.py``) and/or its dense layers become
low-rank pairs (``compress/dense.py``); the model is optionally fine-tuned by the one ``fit``
(epoch 0, the compressed model as given, competes, so fine-tuning may only help); the new run is
written by the one ``finish``, with the before and after figures in its ``compression`` block.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from slimrec.budget import parse_budget
from slimrec.compress.dense import compress_dense, parse_dense_rank
from slimrec.compress.tables import compress_tables
from slimrec.config import deep_merge, parse_config
from slimrec.errors import ArtifactError, ConfigError
from slimrec.serve.artifact import load_artifact
from slimrec.spine import apply_threads, finish, load_config
from slimrec.tasks import RunConfig, get_task
from slimrec.train.loop import TrainResult, fit


def default_out(run_dir: str | Path, method: str | None, budget: str | None,
                dense_rank: str | None = None) -> Path:
    """``<run_dir>[-dense<r>][-<method>[-<budget>]]``, beside the source run."""
    suffix = f"-dense{dense_rank}" if dense_rank else ""
    if method:
        suffix += f"-{method}" + (f"-{budget}" if budget else "")
    return Path(str(run_dir).rstrip("/") + suffix)


def _compressed_config(source: RunConfig, method: str | None, budget: str | None,
                       params: Mapping[str, Any], out: Path, finetune_epochs: int) -> RunConfig:
    """The source settings, with the method, budget, out folder and fine-tuning epochs."""
    values = source.model_dump(mode="json")
    updates: dict[str, Any] = {"out": str(out), "train": {"eval_before": True}}
    if finetune_epochs:
        updates["train"]["epochs"] = finetune_epochs
    if method is not None:
        updates.update(embedding=method, embedding_params=dict(params), budget=budget)
    return parse_config(type(source), deep_merge(values, updates), where="compress")


def compress_run(run_dir: str | Path, method: str | None = None, budget: str | None = None,
                 params: Mapping[str, Any] | None = None, out: str | Path | None = None,
                 finetune_epochs: int = 0, dense_rank: str | None = None,
                 dense_method: str = "output", calibration_rows: int = 4096,
                 overrides: Mapping[str, Any] | None = None,
                 command: str | None = None) -> dict[str, Any]:
    """Compress the run in ``run_dir`` into a new evaluated run; return its results document.

    ``method``/``budget``/``params``: a post-training embedding method for the tables, within
    the one budget (a fraction of all the tables' fp32 bytes or a total size). ``dense_rank``:
    a rank for every dense layer (``"32"``) or a compression ratio (``"4x"``), calibrated on
    ``calibration_rows`` seeded train rows. ``overrides`` change the run's settings when
    recreating the data (e.g. ``data_dir``).
    """
    if dense_rank is None and method is None:
        raise ConfigError("nothing to compress: give a post-training embedding method "
                          "(--method) and/or a dense rank (--dense-rank).")
    if finetune_epochs < 0:
        raise ConfigError(f"finetune_epochs must be an int >= 0; got {finetune_epochs}.")
    if budget is not None:
        parse_budget(budget)  # a bad budget fails before the run loads
    run_dir = Path(run_dir)
    start = time.perf_counter()
    artifact = load_artifact(run_dir)
    model, task = artifact.model, get_task(artifact.task)
    source = load_config(run_dir / "config.yaml",
                         {**dict(overrides or {}), "task": artifact.task})
    config = _compressed_config(
        source, method, budget, params or {},
        Path(out) if out else default_out(run_dir, method, budget, dense_rank), finetune_epochs)
    apply_threads(config)
    data = task.load(config)
    if task.vocab(data) != artifact.vocab:
        raise ArtifactError(f"{run_dir}: the data recreated from config.yaml has other ids "
                            "than the saved model; point --data-dir at the dataset the run was "
                            "trained on.")
    preprocess_seconds = time.perf_counter() - start

    before = task.evaluate(model, data, "test", config).metrics
    before_bytes = {"embeddings": model.embedding_bytes(), "dense": model.dense_bytes(),
                    "model_total": model.memory_bytes()}
    start = time.perf_counter()
    ranks: dict[str, int] = {}
    if dense_rank is not None:
        rank, ratio = parse_dense_rank(dense_rank)
        calibration = task.calibration_batch(data, calibration_rows, config.seed)
        ranks = compress_dense(model, rank, ratio, dense_method,  # type: ignore[arg-type]
                               calibration)
    budget_bytes = None
    if method is not None:
        budget_bytes = compress_tables(model, method, config.budget, params or {})
    compress_seconds = time.perf_counter() - start
    without_finetune = task.evaluate(model, data, "test", config).metrics

    result = TrainResult()
    if finetune_epochs:
        if not any(p.requires_grad for p in model.parameters()):
            raise ConfigError(f"the compressed model ({method}) has nothing to train; drop "
                              "--finetune-epochs.")
        result = fit(model, data, config)
    model.eval()
    extra = {"compression": {
        "source_run": str(run_dir), "source_metrics": artifact.manifest.get("metrics", {}),
        "method": method, "budget": budget, "budget_bytes": budget_bytes,
        "dense_rank": dense_rank, "dense_method": dense_method if dense_rank else None,
        "dense_layers": ranks, "calibration_rows": calibration_rows if ranks else 0,
        "finetune_epochs": finetune_epochs,
        "before": {"metrics": {"test": before}, "memory_bytes": before_bytes},
        "test_before_finetune": without_finetune,
        "compress_seconds": compress_seconds}}
    return finish(config, model, data, result, preprocess_seconds, command, extra)
