"""The one model base and the one model registry.

Every model, whatever its task, is a ``RecModel``: it holds embedding tables without knowing
their method, declares its settings in ``config_class`` and its task in ``task``, and registers
under one lowercase key (``@register_model``) in ``MODELS``. The training loop, the artifact,
compression and serving talk to this base only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import scipy.sparse as sp
import torch
from torch import Tensor, nn

from slimrec.config import FrozenConfig, parse_config
from slimrec.embeddings.base import EmbeddingTable, state_bytes
from slimrec.errors import ConfigError, did_you_mean

Scorer = Callable[[Tensor, Tensor | None], Tensor]
M = TypeVar("M", bound=type["RecModel"])

MODELS: dict[str, type[RecModel]] = {}


def register_model(cls: M) -> M:
    """Class decorator: make ``cls`` available under ``cls.name`` in every command."""
    if not cls.name or cls.name != cls.name.lower():
        raise ValueError(f"{cls.__name__}.name must be a lowercase key; got {cls.name!r}.")
    if cls.name in MODELS:
        raise ValueError(f"model {cls.name!r} is registered twice.")
    MODELS[cls.name] = cls
    return cls


def model_class(name: str, task: str | None = None) -> type[RecModel]:
    """The registered model ``name`` (of ``task`` when given), or a ``ConfigError`` with a hint."""
    known = sorted(key for key, cls in MODELS.items() if task is None or cls.task == task)
    if name in MODELS and name not in known:
        raise ConfigError(f"model {name!r} is a {MODELS[name].task} model, not a {task} model; "
                          f"{task} models: {', '.join(known)}.")
    if name not in MODELS:
        which = f"{task} models" if task else "models"
        raise ConfigError(f"unknown model {name!r}.{did_you_mean(name, known)} Known {which}: "
                          f"{', '.join(known)}.")
    return MODELS[name]


def _top_tables(module: nn.Module, prefix: str = "") -> dict[str, EmbeddingTable]:
    """Tables below ``module`` by qualified name, not descending into a table's own parts."""
    found: dict[str, EmbeddingTable] = {}
    for name, child in module.named_children():
        qualified = f"{prefix}{name}"
        if isinstance(child, EmbeddingTable):
            found[qualified] = child
        else:
            found.update(_top_tables(child, f"{qualified}."))
    return found


