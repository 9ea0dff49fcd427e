"""One run, end to end: load data, build tables for a spec, train, evaluate, write results.

``run_retrieval(config)`` is what ``slimrec train`` and ``slimrec demo`` call; it writes
``results.json`` (the DESIGN.md shape), ``config.yaml`` (the resolved settings) and the model
artifact into ``config.out``.
"""

from __future__ import annotations

import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import yaml
from pydantic import Field

from slimrec import __version__
from slimrec.config import FrozenConfig
from slimrec.data.interactions import Interactions
from slimrec.data.registry import load_dataset
from slimrec.data.splits import carve_validation
from slimrec.embeddings import EmbeddingSpec, TableStats, build_embedding
from slimrec.errors import ConfigError
from slimrec.eval.ranking import DEFINITIONS, evaluate_ranking
from slimrec.io import atomic_write_json, atomic_write_text
from slimrec.models import MF, LightGCN, NeuMF, RetrievalModel
from slimrec.serve.artifact import save_artifact
from slimrec.train.loop import TrainConfig, TrainResult, train_bpr


class RunConfig(FrozenConfig):
    """Every setting of a retrieval run; saved beside its results."""

    dataset: str = "synthetic"
    data_dir: str | None = None
    model: str = "mf"
    model_params: dict[str, Any] = Field(default_factory=dict)
    dim: int = Field(64, ge=1)
    embedding: str = "full"
    embedding_params: dict[str, Any] = Field(default_factory=dict)
    budget: str | None = None
    epochs: int = Field(50, ge=1)
    lr: float = Field(1e-3, gt=0)
    lr_milestones: list[int] = Field(default_factory=list,
                                     description="epochs after which lr is multiplied by "
                                                 "lr_gamma")
    lr_gamma: float = Field(0.1, gt=0, le=1)
    batch_size: int = Field(4096, ge=1)
    l2: float = Field(1e-4, ge=0)
    patience: int = Field(3, ge=1)
    eval_every: int = Field(5, ge=1)
    val_fraction: float = Field(0.1, ge=0, lt=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    ks: list[int] = Field(default_factory=lambda: [10, 20, 50])
    seed: int = 0
    threads: int | None = Field(None, ge=1)
    out: str = "runs/latest"
    progress: bool = True

    def train_config(self) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                           lr_milestones=tuple(self.lr_milestones), lr_gamma=self.lr_gamma,
                           l2=self.l2, patience=self.patience, eval_every=self.eval_every,
                           val_metric="recall@20", seed=self.seed, progress=self.progress)

    def embedding_spec(self) -> EmbeddingSpec:
        return EmbeddingSpec(self.embedding, self.embedding_params, self.budget)


MODELS: dict[str, type[RetrievalModel]] = {"mf": MF, "lightgcn": LightGCN,
                                            "neumf": NeuMF}


def environment() -> dict[str, Any]:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "cpu": _cpu_name(),
            "platform": platform.platform()}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def prepare_data(config: RunConfig) -> Interactions:
    data = load_dataset(config.dataset, config.data_dir, seed=config.seed,
                        test_fraction=config.test_fraction, progress=config.progress)
    if config.val_fraction > 0:
        data = carve_validation(data, config.val_fraction, config.seed)
    return data


def build_model(config: RunConfig, data: Interactions) -> RetrievalModel:
    if config.model not in MODELS:
        raise ConfigError(f"unknown model {config.model!r}; known: {', '.join(MODELS)}.")
    spec = config.embedding_spec()
    tables = {}
    for offset, (role, count, freq) in enumerate((
            ("user", data.num_users, data.user_frequencies()),
            ("item", data.num_items, data.item_frequencies()))):
        stats = TableStats(role=role, frequencies=freq, interactions=data.train)
        tables[role] = build_embedding(spec, count, config.dim, stats, seed=config.seed + offset)
    model_cls = MODELS[config.model]
    return model_cls.from_data(tables["user"], tables["item"], data.train,
                               model_cls.parse_params(config.model_params))


def run_retrieval(config: RunConfig, command: str | None = None,
                  data: Interactions | None = None) -> dict[str, Any]:
    """Train and evaluate one model; write its results, config and artifact to ``config.out``."""
    if config.threads:
        torch.set_num_threads(config.threads)
    start = time.perf_counter()
    data = data if data is not None else prepare_data(config)
    model = build_model(config, data)
    preprocess_seconds = time.perf_counter() - start
    result = train_bpr(model, data, config.train_config())
    return finish_run(config, model, data, result, preprocess_seconds, command)


def finish_run(config: RunConfig, model: RetrievalModel, data: Interactions, result: TrainResult,
               preprocess_seconds: float, command: str | None = None,
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate a trained model and write its results, config and artifact to ``config.out``.

    ``extra`` entries are added to the results document (e.g. how a compressed run was made).
    """
    test = evaluate_ranking(model.scorer(), data, "test", ks=config.ks)
    metrics: dict[str, Any] = {"test": test.metrics}
    if data.val.nnz:
        metrics["val"] = evaluate_ranking(model.scorer(), data, "val", ks=config.ks).metrics
    embedding_bytes = model.embedding_bytes()
    document = {
        "slimrec_version": __version__,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command or " ".join(sys.argv),
        "dataset": {"name": data.name, "users": data.num_users, "items": data.num_items,
                    "train": int(data.train.nnz), "val": int(data.val.nnz),
                    "test": int(data.test.nnz)},
        "task": "retrieval", "model": config.model, "dim": config.dim, "seed": config.seed,
        "model_params": model.config.model_dump(),
        "embedding": {"method": config.embedding,
                      "params": {role: table.config.model_dump()
                                 for role, table in model.tables().items()},
                      "budget": config.budget},
        "memory_bytes": {"embeddings": embedding_bytes,
                         "full_fp32_embeddings": model.full_embedding_bytes(),
                         "model_total": embedding_bytes + model.dense_bytes()},
        "metrics": metrics,
        "metric_definitions": {name: DEFINITIONS[name]
                               for name in ("recall", "ndcg", "precision", "hit", "mrr")},
        "timing": {"preprocess_seconds": preprocess_seconds,
                   "train_seconds": result.train_seconds, "epochs": result.epochs_run,
                   "best_epoch": result.best_epoch,
                   # A run compressed without fine-tuning trains no epoch.
                   "epoch_seconds_median": (float(torch.tensor(result.epoch_seconds).median())
                                            if result.epoch_seconds else 0.0),
                   "val_eval_seconds": result.eval_seconds, "eval_seconds": test.seconds},
        "history": result.history,
        "environment": environment(),
        **(extra or {}),
    }
    out = Path(config.out)
    manifest = save_artifact(out, model, config.model_dump(), data.user_ids, data.item_ids,
                             metrics["test"], seen=data.train + data.val)
    # What serving needs may differ from the trained tables (LightGCN serves its propagated
    # vectors); the seen-items CSR behind exclude_seen is counted apart from the model.
    document["memory_bytes"]["inference"] = manifest["memory_bytes"]
    document["memory_bytes"]["seen_items"] = manifest["seen_items_bytes"]
    atomic_write_text(out / "config.yaml", yaml.safe_dump(config.model_dump(), sort_keys=False))
    atomic_write_json(out / "results.json", document)
    return document


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (Linux reports KiB)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) * (1 if sys.platform == "darwin" else 1024)

