"""One CTR run, end to end, and post-training compression of a CTR run.

``run_ctr(config)`` is what ``slimrec train --task ctr`` calls: it encodes (or reads from the
cache) the dataset's ``FieldData``, builds one table per field under the global budget, trains
with BCE and early stopping on validation AUC, and writes ``results.json`` (the DESIGN.md shape,
metrics ``auc``/``logloss``), ``config.yaml`` and the model artifact into ``config.out``.

``compress_ctr_run(run_dir, dense_rank=...)`` is what ``slimrec compress`` calls for a CTR run:
dense layers become low-rank pairs (``models/dense_lowrank.py``) and/or the tables are
compressed by a post-training method, the model is optionally fine-tuned, and a new run is
written with the before and after figures.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from pydantic import Field

from slimrec import __version__
from slimrec.budget import format_bytes, parse_budget
from slimrec.config import FrozenConfig, layered_config
from slimrec.data.ctr_readers import load_field_data
from slimrec.data.fields import FieldData
from slimrec.embeddings import EmbeddingSpec
from slimrec.embeddings.spec import method_config
from slimrec.errors import ArtifactError, BudgetError, ConfigError
from slimrec.eval.ctr import DEFINITIONS
from slimrec.experiment import environment
from slimrec.io import atomic_write_json, atomic_write_text
from slimrec.models.ctr import CTR_MODELS, CTRModel, FieldEmbeddings, FieldTensors
from slimrec.models.ctr.tables import build_field_embeddings
from slimrec.models.dense_lowrank import compress_dense, parse_dense_rank
from slimrec.serve.ctr_artifact import load_ctr_artifact, save_ctr_artifact
from slimrec.train.ctr_loop import CTRTrainConfig, evaluate_ctr, train_ctr
from slimrec.train.loop import TrainResult


class CTRRunConfig(FrozenConfig):
    """Every setting of a CTR run; saved beside its results."""

    dataset: str = "frappe"
    data_dir: str | None = None
    data_seed: int = Field(0, description="seed of the sampled negatives and of the split")
    min_count: int | None = Field(None, ge=1, description="rarer train values go to OOV; "
                                  "None: the dataset's default")
    split: tuple[float, float, float] = (0.7, 0.2, 0.1)
    model: str = "deepfm"
    model_params: dict[str, Any] = Field(default_factory=dict)
    dim: int = Field(16, ge=1)
    embedding: str = "full"
    keep_full_rows: int = Field(16, ge=0, description="fields of at most this many ids keep "
                                "a full table; the others share the budget")
    embedding_params: dict[str, Any] = Field(default_factory=dict)
    budget: str | None = None
    epochs: int = Field(30, ge=1)
    lr: float = Field(3e-3, gt=0)
    batch_size: int = Field(4096, ge=1)
    l2: float = Field(0.01, ge=0)
    patience: int = Field(2, ge=1)
    lr_decay: float = Field(0.1, gt=0, le=1)
    seed: int = 0
    threads: int | None = Field(None, ge=1)
    out: str = "runs/latest"
    progress: bool = True

    def train_config(self) -> CTRTrainConfig:
        return CTRTrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                              l2=self.l2, patience=self.patience, lr_decay=self.lr_decay,
                              seed=self.seed,
                              progress=self.progress)

    def embedding_spec(self) -> EmbeddingSpec:
        return EmbeddingSpec(self.embedding, self.embedding_params, self.budget)


def prepare_field_data(config: CTRRunConfig) -> FieldData:
    return load_field_data(config.dataset, config.data_dir, seed=config.data_seed,
                           min_count=config.min_count, fractions=config.split)


def build_ctr_model(config: CTRRunConfig, data: FieldData) -> CTRModel:
    if config.model not in CTR_MODELS:
        raise ConfigError(f"unknown CTR model {config.model!r}; known: "
                          f"{', '.join(CTR_MODELS)}.")
    embeddings = build_field_embeddings(data, config.embedding_spec(), config.dim, config.seed,
                                        config.keep_full_rows)
    torch.manual_seed(config.seed)  # the dense layers' initialisation
    return CTR_MODELS[config.model].from_params(embeddings, config.model_params)


def run_ctr(config: CTRRunConfig, command: str | None = None,
            data: FieldData | None = None) -> dict[str, Any]:
    """Train and evaluate one CTR model; write its results, config and artifact."""
    if config.threads:
        torch.set_num_threads(config.threads)
    start = time.perf_counter()
    data = data if data is not None else prepare_field_data(config)
    model = build_ctr_model(config, data)
    preprocess_seconds = time.perf_counter() - start
    result = train_ctr(model, data, config.train_config())
    return finish_ctr_run(config, model, data, result, preprocess_seconds, command)


def _embedding_params(embeddings: FieldEmbeddings) -> dict[str, Any]:
    return {name: table.config.model_dump() for name, table in embeddings.tables.items()}


def finish_ctr_run(config: CTRRunConfig, model: CTRModel, data: FieldData, result: TrainResult,
                   preprocess_seconds: float, command: str | None = None,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate a trained model on val and test; write results.json, config.yaml, artifact."""
    tensors = FieldTensors(data)
    test, test_seconds = evaluate_ctr(model, data, "test", tensors)
    metrics: dict[str, Any] = {"test": test}
    if data.rows("val").size:
        metrics["val"] = evaluate_ctr(model, data, "val", tensors)[0]
    stats = data.stats()
    embedding_bytes = model.embedding_bytes()
    document = {
        "slimrec_version": __version__,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command or " ".join(sys.argv),
        "dataset": {key: stats[key] for key in ("name", "rows", "train", "val", "test",
                                                "positive_rate", "fields")},
        "task": "ctr", "model": config.model, "dim": config.dim, "seed": config.seed,
        "model_params": model.config.model_dump(),
        "embedding": {"method": config.embedding, "params": _embedding_params(model.embeddings),
                      "budget": config.budget, "fields": model.embeddings.describe()},
        "memory_bytes": {"embeddings": embedding_bytes,
                         "full_fp32_embeddings": model.embeddings.full_fp32_bytes(),
                         "dense": model.dense_bytes(),
                         "model_total": model.memory_bytes()},
        "metrics": metrics,
        "metric_definitions": DEFINITIONS,
        "timing": {"preprocess_seconds": preprocess_seconds,
                   "train_seconds": result.train_seconds, "epochs": result.epochs_run,
                   "best_epoch": result.best_epoch,
                   # A run compressed without fine-tuning trains no epoch.
                   "epoch_seconds_median": (float(np.median(result.epoch_seconds))
                                            if result.epoch_seconds else 0.0),
                   "val_eval_seconds": result.eval_seconds, "eval_seconds": test_seconds},
        "history": result.history,
        "environment": environment(),
        **(extra or {}),
    }
    out = Path(config.out)
    save_ctr_artifact(out, model, config.model_dump(), data.fields, test)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(config.model_dump(mode="json"),
                                                          sort_keys=False))
    atomic_write_json(out / "results.json", document)
    return document


