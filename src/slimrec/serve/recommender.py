"""Top-K recommendations from a saved model, in external ids.

    rec = Recommender.load("runs/latest")
    for r in rec.recommend(["u17", "u42"], k=20):
        print(r.user, r.source, r.items[:5])

Users are looked up in the model's vocabulary (``vocab.json``). A user the model never saw gets
either no recommendations and a message saying so (``fallback="none"``), or the most popular
items, flagged ``source="popular"`` (``fallback="popular"``). Popularity is each item's count in
the saved seen-items matrix, so it needs no extra storage.

Scoring is batched: one ``(B, num_items)`` product per batch of known users, seen items masked
with one scatter, one ``topk``.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import torch

from slimrec.errors import ArtifactError, ConfigError
from slimrec.eval.ranking import _mask_seen as mask_seen
from slimrec.models.base import RetrievalModel
from slimrec.serve.artifact import MANIFEST_FILE, load_artifact
from slimrec.tasks.retrieval import SEEN_FILE, seen_matrix

Fallback = Literal["none", "popular"]
FALLBACKS = ("none", "popular")


@dataclass(frozen=True)
class Recommendation:
    """The top items for one requested user, best first.

    ``source`` is ``"model"`` (scored by the model), ``"popular"`` (unknown user, most popular
    items instead) or ``"unknown"`` (unknown user, no items; ``message`` says why).
    """

    user: str
    items: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    source: str = "model"
    message: str = ""


class Recommender:
    """A loaded model plus its vocabularies and seen items, ready to answer top-K queries."""

    def __init__(self, model: RetrievalModel, manifest: dict[str, Any], user_ids: np.ndarray,
                 item_ids: np.ndarray, seen: sp.csr_matrix | None,
                 folder: Path | None = None) -> None:
        self.model = model
        self.manifest = manifest
        self.user_ids = user_ids
        self.item_ids = item_ids
        self.seen = seen
        self.folder = folder
        self._user_index = {user: index for index, user in enumerate(user_ids.tolist())}
        # Shared work (item matrix, LightGCN propagation) is done once, here.
        self._score = model.scorer()
        self._popular: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Load a model folder; checksums are verified and a foreign folder fails clearly."""
        artifact = load_artifact(path, task="retrieval")
        user_ids = np.asarray(artifact.vocab["users"], dtype=str)
        item_ids = np.asarray(artifact.vocab["items"], dtype=str)
        seen = artifact.extras.get(SEEN_FILE)
        if seen is not None:
            seen = seen_matrix(seen, (len(user_ids), len(item_ids)))
        return cls(artifact.model, artifact.manifest, user_ids, item_ids, seen, artifact.folder)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    def recommend(self, user_ids: Sequence[str], k: int = 20, exclude_seen: bool = True,
                  fallback: Fallback = "none", batch_size: int = 1024) -> list[Recommendation]:
        """Top-``k`` items for each of ``user_ids`` (external ids), in the order given.

        ``exclude_seen`` drops the items each user interacted with in the saved data (train and
        validation). Fewer than ``k`` items come back when fewer remain.
        """
        if k < 1:
            raise ConfigError(f"k must be an int >= 1; got {k}.")
        if fallback not in FALLBACKS:
            raise ConfigError(f"fallback must be one of {', '.join(FALLBACKS)}; got "
                              f"{fallback!r}.")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be an int >= 1; got {batch_size}.")
        if exclude_seen and self.seen is None:
            raise ArtifactError(
                f"{self.folder or 'this model'} was saved without its seen items, so they "
                "cannot be excluded; pass exclude_seen=False (--include-seen) or re-save the "
                "model with a current slimrec.")
        requested = [str(user) for user in user_ids]
        index = np.array([self._user_index.get(user, -1) for user in requested], dtype=np.int64)
        results: list[Recommendation | None] = [None] * len(requested)
        known = np.flatnonzero(index >= 0)
        k = min(k, self.num_items)
        for begin in range(0, len(known), batch_size):
            positions = known[begin: begin + batch_size]
            users = index[positions]
            with torch.no_grad():
                scores = self._score(torch.from_numpy(users), None)
                if exclude_seen:
                    mask_seen(scores, self.seen, users)
                top_scores, top_items = torch.topk(scores, k, dim=1)
            top_scores_np = top_scores.numpy()
            names = self.item_ids[top_items.numpy()]  # (B, k) external item ids
            # -inf marks a seen item that had to fill the top k: fewer items remained.
            finite = np.isfinite(top_scores_np)
            for row, position in enumerate(positions):
                keep = finite[row]
                results[position] = Recommendation(requested[position],
                                                   names[row][keep].tolist(),
                                                   top_scores_np[row][keep].tolist())
        for position in np.flatnonzero(index < 0):
            results[position] = self._unknown(requested[position], k, fallback)
        return [result for result in results if result is not None]

    def _unknown(self, user: str, k: int, fallback: Fallback) -> Recommendation:
        message = (f"user {user!r} is unknown to this model (not among its "
                   f"{len(self.user_ids):,} training users)")
        if fallback == "none":
            return Recommendation(user, source="unknown",
                                  message=f"{message}; no recommendations. Use the popular "
                                          "fallback to get the most popular items instead.")
        order, counts = self._popularity()
        top = order[:k]
        return Recommendation(user, self.item_ids[top].tolist(), counts[top].tolist(),
                              source="popular", message=f"{message}; most popular items instead.")

    def _popularity(self) -> tuple[np.ndarray, np.ndarray]:
        """Item ids by decreasing number of users who saw them (ties: lower id first), and the
        count of every item (a float array, used as the fallback's score)."""
        if self._popular is None:
            if self.seen is None:
                raise ArtifactError(
                    f"{self.folder or 'this model'} has no seen-items matrix, so item "
                    "popularity is unknown; the popular fallback is not available.")
            counts = np.bincount(self.seen.indices, minlength=self.num_items).astype(float)
            self._popular = (np.argsort(-counts, kind="stable"), counts)
        return self._popular

    def footprint(self) -> dict[str, int]:
        """Bytes of the model in memory (``memory_bytes()`` of what is served), of the
        seen-items matrix, and of each artifact file on disk."""
        sizes = {"model_memory_bytes": int(self.manifest["memory_bytes"]["model_total"]),
                 "seen_items_memory_bytes": int(self.manifest["extra_bytes"].get(SEEN_FILE, 0))}
        if self.folder is not None:
            for name in (*self.manifest["files"], MANIFEST_FILE):
                sizes[f"{name}_disk_bytes"] = os.path.getsize(self.folder / name)
        return sizes


def read_user_ids(path: str | Path) -> list[str]:
    """External user ids from a file, one per line; blank lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"users file {path} not found; give one external user id per line.")
    users = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    users = [user for user in users if user]
    if not users:
        raise ConfigError(f"users file {path} holds no user ids; give one per line.")
    return users


def recommendations_csv(results: Sequence[Recommendation]) -> str:
    """CSV text with header ``user,rank,item,score,source`` (rank from 1); users without
    recommendations have no rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["user", "rank", "item", "score", "source"])
    for result in results:
        for rank, (item, score) in enumerate(zip(result.items, result.scores, strict=True), 1):
            writer.writerow([result.user, rank, item, f"{score:.6g}", result.source])
    return buffer.getvalue()
