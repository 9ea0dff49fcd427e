"""Helpers the budget solvers share: compact index dtypes, a monotone search, fixed choices,
and the solver of methods with one integer size field.

Each solver works on its config's analytic ``table_bytes(num_embeddings, embedding_dim)``, which
mirrors the tensors the built table registers (tests check the two agree). A solver therefore
never builds trial tables, and it can size tables far too large to allocate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import torch

from slimrec.config import parse_config
from slimrec.embeddings.spec import TableConfig, budget_too_small
from slimrec.errors import ConfigError

C = TypeVar("C", bound=TableConfig)

_INDEX_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64)


def index_dtype(max_value: int) -> torch.dtype:
    """Smallest signed integer dtype holding every value in ``[0, max_value]``.

    Index maps are stored at this width, so a map over 30,000 ids costs 2 bytes an entry.
    """
    for dtype in _INDEX_DTYPES:
        if max_value <= torch.iinfo(dtype).max:
            return dtype
    raise ConfigError(f"index value {max_value} does not fit in int64.")


def largest_fitting(low: int, high: int, size_of: Callable[[int], int],
                    budget_bytes: int) -> int | None:
    """Largest ``value`` in ``[low, high]`` with ``size_of(value) <= budget_bytes``.

    ``size_of`` must be non-decreasing in ``value``; returns None when not even ``low`` fits.
    A binary search, so ``high`` may be astronomically large.
    """
    if size_of(low) > budget_bytes:
        return None
    while low < high:
        middle = (low + high + 1) // 2
        if size_of(middle) <= budget_bytes:
            low = middle
        else:
            high = middle - 1
    return low


def fixed_choices(config_cls: type[C], params: Mapping[str, Any], free: tuple[str, ...]) -> C:
    """The user's fixed parameters, validated, with each solver-set field at its smallest value 1.

    A field the solver sets cannot also be fixed by the user: that would make the budget moot.
    """
    clash = sorted(set(params) & set(free))
    if clash:
        raise ConfigError(
            f"{config_cls.__name__}.{clash[0]} is solved from the budget; give either "
            f"{clash[0]}={params[clash[0]]!r} or a budget, not both."
        )
    return parse_config(config_cls, {**params, **dict.fromkeys(free, 1)},
                        where=config_cls.__name__)


def solve_size_field(config: C, field: str, low: int, high: int, budget_bytes: int,
                     num_embeddings: int, embedding_dim: int) -> C:
    """``config`` with ``field`` at the largest value in ``[low, high]`` whose table fits.

    For methods whose ``table_bytes`` is non-decreasing in one integer field (buckets, rows,
    rank); raises ``budget_too_small`` with the bytes at ``low`` when not even that fits.
    """
    def size_of(value: int) -> int:
        return config.model_copy(update={field: value}).table_bytes(num_embeddings,
                                                                     embedding_dim)

    value = largest_fitting(low, high, size_of, budget_bytes)
    if value is None:
        raise budget_too_small(config.method, budget_bytes, size_of(low))
    return config.model_copy(update={field: value})
