"""``slimrec compress``: post-training compression of a saved run into a new evaluated run.

A run folder (written by ``run_retrieval``) holds the trained tables. Each table is handed to
the method's ``from_trained`` constructor (``svd``, post-training quantization, ...) with the
budget resolved against that table's full fp32 size, the model is optionally fine-tuned, and
the result is evaluated on the same data split, recreated from the run's ``config.yaml``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from slimrec.budget import format_bytes, parse_budget
from slimrec.config import layered_config
from slimrec.embeddings.spec import method_config
from slimrec.errors import ArtifactError, BudgetError, ConfigError
from slimrec.experiment import RunConfig, finish_run, prepare_data
from slimrec.models import MODEL_CLASSES
from slimrec.serve.artifact import load_artifact
from slimrec.train.loop import TrainResult, train_bpr


def default_out(run_dir: str | Path, method: str, budget: str | None) -> Path:
    """``<run_dir>-<method>[-<budget>]``, beside the source run."""
    suffix = f"-{method}" + (f"-{budget}" if budget else "")
    return Path(str(run_dir).rstrip("/") + suffix)


def compress_run(run_dir: str | Path, method: str, budget: str | None = None,
                 params: Mapping[str, Any] | None = None, out: str | Path | None = None,
                 finetune_epochs: int = 0, overrides: Mapping[str, Any] | None = None,
                 command: str | None = None) -> dict[str, Any]:
    """Compress every table of the run in ``run_dir`` with ``method`` and write a new run.

    ``budget`` (a fraction, percentage or size, as for training) applies to each table in turn;
    ``overrides`` are RunConfig settings to change when recreating the data (e.g. ``data_dir``).
    Returns the new run's results document (the ``slimrec train`` shape).
    """
    run_dir = Path(run_dir)
    params = dict(params or {})
    if finetune_epochs < 0:
        raise ConfigError(f"finetune_epochs must be an int >= 0; got {finetune_epochs}.")
    config_cls = method_config(method)
    start = time.perf_counter()
    model, manifest, user_ids, item_ids = load_artifact(run_dir)
    source = layered_config(RunConfig, run_dir / "config.yaml", dict(overrides or {}))
    config = source.model_copy(update={
        "embedding": method, "embedding_params": params, "budget": budget,
        "out": str(out or default_out(run_dir, method, budget)),
        "epochs": finetune_epochs or source.epochs})
    data = prepare_data(config)
    if list(data.user_ids) != list(user_ids) or list(data.item_ids) != list(item_ids):
        raise ArtifactError(
            f"{run_dir}: the data recreated from config.yaml has other users or items than the "
            "saved model; point --data-dir at the dataset the run was trained on.")
    preprocess_seconds = time.perf_counter() - start

    start = time.perf_counter()
    tables = {}
    for name, table in model.tables().items():
        budget_bytes = (None if budget is None
                        else parse_budget(budget).resolve(table.full_fp32_bytes()))
        compressed = config_cls.from_trained(table, budget_bytes, params)
        if budget_bytes is not None and compressed.memory_bytes() > budget_bytes:
            raise BudgetError(
                f"{method} compressed {name} to {format_bytes(compressed.memory_bytes())}, over "
                f"its budget of {format_bytes(budget_bytes)}; this is a solver bug, please "
                "report it.")
        tables[name] = compressed
    dense = {key: value for key, value in model.state_dict().items()
             if not any(key.startswith(f"{name}.") for name in tables)}
    compressed_model = MODEL_CLASSES[manifest["model"]].from_artifact(tables, dense, manifest)
    compress_seconds = time.perf_counter() - start

    result = TrainResult()
    if finetune_epochs:
        if not any(p.requires_grad for p in compressed_model.parameters()):
            raise ConfigError(f"method {method!r} gives tables with nothing to train; drop "
                              "--finetune-epochs.")
        # Epoch 0 (the compressed model as given) competes: fine-tuning may only help.
        result = train_bpr(compressed_model, data,
                           config.train_config().model_copy(update={"eval_before": True}))
    compressed_model.eval()
    extra = {"compression": {"source_run": str(run_dir), "method": method, "budget": budget,
                             "finetune_epochs": finetune_epochs,
                             "source_memory_bytes": model.embedding_bytes(),
                             "source_metrics": manifest.get("metrics", {}),
                             "compress_seconds": compress_seconds}}
    return finish_run(config, compressed_model, data, result, preprocess_seconds, command, extra)
