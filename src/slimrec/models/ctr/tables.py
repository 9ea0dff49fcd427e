"""One table per field (or one shared table) under ONE global memory budget.

``build_field_embeddings(data, spec, dim)`` asks ``slimrec.embeddings.allocate`` for one table
per field: the allocator splits the budget (a fraction of the fp32 bytes of all the fields' full
tables, or a total size) over them in proportion to their full fp32 bytes, smallest first, so
that the sum of the tables' ``memory_bytes()`` is at most the budget (see its docstring; it
also holds ``split_budget``, re-exported here). Fields of at most ``keep_full_rows`` ids (CTR
runs: 16) are requested with ``keep_full=True``: QR embeddings (Shi et al., 2020) compress only
the large tables, and folding a 7-value field into one or two rows saves a few hundred bytes
and loses the field.

A method whose config class sets ``shared_across_fields = True`` (Unified Embedding) is built
once over the concatenated id space of all fields with the whole budget: field ``f``'s id ``i``
is id ``offset_f + i`` of the shared table, so each field is hashed by its own function.

For the user and item fields, ``TableStats`` carries ``role="user"``/``"item"`` and the
``(users, items)`` graph of the positive train rows (graph methods cluster it); every other
field gets ``role=<field name>`` and its train frequencies. A field the method cannot serve
(it raises ``ConfigError``, as graph methods do for a context field) is kept full, within the
budget, and the reason is recorded (``FieldEmbeddings.notes``); if it serves no field at all,
the error is raised.
"""

from __future__ import annotations

import numpy as np

from slimrec.data.fields import FieldData
from slimrec.embeddings import METHODS, EmbeddingSpec, TableStats, build_embedding
from slimrec.embeddings.allocate import TableRequest, allocate, split_budget
from slimrec.errors import BudgetError
from slimrec.models.ctr.base import FieldEmbeddings, FieldSlot

SHARED_TABLE = "shared"

__all__ = ["SHARED_TABLE", "build_field_embeddings", "field_stats", "split_budget",
           "table_key"]


def field_stats(data: FieldData, name: str) -> TableStats:
    """What data-aware methods get for field ``name`` (see the module docstring)."""
    frequencies = data.frequencies(name)
    for role, field in (("user", data.user_field), ("item", data.item_field)):
        if name == field:
            return TableStats(role=role, frequencies=frequencies,
                              interactions=data.interactions())
    return TableStats(role=name, frequencies=frequencies)


def table_key(field: str) -> str:
    """Module names cannot hold dots; field names may."""
    return field.replace(".", "_")


def build_field_embeddings(data: FieldData, spec: EmbeddingSpec, embedding_dim: int,
                           seed: int = 0, keep_full_rows: int = 0) -> FieldEmbeddings:
    """Tables for every field of ``data`` as ``spec`` asks (see the module docstring); fields
    of at most ``keep_full_rows`` ids keep a full table (unless one table serves all fields)."""
    fields = data.fields
    if getattr(METHODS[spec.method], "shared_across_fields", False):
        offsets = np.concatenate(([0], np.cumsum([f.num_embeddings for f in fields])))
        stats = TableStats(role=SHARED_TABLE, frequencies=np.concatenate(
            [data.frequencies(f.name) for f in fields]))
        table = build_embedding(spec, int(offsets[-1]), embedding_dim, stats, seed)
        slots = [FieldSlot(f.name, f.num_embeddings, f.multi_hot, SHARED_TABLE, int(offset))
                 for f, offset in zip(fields, offsets[:-1], strict=True)]
        return FieldEmbeddings(slots, {SHARED_TABLE: table})

    requests = {f.name: TableRequest(f.num_embeddings, field_stats(data, f.name), seed + index,
                                     keep_full=f.num_embeddings <= keep_full_rows)
                for index, f in enumerate(fields)}
    try:
        allocation = allocate(spec, requests, embedding_dim)
    except BudgetError as error:
        small = sum(request.keep_full for request in requests.values())
        if not small:
            raise
        raise BudgetError(f"{error} Fields of at most keep_full_rows={keep_full_rows} ids "
                          f"({small} of them) keep full tables; lower keep_full_rows "
                          "to compress them too.") from None
    slots = [FieldSlot(f.name, f.num_embeddings, f.multi_hot, table_key(f.name)) for f in fields]
    return FieldEmbeddings(slots, {table_key(name): table
                                   for name, table in allocation.tables.items()},
                           notes=allocation.notes)
