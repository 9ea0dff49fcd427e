"""Saved models are data, not pickles: ``model.safetensors`` + ``vocab.json`` + ``manifest.json``.

The manifest records the library version, the resolved run config, each table's method config,
the per-tensor bytes and the sha256 of the other files; loading checks all of it.

What is saved is ``model.for_inference()``: for LightGCN the propagated vectors (an ``MF``), not
the training graph. Optionally ``seen.safetensors`` holds each user's known items as a CSR
matrix (``indptr``, ``indices`` at the narrowest integer width) so that recommendations can
exclude them; its bytes are recorded apart from the model's (``seen_items_bytes``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from safetensors.torch import load_file, save

from slimrec import __version__
from slimrec.config import parse_config
from slimrec.embeddings.base import EmbeddingTable, state_bytes
from slimrec.embeddings.sizing import index_dtype
from slimrec.errors import ArtifactError
from slimrec.io import atomic_write_bytes, atomic_write_json
from slimrec.models.base import RetrievalModel

WEIGHTS_FILE, VOCAB_FILE, MANIFEST_FILE = "model.safetensors", "vocab.json", "manifest.json"
SEEN_FILE = "seen.safetensors"
FORMAT = "slimrec-artifact/1"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def seen_tensors(seen: sp.csr_matrix) -> dict[str, torch.Tensor]:
    """``{"indptr": (U + 1,), "indices": (nnz,)}`` of a users x items matrix, narrowest ints."""
    seen = sp.csr_matrix(seen)
    seen.sort_indices()
    return {"indptr": torch.from_numpy(seen.indptr.astype(np.int64)).to(index_dtype(seen.nnz)),
            "indices": torch.from_numpy(seen.indices.astype(np.int64)).to(
                index_dtype(max(0, seen.shape[1] - 1)))}


def save_artifact(folder: str | Path, model: RetrievalModel, run_config: dict[str, Any],
                  user_ids: np.ndarray, item_ids: np.ndarray,
                  metrics: dict[str, Any] | None = None,
                  seen: sp.csr_matrix | None = None) -> dict[str, Any]:
    """Write the inference state of ``model`` and everything needed to reload and query it.

    ``seen`` (users x items, e.g. train + validation) is stored for ``exclude_seen``. Returns
    the manifest.
    """
    folder = Path(folder)
    trained_model, model = type(model).__name__, model.for_inference()
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
    files = {WEIGHTS_FILE: weights, VOCAB_FILE: vocab}
    seen_bytes = 0
    if seen is not None:
        if seen.shape != (len(user_ids), len(item_ids)):
            raise ValueError(f"seen has shape {seen.shape}; expected "
                             f"({len(user_ids)}, {len(item_ids)}) (users x items).")
        seen_state = seen_tensors(seen)
        files[SEEN_FILE] = save(seen_state, metadata={"format": FORMAT})
        seen_bytes = state_bytes(seen_state)
    manifest = {
        "format": FORMAT,
        "slimrec_version": __version__,
        "model": type(model).__name__,
        "trained_model": trained_model,
        "model_config": model.config.model_dump(),
        "run_config": run_config,
        "num_users": len(user_ids), "num_items": len(item_ids),
        "tables": tables,
        "tensor_bytes": {key: value.numel() * value.element_size()
                         for key, value in tensors.items()},
        "memory_bytes": model.embedding_bytes() + model.dense_bytes(),
        "seen_items_bytes": seen_bytes,
        "metrics": metrics or {},
        "files": {name: _sha256(data) for name, data in files.items()},
    }
    for name, data in files.items():
        atomic_write_bytes(folder / name, data)
    if seen is None:
        (folder / SEEN_FILE).unlink(missing_ok=True)  # stale, from an earlier save here
    atomic_write_json(folder / MANIFEST_FILE, manifest)
    return manifest


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
    if manifest.get("model") not in MODEL_CLASSES:
        raise ArtifactError(
            f"{folder}: holds a {manifest.get('task', 'retrieval')} model "
            f"{manifest.get('model')!r}, not a retrieval model ({', '.join(MODEL_CLASSES)}); "
            "CTR models load with slimrec.serve.ctr_artifact.load_ctr_artifact.")
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


def load_seen(folder: str | Path, manifest: dict[str, Any]) -> sp.csr_matrix | None:
    """The users x items seen-items matrix saved with the model, or None when there is none.

    ``manifest`` comes from ``read_manifest`` (which verified the file's checksum).
    """
    if SEEN_FILE not in manifest["files"]:
        return None
    state = load_file(Path(folder) / SEEN_FILE)
    indptr, indices = state["indptr"].numpy(), state["indices"].numpy()
    shape = (manifest["num_users"], manifest["num_items"])
    return sp.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr), shape=shape)
