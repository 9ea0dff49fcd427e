"""Saved models are data, not pickles: ``model.safetensors`` + ``vocab.json`` + ``manifest.json``.

The manifest records the library version, the resolved run config, each table's method config,
the per-tensor bytes and the sha256 of the other two files; loading checks all of it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.torch import save

from slimrec import __version__
from slimrec.io import atomic_write_bytes, atomic_write_json
from slimrec.models.base import RetrievalModel

WEIGHTS_FILE, VOCAB_FILE, MANIFEST_FILE = "model.safetensors", "vocab.json", "manifest.json"
FORMAT = "slimrec-artifact/1"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_artifact(folder: str | Path, model: RetrievalModel, run_config: dict[str, Any],
                  user_ids: np.ndarray, item_ids: np.ndarray,
                  metrics: dict[str, Any] | None = None) -> Path:
    """Write the inference state of ``model`` and everything needed to reload and query it."""
    folder = Path(folder)
    tensors, tables = {}, {}
    for name, table in model.tables().items():
        served = table.for_inference()
        for key, value in table.inference_state().items():
            tensors[f"{name}.{key}"] = value.contiguous().cpu()
        tables[name] = {"class": type(served).__name__, "method": served.config.method,
                        "config": served.config.model_dump(),
                        "num_embeddings": served.num_embeddings,
                        "embedding_dim": served.embedding_dim,
                        "memory_bytes": table.memory_bytes()}
    for key, value in model.state_dict().items():
        if not any(key.startswith(f"{name}.") for name in tables):
            tensors[key] = value.contiguous().cpu()
    weights = save(tensors, metadata={"format": FORMAT})
    vocab = json.dumps({"users": user_ids.tolist(), "items": item_ids.tolist()}).encode()
    manifest = {
        "format": FORMAT,
        "slimrec_version": __version__,
        "model": type(model).__name__,
        "run_config": run_config,
        "tables": tables,
        "tensor_bytes": {key: value.numel() * value.element_size() for key, value in tensors.items()},
        "memory_bytes": model.embedding_bytes() + model.dense_bytes(),
        "metrics": metrics or {},
        "files": {WEIGHTS_FILE: _sha256(weights), VOCAB_FILE: _sha256(vocab)},
    }
    atomic_write_bytes(folder / WEIGHTS_FILE, weights)
    atomic_write_bytes(folder / VOCAB_FILE, vocab)
    atomic_write_json(folder / MANIFEST_FILE, manifest)
    return folder