class RecModel(nn.Module):
    """Base of every model: tables, settings, the hooks the training loop calls, and memory.

    Subclasses set ``name`` (the registry key), ``task`` and, when they have settings,
    ``config_class`` (``model_params`` are parsed into it and kept in ``self.config``).
    """

    name: ClassVar[str] = ""
    task: ClassVar[str] = ""
    config_class: ClassVar[type[FrozenConfig]] = FrozenConfig
    config: FrozenConfig = FrozenConfig()

    @classmethod
    def parse_params(cls, params: Mapping[str, Any] | None) -> FrozenConfig:
        """``model_params`` validated into ``config_class`` (unknown keys fail, with a hint)."""
        return parse_config(cls.config_class, params or {}, where=f"{cls.name} model_params")

    def tables(self) -> dict[str, EmbeddingTable]:
        """The embedding tables, by qualified module name (their state-dict prefix)."""
        return _top_tables(self)

    def for_inference(self) -> RecModel:
        """The model an artifact stores and serves: ``self`` unless inference needs less."""
        return self

    def artifact_info(self) -> dict[str, Any]:
        """What ``from_artifact`` needs besides the tables, dense tensors and model config."""
        return {}

    @classmethod
    def from_artifact(cls, tables: dict[str, EmbeddingTable], dense: dict[str, Tensor],
                      config: FrozenConfig, info: Mapping[str, Any]) -> RecModel:
        """Rebuild the model from its inference tables and dense weights (``serve/artifact``)."""
        raise NotImplementedError

    def load_parts(self, tables: Mapping[str, EmbeddingTable], dense: Mapping[str, Tensor]
                   ) -> None:
        """Load the tables' states (by qualified name) and the dense tensors."""
        self.load_state_dict({**{f"{name}.{key}": value for name, table in tables.items()
                                 for key, value in table.state_dict().items()}, **dense})

    # ------------------------------------------------------------------ structure search
    def pending_search_epochs(self) -> int:
        """Epochs of a structure search (which interactions or information flows to keep) still
        to run before training; ``fit`` then searches, applies the decision, rewinds and
        retrains (``slimrec.train.search``). 0 for models without one, and once applied."""
        return 0

    def begin_search(self, steps: int) -> None:
        """Called before the search's ``steps`` optimizer steps (e.g. to anneal gates)."""

    def search_decision(self) -> dict[str, Any]:
        """What the search chose, JSON-able (saved in the artifact's ``model_info``)."""
        raise NotImplementedError(f"{self.name} has no structure search.")

    def apply_search_decision(self, decision: Mapping[str, Any]) -> None:
        """Restructure the model to compute only what ``decision`` keeps."""
        raise NotImplementedError(f"{self.name} has no structure search.")

    def structure_report(self) -> dict[str, Any]:
        """Entries the model adds to results.json (e.g. kept interactions and their cost)."""
        return {}

    # ------------------------------------------------------------------ hooks and memory
    def regularizer(self) -> Tensor | None:
        terms = [term for table in self.tables().values()
                 if (term := table.regularizer()) is not None]
        return torch.stack(terms).sum() if terms else None

    def after_step(self, step: int) -> None:
        for table in self.tables().values():
            table.after_step(step)

    def embedding_bytes(self) -> int:
        return sum(table.memory_bytes() for table in self.tables().values())

    def full_embedding_bytes(self) -> int:
        return sum(table.full_fp32_bytes() for table in self.tables().values())

    def table_report(self) -> list[dict[str, Any]]:
        """Per table: its method, ids and bytes (the ``embedding.tables`` of results.json)."""
        return [{"table": name, "method": table.config.method,
                 "num_embeddings": table.num_embeddings, "memory_bytes": table.memory_bytes(),
                 "full_fp32_bytes": table.full_fp32_bytes()}
                for name, table in self.tables().items()]

    def dense_state(self) -> dict[str, Tensor]:
        """Parameters and buffers outside the embedding tables, by state-dict key."""
        prefixes = tuple(f"{name}." for name in self.tables())
        return {key: value for key, value in self.state_dict().items()
                if not key.startswith(prefixes)}

    def dense_bytes(self) -> int:
        return state_bytes(self.dense_state())

    def memory_bytes(self) -> int:
        """Whole-model bytes at inference: embeddings (as served) plus the dense layers."""
        return self.embedding_bytes() + self.dense_bytes()


class RetrievalModel(RecModel):
    """A model that scores (user, item) pairs and can rank all items for a batch of users."""

    task: ClassVar[str] = "retrieval"

    @classmethod
    def from_data(cls, user_table: EmbeddingTable, item_table: EmbeddingTable,
                  train: sp.csr_matrix, config: FrozenConfig) -> RetrievalModel:
        """A model to train. ``train`` is the ``(num_users, num_items)`` training graph; only
        graph models (LightGCN) use it."""
        return cls(user_table, item_table)

    @classmethod
    def from_artifact(cls, tables: dict[str, EmbeddingTable], dense: dict[str, Tensor],
                      config: FrozenConfig, info: Mapping[str, Any]) -> RetrievalModel:
        model = cls(**tables)
        model.load_parts(tables, dense)
        return model

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        """Scores of ``(users[k], items[k])`` pairs: LongTensor[B] x LongTensor[B] -> Tensor[B]."""
        raise NotImplementedError

    def bpr_terms(self, users: Tensor, positives: Tensor, negatives: Tensor,
                  penalty: bool = True) -> tuple[Tensor, Tensor, Tensor | None]:
        """Positive scores, negative scores and the L2 term of the batch's embeddings (None
        unless ``penalty``: with L2 0 its forward and backward passes cost ~40% of an MF step)."""
        raise NotImplementedError

    def scorer(self, stored: bool = False) -> Scorer:
        """A function ranking all items: ``(users[B], out) -> Tensor[B, num_items]``.

        Work shared by every batch (e.g. the item matrix) is done once, here. ``stored`` asks
        to score from the item table's stored form (int8 rows, factors...) instead of keeping
        an fp32 copy of it: less memory, some decoding per call; models whose scoring needs
        fp32 item vectors anyway (LightGCN's propagated ones, NeuMF's MLP inputs) ignore it.
        """
        raise NotImplementedError
