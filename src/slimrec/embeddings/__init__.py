"""Embedding tables behind one protocol, built from a spec by ``build_embedding``.

Importing this package registers every method; adding one is a new file plus one import here.
"""

from slimrec.embeddings import full  # noqa: F401  (registers the method)
from slimrec.embeddings.base import EmbeddingTable, state_bytes
from slimrec.embeddings.spec import (
    METHODS,
    EmbeddingSpec,
    TableConfig,
    TableStats,
    build_embedding,
    register,
    resolve_config,
)

__all__ = [
    "METHODS",
    "EmbeddingSpec",
    "EmbeddingTable",
    "TableConfig",
    "TableStats",
    "build_embedding",
    "register",
    "resolve_config",
    "state_bytes",
]
