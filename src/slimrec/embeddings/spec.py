"""Specs, configs and the method registry: ``build_embedding(spec, num_ids, dim, stats)``.

Each method lives in one file that defines ``<Kind>TableConfig`` (a frozen config registered
with ``@register``) and ``<Kind>Table`` (the module). The config knows how to build its table and
how to choose its free parameters for a byte budget (``for_budget``); nothing outside the
method's file branches on its name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from slimrec.budget import Budget, format_bytes, parse_budget
from slimrec.config import FrozenConfig, parse_config
from slimrec.embeddings.base import EmbeddingTable
from slimrec.errors import BudgetError, ConfigError, did_you_mean


@dataclass(frozen=True)
class TableStats:
    """What data-aware methods need to know about the ids of one table.

    ``role`` is ``"user"``, ``"item"`` or a field name; ``frequencies[i]`` counts training
    occurrences of id ``i``; ``interactions`` is the ``(num_users, num_items)`` training graph.
    """

    role: str = "item"
    frequencies: np.ndarray | None = None
    interactions: sp.csr_matrix | None = None
    cache_dir: Path | None = None


# The ``sparse_grad`` field of every method whose lookups can give row-sparse gradients.
SparseGrad = Annotated[bool, Field(description="row-sparse gradients, so the loop's lazy "
                                               "Adam updates only the rows of a batch")]


class TableConfig(FrozenConfig):
    """Base of every method's config. Subclasses set ``method`` and implement ``build``."""

    method: ClassVar[str] = ""

    def build(self, num_embeddings: int, embedding_dim: int, stats: TableStats | None,
              seed: int) -> EmbeddingTable:
        raise NotImplementedError

    @classmethod
    def for_budget(cls, budget_bytes: int, num_embeddings: int, embedding_dim: int,
                   stats: TableStats | None, params: Mapping[str, Any]) -> Self:
        """The config (free parameters solved) whose table fits ``budget_bytes``, as close as
        the method allows. ``params`` are the user's fixed choices. Raise ``BudgetError``
        naming the smallest reachable size when nothing fits."""
        raise BudgetError(f"method {cls.method!r} cannot target a budget; give its parameters.")

    @classmethod
    def from_trained(cls, table: EmbeddingTable, budget_bytes: int | None,
                     params: Mapping[str, Any]) -> EmbeddingTable:
        """Compress an already-trained table (post-training methods such as ``svd`` or int8
        quantization override this; ``slimrec compress`` calls it)."""
        raise ConfigError(f"method {cls.method!r} cannot compress a trained table; "
                          "it is trained from scratch (use `slimrec train --embedding`).")


METHODS: dict[str, type[TableConfig]] = {}


def register(config_cls: type[TableConfig]) -> type[TableConfig]:
    """Class decorator: make a config's method available to ``build_embedding``."""
    if not config_cls.method:
        raise TypeError(f"{config_cls.__name__} must set the class attribute 'method'.")
    METHODS[config_cls.method] = config_cls
    return config_cls


def method_config(method: str) -> type[TableConfig]:
    if method not in METHODS:
        raise ConfigError(f"unknown embedding method {method!r}.{did_you_mean(method, METHODS)} "
                          f"Known methods: {', '.join(sorted(METHODS))}.")
    return METHODS[method]


@dataclass(frozen=True)
class EmbeddingSpec:
    """Which method to use, with fixed parameters and/or a budget to solve the rest for."""

    method: str = "full"
    params: Mapping[str, Any] = field(default_factory=dict)
    budget: Budget | None = None

    def __post_init__(self) -> None:
        method_config(self.method)
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        if self.budget is not None:
            object.__setattr__(self, "budget", parse_budget(self.budget))

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "params": dict(self.params),
                "budget": None if self.budget is None else str(self.budget)}


def full_fp32_bytes(num_embeddings: int, embedding_dim: int) -> int:
    return num_embeddings * embedding_dim * 4


def resolve_config(spec: EmbeddingSpec, num_embeddings: int, embedding_dim: int,
                   stats: TableStats | None = None) -> TableConfig:
    """The method's config with every free parameter fixed (by the budget solver if needed)."""
    config_cls = method_config(spec.method)
    if spec.budget is None:
        return parse_config(config_cls, spec.params, where=f"{config_cls.__name__}")
    budget_bytes = spec.budget.resolve(full_fp32_bytes(num_embeddings, embedding_dim))
    return config_cls.for_budget(budget_bytes, num_embeddings, embedding_dim, stats, spec.params)


def build_embedding(spec: EmbeddingSpec | str, num_embeddings: int, embedding_dim: int,
                    stats: TableStats | None = None, seed: int = 0) -> EmbeddingTable:
    """Build a table for ``num_embeddings`` ids of width ``embedding_dim``.

    With a budget, the result satisfies ``memory_bytes() <= budget``.
    """
    if isinstance(spec, str):
        spec = EmbeddingSpec(spec)
    if num_embeddings < 1 or embedding_dim < 1:
        raise ConfigError(f"a table needs num_embeddings >= 1 and embedding_dim >= 1; got "
                          f"{num_embeddings} and {embedding_dim}.")
    config = resolve_config(spec, num_embeddings, embedding_dim, stats)
    table = config.build(num_embeddings, embedding_dim, stats, seed)
    if spec.budget is not None:
        budget_bytes = spec.budget.resolve(full_fp32_bytes(num_embeddings, embedding_dim))
        if table.memory_bytes() > budget_bytes:
            raise BudgetError(
                f"{spec.method} built a table of {format_bytes(table.memory_bytes())}, over the "
                f"budget of {format_bytes(budget_bytes)}; this is a solver bug, please report it."
            )
    return table


def budget_too_small(method: str, budget_bytes: int, smallest_bytes: int) -> BudgetError:
    """The error every solver raises when no configuration fits."""
    return BudgetError(
        f"budget of {budget_bytes} bytes ({format_bytes(budget_bytes)}) is too small for "
        f"method {method!r}: the smallest reachable table takes {smallest_bytes} bytes "
        f"({format_bytes(smallest_bytes)}). Raise the budget or pick another method."
    )
