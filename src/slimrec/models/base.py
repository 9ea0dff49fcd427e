"""Shared base of retrieval models: tables, scoring, and the hooks the training loop calls."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import scipy.sparse as sp
import torch
from torch import Tensor, nn

from slimrec.config import FrozenConfig, parse_config
from slimrec.embeddings.base import EmbeddingTable

Scorer = Callable[[Tensor, Tensor | None], Tensor]


class RetrievalModel(nn.Module):
    """A model that scores (user, item) pairs and can rank all items for a batch of users.

    Models with settings declare them in ``config_class`` (``RunConfig.model_params`` is parsed
    into it) and keep the parsed config in ``self.config``; models without settings keep the
    empty defaults below.
    """

    config_class: ClassVar[type[FrozenConfig]] = FrozenConfig
    config: FrozenConfig = FrozenConfig()

    @classmethod
    def parse_params(cls, params: Mapping[str, Any] | None) -> FrozenConfig:
        """``model_params`` validated into ``config_class`` (unknown keys fail, with a hint)."""
        return parse_config(cls.config_class, params or {},
                            where=f"{cls.__name__} model_params")

    @classmethod
    def from_data(cls, user_table: EmbeddingTable, item_table: EmbeddingTable,
                  train: sp.csr_matrix, config: FrozenConfig) -> RetrievalModel:
        """A model to train. ``train`` is the ``(num_users, num_items)`` training graph; only
        graph models (LightGCN) use it."""
        return cls(user_table, item_table)

    def for_inference(self) -> RetrievalModel:
        """The model a saved artifact stores and serves: ``self`` unless inference needs less
        than training (LightGCN serves its propagated vectors, not its graph)."""
        return self

    def tables(self) -> dict[str, EmbeddingTable]:
        """The embedding tables of the model, by name."""
        return {name: module for name, module in self.named_children()
                if isinstance(module, EmbeddingTable)}

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        """Scores of ``(users[k], items[k])`` pairs: LongTensor[B] x LongTensor[B] -> Tensor[B]."""
        raise NotImplementedError

    def bpr_terms(self, users: Tensor, positives: Tensor,
                  negatives: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Positive scores, negative scores and the L2 term of the batch's embeddings."""
        raise NotImplementedError

    def scorer(self) -> Scorer:
        """A function ranking all items: ``(users[B], out) -> Tensor[B, num_items]``.

        Work shared by every batch (e.g. the item matrix) is done once, here.
        """
        raise NotImplementedError

    @classmethod
    def from_artifact(cls, tables: dict[str, EmbeddingTable], dense: dict[str, Tensor],
                      manifest: dict[str, Any]) -> RetrievalModel:
        """Rebuild the model from its inference tables and dense weights (see serve/artifact)."""
        model = cls(**tables)
        model.load_state_dict({**{f"{name}.{key}": value for name, table in tables.items()
                                  for key, value in table.state_dict().items()}, **dense})
        return model

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

    def dense_bytes(self) -> int:
        """Bytes of the parameters and buffers outside the embedding tables."""
        prefixes = tuple(f"{name}." for name in self.tables())
        return sum(t.numel() * t.element_size() for key, t in self.state_dict().items()
                   if not key.startswith(prefixes))
