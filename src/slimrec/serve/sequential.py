"""Next items for a history that is given, not stored, from a saved sequential model.

    rec = SequentialRecommender.load("runs/latest")
    rec.recommend(["item 17", "item 4", "item 99"], k=20)  # oldest first

Items are external ids (the artifact's ``vocab.json``); the model reads the last ``max_len`` of
them. Seen items stay recommendable unless ``exclude_seen`` (a repeat can be the next item).
Equal scores (items sharing a compressed row) are ordered by a seeded random order of the items,
as in evaluation, never by id.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from slimrec.data.sequences import pad_windows
from slimrec.errors import ConfigError, DataError
from slimrec.eval.ranking import neutral_top, tie_order
from slimrec.models.sequential.sasrec import SASRec
from slimrec.serve.artifact import Artifact, load_artifact, run_seed
from slimrec.serve.recommender import Recommendation, item_indices, keep_only, mask_items


class SequentialRecommender:
    """A loaded sequential model and its item vocabulary."""

    def __init__(self, model: SASRec, item_ids: Sequence[str], tie_seed: int = 0) -> None:
        self.model = model.eval()
        self.item_ids = np.asarray(item_ids, dtype=str)
        self._index = {item: position + 1 for position, item in enumerate(self.item_ids)}
        self._tie_rank = tie_order(len(self.item_ids) + 1, tie_seed)  # column 0: padding

    @classmethod
    def load(cls, path: str | Path) -> SequentialRecommender:
        return cls.from_artifact(load_artifact(path, task="sequential"))

    @classmethod
    def from_artifact(cls, artifact: Artifact) -> SequentialRecommender:
        return cls(artifact.model, artifact.vocab["items"], run_seed(artifact.manifest))

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    def columns(self, items: Sequence[str], strict: bool) -> np.ndarray:
        """Score columns of external item ids (``item_indices``: unknown ids skipped, or a
        ``ConfigError`` naming them with ``strict``)."""
        return item_indices(self._index, [str(item) for item in items], strict)

    def encode(self, history: Sequence[str]) -> np.ndarray:
        """Internal ids of a history; an empty history or an unknown item fails by name."""
        if len(history) == 0:
            raise DataError("the history is empty; give at least one item, oldest first.")
        unknown = [item for item in history if str(item) not in self._index]
        if unknown:
            raise DataError(f"item {str(unknown[0])!r} is not in this model's vocabulary of "
                            f"{len(self.item_ids):,} items.")
        return np.asarray([self._index[str(item)] for item in history], dtype=np.int64)

    def recommend(self, history: Sequence[str], k: int = 20,
                  exclude_seen: bool = False) -> Recommendation:
        """The ``k`` most likely next items after ``history`` (external ids, oldest first)."""
        return self.recommend_many([history], k, exclude_seen)[0]

    def recommend_many(self, histories: Sequence[Sequence[str]], k: int = 20,
                       exclude_seen: bool = False, exclude_items: Sequence[str] = (),
                       include_items: Sequence[str] = ()) -> list[Recommendation]:
        """The next items after each history; ``exclude_items`` are never returned and, when
        given, only ``include_items`` are ranked (for every history)."""
        if k < 1:
            raise ConfigError(f"k must be an int >= 1; got {k}.")
        encoded = [self.encode(history)[-self.model.max_len:] for history in histories]
        if not encoded:
            return []
        ends = np.cumsum([len(items) for items in encoded])
        inputs, lengths = pad_windows(np.concatenate(encoded),
                                      np.concatenate([[0], ends[:-1]]), ends)
        with torch.no_grad():
            scores = self.model.score_all(inputs, lengths)
            if exclude_seen:
                row, column = inputs.nonzero(as_tuple=True)
                scores[row, inputs[row, column]] = -torch.inf
            mask_items(scores, [self.columns(exclude_items, strict=False)] * len(scores))
            if include_items:
                kept = self.columns(include_items, strict=True)
                for row in scores:
                    keep_only(row, kept)
            top, top_scores, _ = neutral_top(scores, min(k, len(self.item_ids)), self._tie_rank)
        results = []
        for values, items in zip(top_scores.numpy(), top.numpy(), strict=True):
            keep = np.isfinite(values)
            results.append(Recommendation("", self.item_ids[items[keep] - 1].tolist(),
                                          values[keep].tolist()))
        return results
