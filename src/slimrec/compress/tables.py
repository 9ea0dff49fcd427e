"""Post-training compression of a trained model's tables, under the one budget meaning.

The budget (a fraction of the fp32 bytes of all the model's tables, or a total size) is split
over the tables by the allocator's ``split_budget``: each table is handed to the method's
``from_trained`` constructor (``svd``, post-training quantization, ...) with its share.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slimrec.budget import Budget, format_bytes
from slimrec.embeddings.allocate import split_budget
from slimrec.embeddings.base import EmbeddingTable
from slimrec.embeddings.spec import method_config
from slimrec.errors import BudgetError
from slimrec.models.base import RecModel
from slimrec.models.layers import set_submodule


def compress_tables(model: RecModel, method: str, budget: Budget | None,
                    params: Mapping[str, Any]) -> int | None:
    """Replace every table of ``model`` by ``method``'s ``from_trained`` form, in place.

    Returns the bytes the budget resolved to (None without a budget).
    """
    config_cls = method_config(method)
    tables = model.tables()
    if budget is None:
        compressed = {name: config_cls.from_trained(table, None, params)
                      for name, table in tables.items()}
        budget_bytes = None
    else:
        full = {name: table.full_fp32_bytes() for name, table in tables.items()}
        budget_bytes = budget.resolve(sum(full.values()))
        built: dict[tuple[str, int], EmbeddingTable | None] = {}

        def fits(name: str, share: int) -> bool:
            if (name, share) not in built:
                try:
                    built[name, share] = config_cls.from_trained(tables[name], share, params)
                except BudgetError:
                    built[name, share] = None
            return built[name, share] is not None

        plan = split_budget(budget_bytes, full, fits, method)
        compressed = {name: tables[name] if share is None else built[name, share]
                      for name, share in plan.items()}
        spent = sum(table.memory_bytes() for table in compressed.values())
        if spent > budget_bytes:
            raise BudgetError(f"{method} compressed the tables to {format_bytes(spent)}, over "
                              f"the budget of {format_bytes(budget_bytes)}; this is a solver "
                              "bug, please report it.")
    for name, table in compressed.items():
        set_submodule(model, name, table)
    return budget_bytes
