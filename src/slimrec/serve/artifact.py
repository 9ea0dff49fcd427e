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
from safetensors.torch import load_file, save

from slimrec import __version__
from slimrec.config import parse_config
from slimrec.embeddings.base import EmbeddingTable
from slimrec.errors import ArtifactError
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


def _table_classes() -> dict[str, type[EmbeddingTable]]:
    found, stack = {}, [EmbeddingTable]
    while stack:
        cls = stack.pop()
        found[cls.__name__] = cls
        stack.extend(cls.__subclasses__())
    return found


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """Read and check ``manifest.json`` and the checksums of the files it lists."""
    folder = Path(folder)
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise ArtifactError(f"{folder}: no {MANIFEST_FILE}; not a SlimRec model folder.")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ArtifactError(f"{path}: corrupt manifest ({error}).") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"{path}: not a {FORMAT} manifest (format "
                            f"{manifest.get('format') if isinstance(manifest, dict) else None!r}).")
    if manifest.get("slimrec_version", "").split(".")[:2] != __version__.split(".")[:2]:
        raise ArtifactError(f"{path}: written by slimrec {manifest.get('slimrec_version')}, "
                            f"this is {__version__}; re-export the model with a matching version.")
    for name, expected in manifest["files"].items():
        file = folder / name
        if not file.is_file():
            raise ArtifactError(f"{folder}: {name} is missing.")
        actual = _sha256(file.read_bytes())
        if actual != expected:
            raise ArtifactError(f"{file}: checksum mismatch (expected sha256 {expected}, got "
                                f"{actual}); the file is corrupt or was modified.")
    return manifest


def load_artifact(folder: str | Path) -> tuple[RetrievalModel, dict[str, Any], np.ndarray,
                                                np.ndarray]:
    """Load ``(model, manifest, user_ids, item_ids)`` from a folder written by ``save_artifact``."""
    from slimrec.embeddings import METHODS
    from slimrec.models import MODEL_CLASSES

    folder = Path(folder)
    manifest = read_manifest(folder)
    tensors = load_file(folder / WEIGHTS_FILE)
    classes = _table_classes()
    tables = {}
    for name, info in manifest["tables"].items():
        config = parse_config(METHODS[info["method"]], info["config"])
        state = {key[len(name) + 1:]: value for key, value in tensors.items()
                 if key.startswith(f"{name}.")}
        tables[name] = classes[info["class"]].from_state(
            config, info["num_embeddings"], info["embedding_dim"], state)
    dense = {key: value for key, value in tensors.items()
             if not any(key.startswith(f"{name}.") for name in tables)}
    model = MODEL_CLASSES[manifest["model"]].from_artifact(tables, dense, manifest)
    model.eval()
    vocab = json.loads((folder / VOCAB_FILE).read_text())
    return model, manifest, np.asarray(vocab["users"], dtype=str), np.asarray(vocab["items"],
                                                                                dtype=str)
