"""Saved models are data, not pickles, for every task: ONE writer and ONE reader.

A folder holds ``model.safetensors`` (the inference state), ``vocab.json`` (the external ids of
every table, as the task gives them), ``manifest.json`` and the task's extra files (retrieval:
``seen.safetensors``, each user's known items as a CSR at the narrowest integer width, so that
recommendations can exclude them).

The manifest (format 2) records the library version, the task, the model's registry key and
config, what the model needs to be rebuilt (``model_info``), the resolved run config, each
table's method config, the per-tensor bytes, the memory of what is served and of each extra
file, and the sha256 of every file; loading checks all of it. Format-1 folders (written before
the tasks shared one artifact) still load.

What is saved is ``model.for_inference()``: for LightGCN the propagated vectors (an ``MF``), not
the training graph.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load, save
from torch import Tensor

from slimrec import __version__
from slimrec.config import parse_config
from slimrec.embeddings import METHODS
from slimrec.embeddings.base import EmbeddingTable, state_bytes
from slimrec.errors import ArtifactError, SlimRecError
from slimrec.io import atomic_write_bytes, atomic_write_json
from slimrec.models.base import RecModel, model_class

WEIGHTS_FILE, VOCAB_FILE, MANIFEST_FILE = "model.safetensors", "vocab.json", "manifest.json"
FORMAT = "slimrec-artifact/2"
FORMAT_1 = "slimrec-artifact/1"
# Format 1 named retrieval models by class; CTR tables by field, under this prefix.
_FORMAT_1_MODELS = {"MF": "mf", "LightGCN": "lightgcn", "NeuMF": "neumf"}
_FORMAT_1_CTR_PREFIX = "embeddings.tables."


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Artifact:
    """A loaded model folder: the model (eval mode), its manifest, vocabularies, extra files."""

    model: RecModel
    manifest: dict[str, Any]
    vocab: dict[str, Any]
    extras: dict[str, dict[str, Tensor]]
    folder: Path

    @property
    def task(self) -> str:
        return self.manifest["task"]


def run_seed(manifest: dict[str, Any]) -> int:
    """The seed of the run that saved ``manifest`` (0 when it has no run config): serving breaks
    score ties with the same seeded item order as the run's evaluation."""
    return int(manifest.get("run_config", {}).get("seed", 0))


def table_entry(table: EmbeddingTable) -> dict[str, Any]:
    served = table.for_inference()
    return {"class": type(served).__name__, "method": served.config.method,
            "config": served.config.model_dump(), "num_embeddings": served.num_embeddings,
            "embedding_dim": served.embedding_dim, "memory_bytes": table.memory_bytes()}


def save_artifact(folder: str | Path, model: RecModel, vocab: dict[str, Any],
                  run_config: dict[str, Any] | None = None,
                  metrics: dict[str, Any] | None = None,
                  extras: dict[str, dict[str, Tensor]] | None = None) -> dict[str, Any]:
    """Write the inference state of ``model`` and everything needed to reload and query it.

    ``vocab``: external ids of the tables (``task.vocab(data)``); ``extras``: the task's extra
    tensor files by name (``task.artifact_files(data)``). Returns the manifest.
    """
    folder = Path(folder)
    trained, model = model.name, model.for_inference()
    tables = model.tables()
    tensors = {f"{name}.{key}": value.contiguous().cpu()
               for name, table in tables.items()
               for key, value in table.inference_state().items()}
    tensors.update({key: value.contiguous().cpu() for key, value in model.dense_state().items()})
    files = {WEIGHTS_FILE: save(tensors, metadata={"format": FORMAT}),
             VOCAB_FILE: json.dumps(vocab).encode()}
    extras = extras or {}
    for name, state in extras.items():
        files[name] = save(state, metadata={"format": FORMAT})
    manifest = {
        "format": FORMAT,
        "slimrec_version": __version__,
        "task": model.task,
        "model": model.name,
        "trained_model": trained,
        "model_config": model.config.model_dump(),
        "model_info": model.artifact_info(),
        "run_config": run_config or {},
        "tables": {name: table_entry(table) for name, table in tables.items()},
        "tensor_bytes": {key: value.numel() * value.element_size()
                         for key, value in tensors.items()},
        "memory_bytes": {"embeddings": model.embedding_bytes(), "dense": model.dense_bytes(),
                         "model_total": model.memory_bytes()},
        "extra_bytes": {name: state_bytes(state) for name, state in extras.items()},
        "metrics": metrics or {},
        "files": {name: _sha256(data) for name, data in files.items()},
    }
    for name, data in files.items():
        atomic_write_bytes(folder / name, data)
    for stale in folder.glob("*.safetensors"):  # an extra file of an earlier save here
        if stale.name not in files:
            stale.unlink()
    atomic_write_json(folder / MANIFEST_FILE, manifest)
    return manifest