# ---------------------------------------------------------------------- compression
def default_compress_out(run_dir: str | Path, dense_rank: str | None, method: str | None,
                         budget: str | None) -> Path:
    """``<run_dir>[-dense<r>][-<method>[-<budget>]]``, beside the source run."""
    suffix = f"-dense{dense_rank}" if dense_rank else ""
    if method:
        suffix += f"-{method}" + (f"-{budget}" if budget else "")
    return Path(str(run_dir).rstrip("/") + suffix)


def _compress_tables(model: CTRModel, method: str, budget: str | None,
                     params: Mapping[str, Any]) -> None:
    """Replace every table by ``method``'s ``from_trained`` form, each within ``budget`` of its
    own full size (as ``slimrec compress`` does for retrieval tables)."""
    config_cls = method_config(method)
    for name, table in list(model.embeddings.tables.items()):
        budget_bytes = (None if budget is None
                        else parse_budget(budget).resolve(table.full_fp32_bytes()))
        compressed = config_cls.from_trained(table, budget_bytes, params)
        if budget_bytes is not None and compressed.memory_bytes() > budget_bytes:
            raise BudgetError(f"{method} compressed {name} to "
                              f"{format_bytes(compressed.memory_bytes())}, over its budget of "
                              f"{format_bytes(budget_bytes)}; this is a solver bug.")
        model.embeddings.tables[name] = compressed


