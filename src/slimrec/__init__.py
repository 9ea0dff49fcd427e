"""SlimRec: memory-efficient recommender systems.

The public API, importable from here (loaded on first use, so ``import slimrec`` stays light):

- ``run(settings)``: train and evaluate one model of any task; writes a run folder.
- ``load(folder)``: a saved run's model, manifest and vocabularies (``serve.artifact.Artifact``).
- ``Recommender``: top-k recommendations from a saved retrieval run.
- ``EmbeddingSpec``, ``build_embedding``: a compressed drop-in for ``torch.nn.Embedding``.
- ``TASKS``, ``METHODS``, ``MODELS``, ``DATASETS``: the registries.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "run": ("slimrec.spine", "run"),
    "load_config": ("slimrec.spine", "load_config"),
    "load": ("slimrec.serve.artifact", "load_artifact"),
    "Recommender": ("slimrec.serve.recommender", "Recommender"),
    "EmbeddingSpec": ("slimrec.embeddings", "EmbeddingSpec"),
    "build_embedding": ("slimrec.embeddings", "build_embedding"),
    "TASKS": ("slimrec.tasks", "TASKS"),
    "METHODS": ("slimrec.embeddings", "METHODS"),
    "MODELS": ("slimrec.models", "MODELS"),
    "DATASETS": ("slimrec.data.registry", "DATASETS"),
}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'slimrec' has no attribute {name!r}")
    module, attribute = _PUBLIC[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