def _upgrade(manifest: dict[str, Any]) -> dict[str, Any]:
    """A format-1 manifest in the format-2 shape."""
    task = manifest.get("task", "retrieval")
    upgraded = {**manifest, "format": FORMAT, "task": task,
                "model": _FORMAT_1_MODELS.get(manifest["model"], manifest["model"])}
    upgraded["trained_model"] = _FORMAT_1_MODELS.get(manifest.get("trained_model", ""),
                                                     upgraded["model"])
    if task == "ctr":
        upgraded["tables"] = {f"{_FORMAT_1_CTR_PREFIX}{name}": info
                              for name, info in manifest["tables"].items()}
        upgraded["model_info"] = {"fields": manifest["fields"],
                                  "dense_low_rank": manifest.get("dense_low_rank", {})}
    else:
        upgraded["model_info"] = {}
        upgraded["memory_bytes"] = {"model_total": manifest["memory_bytes"]}
        upgraded["extra_bytes"] = ({"seen.safetensors": manifest["seen_items_bytes"]}
                                   if manifest.get("seen_items_bytes") else {})
    return upgraded


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """Read and check ``manifest.json`` and the checksums of the files it lists."""
    folder = Path(folder)
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise ArtifactError(f"{folder}: no {MANIFEST_FILE}; not a SlimRec model folder.")
    try:
        manifest = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ArtifactError(f"{path}: corrupt manifest ({error}).") from None
    found = manifest.get("format") if isinstance(manifest, dict) else None
    if found not in (FORMAT, FORMAT_1):
        raise ArtifactError(f"{path}: not a SlimRec manifest (format {found!r}; expected "
                            f"{FORMAT} or {FORMAT_1}).")
    if str(manifest.get("slimrec_version", "")).split(".")[:2] != __version__.split(".")[:2]:
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
    return _upgrade(manifest) if found == FORMAT_1 else manifest


def _tensors(path: Path) -> dict[str, Tensor]:
    try:
        return load(path.read_bytes())
    except SafetensorError as error:
        raise ArtifactError(f"{path}: not a readable safetensors file ({error}).") from None


def _table_classes() -> dict[str, type[EmbeddingTable]]:
    found, stack = {}, [EmbeddingTable]
    while stack:
        cls = stack.pop()
        found[cls.__name__] = cls
        stack.extend(cls.__subclasses__())
    return found


def _rebuild(manifest: dict[str, Any], tensors: dict[str, Tensor]) -> RecModel:
    """The model (eval mode) from its manifest and saved tensors."""
    classes = _table_classes()
    tables = {}
    for name, info in manifest["tables"].items():
        config = parse_config(METHODS[info["method"]], info["config"])
        state = {key[len(name) + 1:]: value for key, value in tensors.items()
                 if key.startswith(f"{name}.")}
        tables[name] = classes[info["class"]].from_state(
            config, info["num_embeddings"], info["embedding_dim"], state)
    prefixes = tuple(f"{name}." for name in tables)
    dense = {key: value for key, value in tensors.items() if not key.startswith(prefixes)}
    if manifest["model"] == "ensemble":  # K models of one task in one folder
        from slimrec.ensemble import EnsembleModel as cls
    else:
        cls = model_class(manifest["model"])
    model = cls.from_artifact(tables, dense, cls.parse_params(manifest["model_config"]),
                              manifest["model_info"])
    return model.eval()


def load_artifact(folder: str | Path, task: str | tuple[str, ...] | None = None) -> Artifact:
    """Load a folder written by ``save_artifact`` (format 2) or by an older slimrec (format 1).

    With ``task`` (one task or several), a folder holding another task's model fails before
    anything is rebuilt.
    """
    import slimrec.tasks  # noqa: F401  (registers the tasks' models)

    folder = Path(folder)
    manifest = read_manifest(folder)
    wanted = (task,) if isinstance(task, str) else task
    if wanted is not None and manifest["task"] not in wanted:
        raise ArtifactError(f"{folder}: holds a {manifest['task']} model ({manifest['model']});"
                            f" this needs a {' or '.join(wanted)} model.")
    tensors = _tensors(folder / WEIGHTS_FILE)
    try:
        model = _rebuild(manifest, tensors)
    except (RuntimeError, KeyError, ValueError, SlimRecError) as error:
        raise ArtifactError(f"{folder}: the saved model cannot be rebuilt by this slimrec "
                            f"({type(error).__name__}: {error}).") from None
    vocab = json.loads((folder / VOCAB_FILE).read_text(encoding="utf-8"))
    extras = {name: _tensors(folder / name) for name in manifest["files"]
              if name not in (WEIGHTS_FILE, VOCAB_FILE)}
    return Artifact(model, manifest, vocab, extras, folder)
