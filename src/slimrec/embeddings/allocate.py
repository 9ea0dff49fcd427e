"""ONE allocator: a memory budget split over any set of embedding tables.

``allocate(spec, requests, dim)`` builds one table per request (user/item tables of a
two-tower model, one table per field of a CTR model, ...) through ``build_embedding``; it never
asks which method ``spec`` names. ``spec.budget`` (a fraction of the fp32 bytes of ALL the
requested tables, or a total size) resolves against the sum of their full fp32 bytes, and
``split_budget`` shares it out:

1. tables requested with ``keep_full=True`` (CTR: fields of at most ``keep_full_rows`` ids) keep
   their full table, as QR embeddings (Shi et al., 2020) compress only the large tables:
   folding a 7-value field into one or two rows saves a few hundred bytes and loses the field;
   every other table gets a share of the rest proportional to its full fp32 bytes;
2. smallest tables first, a table whose method cannot build it within its share (method
   overheads make tiny tables dear: a 7-value field at 10% is 45 bytes) gets the first doubling
   of its share that fits — or, when its plain ``full`` table is cheaper (or its share already
   reaches its full size), is kept full; its bytes come off the budget, the shares of the others
   are recomputed and the walk starts again;
3. if the tables so settled alone exceed the budget, a ``BudgetError`` naming the method and
   the tables says so.

The sum of the tables' ``memory_bytes()`` is then at most the budget. Without a budget every
table is built with ``spec`` as is (its fixed parameters).

A table the method cannot serve (it raises ``ConfigError``, as graph methods do for a role other
than user/item) is kept full, within the budget, and the reason is recorded in
``Allocation.notes``; if the method serves none of the tables it may compress, the error is
raised.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from slimrec.budget import Budget, format_bytes
from slimrec.embeddings.base import EmbeddingTable
from slimrec.embeddings.spec import EmbeddingSpec, TableStats, build_embedding, full_fp32_bytes
from slimrec.errors import BudgetError, ConfigError


@dataclass(frozen=True)
class TableRequest:
    """One table to allocate: its number of ids, what data-aware methods know of them, the seed
    of its initialization, and whether it is kept full whatever the budget."""

    num_embeddings: int
    stats: TableStats | None = None
    seed: int = 0
    keep_full: bool = False


@dataclass
class Allocation:
    """The built tables (in request order) and how the budget went."""

    tables: dict[str, EmbeddingTable]
    budget_bytes: int | None  # what the budget resolved to (None: no budget)
    full_bytes: int  # fp32 bytes of all the requested tables
    notes: dict[str, str]  # per table: why it is not the requested method ("kept full: ...")

    def memory_bytes(self) -> int:
        """Bytes of all the tables (at most ``budget_bytes`` when there is a budget)."""
        return sum(table.memory_bytes() for table in self.tables.values())


def split_budget(budget_bytes: int, full_bytes: Mapping[str, int],
                 fits: Callable[[str, int], bool], method: str = "",
                 keep_full: Iterable[str] = ()) -> dict[str, int | None]:
    """Bytes for each table's compressed form, or None for a table kept full.

    ``fits(name, share)`` says whether the method builds table ``name`` within ``share`` bytes
    (a larger share must never fit worse). Walking the tables from the smallest, a table that
    does not fit its proportional share is settled at the smaller of its full size and the first
    doubling of its share that fits (at most twice the smallest that fits); the others' shares
    are then recomputed over what is left. Every table's cost (share, or full bytes when kept
    full) sums to at most ``budget_bytes``; so a ``BudgetError`` means
    ``Σ_t min(full_t, 2 · smallest_t) > budget_bytes``. Tables in ``keep_full`` are kept full
    from the start.
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
                f"small for method {method!r}: tables {listed} alone need {spent} bytes "
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


def allocate(spec: EmbeddingSpec, requests: Mapping[str, TableRequest],
             embedding_dim: int) -> Allocation:
    """Build every requested table as ``spec`` asks, within ``spec.budget`` for them all
    (see the module docstring)."""
    if not requests:
        raise ConfigError("allocate needs at least one table request.")
    full = {name: full_fp32_bytes(request.num_embeddings, embedding_dim)
            for name, request in requests.items()}
    keep = [name for name, request in requests.items() if request.keep_full]
    unservable: dict[str, str] = {}

    def build(name: str, table_spec: EmbeddingSpec) -> EmbeddingTable:
        request = requests[name]
        return build_embedding(table_spec, request.num_embeddings, embedding_dim, request.stats,
                               request.seed)

    def attempt(name: str, table_spec: EmbeddingSpec) -> EmbeddingTable | None:
        """The table, or None when it does not fit or the method cannot serve this table
        (a graph method on a context field: ``ConfigError`` naming the role)."""
        try:
            return build(name, table_spec)
        except BudgetError:
            return None
        except ConfigError as error:
            unservable[name] = str(error)
            return None

    def serves_none() -> bool:
        return bool(unservable) and len(unservable) == len(requests) - len(keep)

    budget_bytes: int | None = None
    if spec.budget is None:
        planned = {name: None if name in keep else attempt(name, spec) for name in requests}
    else:
        budget_bytes = spec.budget.resolve(sum(full.values()))
        fitted: dict[tuple[str, int], bool] = {}
        # Only each table's latest fitting build is kept: the plan ends on it (a table's last
        # trial that fits is its share), and a table holding one fp32 row per id (quantized's
        # QAT weights: 2.6 GB at 10M ids) must not pile up once per trial.
        latest: dict[str, tuple[int, EmbeddingTable]] = {}

        def sized(share: int) -> EmbeddingSpec:
            return EmbeddingSpec(spec.method, spec.params, Budget(num_bytes=share))

        def fits(name: str, share: int) -> bool:
            if share >= 1 and (name, share) not in fitted:
                latest.pop(name, None)
                table = attempt(name, sized(share))
                fitted[name, share] = table is not None
                if table is not None:
                    latest[name] = (share, table)
            return fitted.get((name, share), False)

        def planned_table(name: str, share: int | None) -> EmbeddingTable | None:
            if share is None:
                return None
            kept_share, table = latest.get(name, (None, None))
            return table if kept_share == share else build(name, sized(share))

        try:
            plan = split_budget(budget_bytes, full, fits, spec.method, keep)
        except BudgetError as error:
            if not unservable:
                raise
            if serves_none():  # a bad parameter, not a budget too small
                raise ConfigError(next(iter(unservable.values()))) from None
            # The tables the method cannot serve were kept full: say why (a bad parameter?).
            names = ", ".join(unservable)
            raise BudgetError(f"{error} Method {spec.method!r} cannot serve tables {names}, "
                              f"kept full: {next(iter(unservable.values()))}") from None
        planned = {name: planned_table(name, share) for name, share in plan.items()}
    if serves_none():
        # The method serves no table at all: a bad parameter, not a table it cannot serve.
        raise ConfigError(next(iter(unservable.values())))
    # A table the plan keeps full is a plain fp32 table; a "full" spec keeps its own fixed
    # parameters (init_std, sparse_grad) there, whatever its budget.
    kept_full = EmbeddingSpec("full", spec.params if spec.method == "full" else {})
    tables = {name: planned[name] if planned[name] is not None else build(name, kept_full)
              for name in requests}
    return Allocation(tables, budget_bytes, sum(full.values()),
                      {name: f"kept full: {reason}" for name, reason in unservable.items()})
