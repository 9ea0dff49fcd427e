"""Embedding tables behind one protocol, built from a spec by ``build_embedding``.

Importing this package registers every method; adding one is a new file plus one import here.
"""

from slimrec.embeddings import (
    double_frequency,  # noqa: F401
    double_graph,  # noqa: F401
    double_hash,  # noqa: F401
    dynamic_sparse,  # noqa: F401
    frequency_hash,  # noqa: F401
    full,  # noqa: F401  (registers the method)
    graph,  # noqa: F401
    graph_popularity,  # noqa: F401
    graphhash,  # noqa: F401
    hash,  # noqa: F401
    lowrank,  # noqa: F401
    mixed_dim,  # noqa: F401
    pruned,  # noqa: F401
    qr,  # noqa: F401
    quantized,  # noqa: F401
    svd,  # noqa: F401
    tt,  # noqa: F401
    unified,  # noqa: F401
)
from slimrec.embeddings.allocate import Allocation, TableRequest, allocate
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
    "Allocation",
    "EmbeddingSpec",
    "EmbeddingTable",
    "TableConfig",
    "TableRequest",
    "TableStats",
    "allocate",
    "build_embedding",
    "register",
    "resolve_config",
    "state_bytes",
]