def compress_ctr_run(run_dir: str | Path, dense_rank: str | None = None,
                     method: str | None = None, budget: str | None = None,
                     params: Mapping[str, Any] | None = None, out: str | Path | None = None,
                     finetune_epochs: int = 0, dense_method: str = "output",
                     calibration_rows: int = 4096, overrides: Mapping[str, Any] | None = None,
                     command: str | None = None) -> dict[str, Any]:
    """Compress the CTR run in ``run_dir`` into a new evaluated run.

    ``dense_rank``: a rank for every dense layer (``"32"``) or a compression ratio (``"4x"``);
    ``method``/``budget``/``params``: a post-training embedding method applied to each table;
    the calibration sample is ``calibration_rows`` seeded train rows. ``overrides`` change the
    run's settings when recreating the data (e.g. ``data_dir``).
    """
    if dense_rank is None and method is None:
        raise ConfigError("nothing to compress: give a dense rank (--dense-rank) and/or a "
                          "post-training embedding method (--method).")
    if finetune_epochs < 0:
        raise ConfigError(f"finetune_epochs must be an int >= 0; got {finetune_epochs}.")
    run_dir = Path(run_dir)
    start = time.perf_counter()
    model, manifest = load_ctr_artifact(run_dir)
    source = layered_config(CTRRunConfig, run_dir / "config.yaml", dict(overrides or {}))
    config = source.model_copy(update={
        "out": str(out or default_compress_out(run_dir, dense_rank, method, budget)),
        "epochs": finetune_epochs or source.epochs})
    data = prepare_field_data(config)
    expected = [(slot["name"], slot["num_embeddings"]) for slot in manifest["fields"]]
    if [(f.name, f.num_embeddings) for f in data.fields] != expected:
        raise ArtifactError(f"{run_dir}: the data recreated from config.yaml has other fields or "
                            "vocabularies than the saved model; point --data-dir at the dataset "
                            "the run was trained on.")
    preprocess_seconds = time.perf_counter() - start

    tensors = FieldTensors(data)
    before, _ = evaluate_ctr(model, data, "test", tensors)
    before_bytes = {"embeddings": model.embedding_bytes(), "dense": model.dense_bytes(),
                    "model_total": model.memory_bytes()}
    start = time.perf_counter()
    ranks: dict[str, int] = {}
    if dense_rank is not None:
        rank, ratio = parse_dense_rank(dense_rank)
        train_rows = data.rows("train")
        sample = np.random.default_rng(config.seed).choice(
            train_rows, size=min(calibration_rows, train_rows.size), replace=False)
        ranks = compress_dense(model, rank, ratio, dense_method,  # type: ignore[arg-type]
                               tensors.batch(torch.from_numpy(np.sort(sample))))
    if method is not None:
        _compress_tables(model, method, budget, params or {})
    compress_seconds = time.perf_counter() - start
    without_finetune, _ = evaluate_ctr(model, data, "test", tensors)

    result = TrainResult()
    if finetune_epochs:
        # Epoch 0 (the compressed model as given) competes: fine-tuning may only help.
        result = train_ctr(model, data,
                           config.train_config().model_copy(update={"eval_before": True}))
    extra = {"compression": {
        "source_run": str(run_dir), "source_metrics": manifest.get("metrics", {}),
        "dense_rank": dense_rank, "dense_method": dense_method if dense_rank else None,
        "dense_layers": ranks, "calibration_rows": calibration_rows if ranks else 0,
        "embedding_method": method, "embedding_budget": budget,
        "finetune_epochs": finetune_epochs,
        "before": {"metrics": {"test": before}, "memory_bytes": before_bytes},
        "test_before_finetune": without_finetune,
        "compress_seconds": compress_seconds}}
    return finish_ctr_run(config, model, data, result, preprocess_seconds, command, extra)
