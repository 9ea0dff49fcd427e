"""CTR models saved as data: ``model.safetensors`` + ``vocab.json`` + ``manifest.json``.

The same format as retrieval artifacts (``serve/artifact.py``: version, per-tensor bytes,
checksums, each table's method config and inference state); the manifest adds ``task: "ctr"``,
the model's config, the field slots (which table and offset each field uses) and the ranks of
dense layers replaced by low-rank pairs, so that ``load_ctr_artifact`` rebuilds the same module.
``vocab.json`` holds every field's vocabulary (id -> raw value, id 0 the OOV bucket).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save

from slimrec import __version__
from slimrec.config import parse_config
from slimrec.data.fields import Field
from slimrec.embeddings import METHODS
from slimrec.errors import ArtifactError
from slimrec.io import atomic_write_bytes, atomic_write_json
from slimrec.models.ctr import CTR_MODELS, CTRModel, FieldEmbeddings, FieldSlot
from slimrec.models.dense_lowrank import low_rank_layers, replace_with_low_rank
from slimrec.serve.artifact import (
    FORMAT,
    MANIFEST_FILE,
    VOCAB_FILE,
    WEIGHTS_FILE,
    _sha256,
    _table_classes,
    read_manifest,
)

TABLE_PREFIX = "embeddings.tables."


def save_ctr_artifact(folder: str | Path, model: CTRModel, run_config: dict[str, Any],
                      fields: tuple[Field, ...], metrics: dict[str, Any] | None = None) -> Path:
    """Write the inference state of ``model`` and what is needed to rebuild and query it."""
    folder = Path(folder)
    tensors, tables = {}, {}
    for name, table in model.embeddings.tables.items():
        served = table.for_inference()
        for key, value in table.inference_state().items():
            tensors[f"{TABLE_PREFIX}{name}.{key}"] = value.contiguous().cpu()
        tables[name] = {"class": type(served).__name__, "method": served.config.method,
                        "config": served.config.model_dump(),
                        "num_embeddings": served.num_embeddings,
                        "embedding_dim": served.embedding_dim,
                        "memory_bytes": table.memory_bytes()}
    for key, value in model.dense_state().items():
        tensors[key] = value.contiguous().cpu()
    weights = save(tensors, metadata={"format": FORMAT})
    vocab = json.dumps({"fields": {f.name: f.vocabulary.tolist() for f in fields}}).encode()
    manifest = {
        "format": FORMAT,
        "slimrec_version": __version__,
        "task": "ctr",
        "model": model.name,
        "model_config": model.config.model_dump(),
        "run_config": run_config,
        "fields": [asdict(slot) for slot in model.embeddings.slots],
        "tables": tables,
        "dense_low_rank": low_rank_layers(model),
        "tensor_bytes": {key: value.numel() * value.element_size()
                         for key, value in tensors.items()},
        "memory_bytes": {"embeddings": model.embedding_bytes(), "dense": model.dense_bytes(),
                         "model_total": model.memory_bytes()},
        "metrics": metrics or {},
        "files": {WEIGHTS_FILE: _sha256(weights), VOCAB_FILE: _sha256(vocab)},
    }
    atomic_write_bytes(folder / WEIGHTS_FILE, weights)
    atomic_write_bytes(folder / VOCAB_FILE, vocab)
    atomic_write_json(folder / MANIFEST_FILE, manifest)
    return folder


def is_ctr_artifact(folder: str | Path) -> bool:
    """Whether ``folder`` holds a CTR model (a manifest with ``task: "ctr"``)."""
    path = Path(folder) / MANIFEST_FILE
    try:
        return json.loads(path.read_text()).get("task") == "ctr"
    except (OSError, json.JSONDecodeError, AttributeError):
        return False


def load_ctr_artifact(folder: str | Path) -> tuple[CTRModel, dict[str, Any]]:
    """``(model in eval mode, manifest)`` from a folder written by ``save_ctr_artifact``."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest.get("task") != "ctr":
        raise ArtifactError(f"{folder}: not a CTR model (task {manifest.get('task')!r}).")
    tensors = load_file(folder / WEIGHTS_FILE)
    classes = _table_classes()
    tables = {}
    for name, info in manifest["tables"].items():
        prefix = f"{TABLE_PREFIX}{name}."
        state = {key[len(prefix):]: value for key, value in tensors.items()
                 if key.startswith(prefix)}
        config = parse_config(METHODS[info["method"]], info["config"])
        tables[name] = classes[info["class"]].from_state(
            config, info["num_embeddings"], info["embedding_dim"], state)
    embeddings = FieldEmbeddings([FieldSlot(**slot) for slot in manifest["fields"]], tables)
    model = CTR_MODELS[manifest["model"]].from_params(embeddings, manifest["model_config"])
    replace_with_low_rank(model, manifest["dense_low_rank"])
    dense = {key: value for key, value in tensors.items() if not key.startswith(TABLE_PREFIX)}
    missing = sorted(set(model.dense_state()) ^ set(dense))
    if missing:
        raise ArtifactError(f"{folder}: dense tensors do not match the {manifest['model']} "
                            f"model (first difference: {missing[0]!r}).")
    model.load_state_dict({**{f"{TABLE_PREFIX}{name}.{key}": value
                              for name, table in tables.items()
                              for key, value in table.state_dict().items()}, **dense})
    model.eval()
    return model, manifest
