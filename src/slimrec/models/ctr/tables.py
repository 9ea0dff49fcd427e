"""One table per field (or one shared table) under ONE global memory budget.

``build_field_embeddings(data, spec, dim)`` builds every table through ``build_embedding``; it
never asks which method ``spec`` names. With a budget (a fraction of the fp32 bytes of all the
fields' full tables, or a byte count), ``split_budget`` shares it out:

1. fields of at most ``keep_full_rows`` ids (CTR runs: 16) keep their full table, as QR
   embeddings (Shi et al., 2020) compress only the large tables: folding a 7-value field into
   one or two rows saves a few hundred bytes and loses the field; every other field gets a
   share of the rest proportional to its full-table bytes;
2. smallest fields first, a field whose method cannot build a table within its share (method
   overheads make tiny tables dear: a 7-value field at 10% is 45 bytes) gets the first
   doubling of its share that fits — or, when its plain ``full`` table is cheaper (or its
   share already reaches its full size), is kept full; its bytes come off the budget, the
   shares of the others are recomputed and the walk starts again;
3. if the fields so settled alone exceed the budget, a ``BudgetError`` says so.

The sum of the tables' ``memory_bytes()`` is then at most the budget.

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

from collections.abc import Callable, Iterable, Mapping

import numpy as np

from slimrec.budget import Budget, format_bytes
from slimrec.data.fields import FieldData
from slimrec.embeddings import METHODS, EmbeddingSpec, TableStats, build_embedding
from slimrec.embeddings.base import EmbeddingTable
from slimrec.embeddings.spec import full_fp32_bytes
from slimrec.errors import BudgetError, ConfigError
from slimrec.models.ctr.base import FieldEmbeddings, FieldSlot

SHARED_TABLE = "shared"


def split_budget(budget_bytes: int, full_bytes: Mapping[str, int],
                 fits: Callable[[str, int], bool], method: str = "",
                 keep_full: Iterable[str] = ()) -> dict[str, int | None]:
    """Bytes for each field's compressed table, or None for a field kept full.

    ``fits(field, share)`` says whether the method builds a table for ``field`` within
    ``share`` bytes (a larger share must never fit worse). Walking the fields from the
    smallest, a field that does not fit its proportional share is settled at the smaller of its
    full table and the first doubling of its share that fits (at most twice the smallest
    that fits); the others' shares are then recomputed over what is left. Every field's cost
    (share, or full bytes when kept full) sums to at most ``budget_bytes``; so a
    ``BudgetError`` means ``Σ_f min(full_f, 2 · smallest_f) > budget_bytes``. Fields in
    ``keep_full`` are kept full from the start.
    """
    order = sorted(full_bytes, key=lambda name: (full_bytes[name], name))
    settled: dict[str, int | None] = dict.fromkeys(keep_full)
    while True:
        spent = sum(full_bytes[n] if cost is None else cost for n, cost in settled.items())
        remaining = budget_bytes - spent
        if remaining < 0:
            names = list(settled)
            listed = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6
                                             else "")
            raise BudgetError(
                f"global budget of {budget_bytes} bytes ({format_bytes(budget_bytes)}) is too "
                f"small for method {method!r}: fields {listed} alone need {spent} bytes "
                f"({format_bytes(spent)}) as full tables or at the smallest size the method "
                "reaches for them. Raise the budget or pick another method."
            )
        rest = [name for name in order if name not in settled]
        total = sum(full_bytes[name] for name in rest)
        shares = {name: remaining * full_bytes[name] // total for name in rest}
        failed = next((name for name in rest
                       if shares[name] >= full_bytes[name] or not fits(name, shares[name])),
                      None)
        if failed is None:
            return {**settled, **shares}
        share = max(1, shares[failed])
        while share < full_bytes[failed] and not fits(failed, share):
            share *= 2
        settled[failed] = share if share < full_bytes[failed] else None


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

    seeds = {f.name: seed + index for index, f in enumerate(fields)}
    sizes = {f.name: f.num_embeddings for f in fields}
    stats = {f.name: field_stats(data, f.name) for f in fields}
    unservable: dict[str, str] = {}

    def build(name: str, field_spec: EmbeddingSpec) -> EmbeddingTable:
        return build_embedding(field_spec, sizes[name], embedding_dim, stats[name], seeds[name])

    def attempt(name: str, field_spec: EmbeddingSpec) -> EmbeddingTable | None:
        """The table, or None when it does not fit or the method cannot serve this field
        (a graph method on a context field: ``ConfigError`` naming the role)."""
        try:
            return build(name, field_spec)
        except BudgetError:
            return None
        except ConfigError as error:
            unservable[name] = str(error)
            return None

    small = [name for name, size in sizes.items() if size <= keep_full_rows]
    if spec.budget is None:
        tables = {name: None if name in small else attempt(name, spec) for name in sizes}
    else:
        full = {name: full_fp32_bytes(sizes[name], embedding_dim) for name in sizes}
        budget_bytes = spec.budget.resolve(sum(full.values()))
        built: dict[tuple[str, int], EmbeddingTable | None] = {}

        def fits(name: str, share: int) -> bool:
            if share >= 1 and (name, share) not in built:
                built[name, share] = attempt(
                    name, EmbeddingSpec(spec.method, spec.params, Budget(num_bytes=share)))
            return built.get((name, share)) is not None

        try:
            plan = split_budget(budget_bytes, full, fits, spec.method, small)
        except BudgetError as error:
            if not small:
                raise
            raise BudgetError(f"{error} Fields of at most keep_full_rows={keep_full_rows} ids "
                              f"({len(small)} of them) keep full tables; lower keep_full_rows "
                              "to compress them too.") from None
        tables = {name: None if share is None else built[name, share]
                  for name, share in plan.items()}
    if unservable and len(unservable) == len(sizes) - len(small):
        # The method serves no field at all: a bad parameter, not a field it cannot serve.
        raise ConfigError(next(iter(unservable.values())))
    tables = {name: table if table is not None else build(name, EmbeddingSpec("full"))
              for name, table in tables.items()}
    slots = [FieldSlot(f.name, f.num_embeddings, f.multi_hot, table_key(f.name)) for f in fields]
    return FieldEmbeddings(slots, {table_key(name): tables[name] for name in sizes},
                           notes={name: f"kept full: {reason}"
                                  for name, reason in unservable.items()})
