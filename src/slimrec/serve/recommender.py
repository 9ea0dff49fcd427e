"""Top-K recommendations from a saved model, in external ids.

    rec = Recommender.load("runs/latest")
    for r in rec.recommend(["u17", "u42"], k=20):
        print(r.user, r.source, r.items[:5])

Users are looked up in the model's vocabulary (``vocab.json``). A user the model never saw gets
either no recommendations and a message saying so (``fallback="none"``), or the most popular
items, flagged ``source="popular"`` (``fallback="popular"``). Popularity is each item's count in
the saved seen-items matrix, so it needs no extra storage.

Scoring is batched: one ``(B, num_items)`` product per batch of known users, seen items masked
with one scatter, one ``topk``; items of equal score (ids sharing a compressed row) are ordered
by the seeded random item order of evaluation (``tie_order``), never by id. ``answer`` takes
a batch of ``Query``s, each with its own ``k`` and filters (items to exclude, or the only items
to consider), so that the HTTP service can score the queries of concurrent callers together
(micro-batching). MF item tables are scored in their stored form by default
(``item_scoring="stored"``: int8/int4 codes, factors... decoded chunk by chunk; ids that share a
row are scored once per row); ``"fp32"`` keeps one dense copy instead, faster per call.

A new user is given by their history (``recommend_history``): their vector is folded in
against the item vectors, and the history's items are excluded from the answer.

- MF: regularised least squares against the whole item table, as the implicit-feedback fold-in
  of Hu, Koren & Volinsky (ICDM 2008): minimise ``sum_i c_i (p_i - q_i.u)^2 + l2 * s * |u|^2``
  with ``p_i = 1, c_i = 1 + FOLD_IN_WEIGHT`` on the history and ``p_i = 0, c_i = 1`` elsewhere;
  ``s`` is the mean squared norm of the item vectors, so the regulariser does not depend on the
  scale BPR left them at. Solved as ``(QᵀQ + a Q_hᵀQ_h + l2 s I) u = (1 + a) Q_hᵀ1`` (``d x d``;
  ``QᵀQ`` once per model). Scoring against every item, not the history only, keeps the vector
  from simply pointing at the most popular direction.
- LightGCN (served as an MF over its propagated vectors): the mean of the history items'
  propagated vectors. That is LightGCN's own rule: a user's propagated vector is a degree-
  normalised sum of its items' vectors, and a new user has no ego vector to add to it.

The fold-in figures (recall of folded-in vs trained user vectors) are in BENCHMARKS.md.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from slimrec.errors import ArtifactError, ConfigError
from slimrec.eval.ranking import _mask_seen as mask_seen
from slimrec.eval.ranking import neutral_top, tie_order
from slimrec.models.base import RetrievalModel
from slimrec.models.mf import MF
from slimrec.serve.artifact import MANIFEST_FILE, Artifact, load_artifact, run_seed
from slimrec.tasks.retrieval import SEEN_FILE, seen_matrix

if TYPE_CHECKING:
    from slimrec.serve.sequential import SequentialRecommender

Fallback = Literal["none", "popular"]
FALLBACKS = ("none", "popular")
FoldIn = Literal["least_squares", "mean"]
# How MF scores every item: "stored" from the item table as saved (int8 rows, factors... decoded
# chunk by chunk per call; tables whose ids share rows score each distinct row once), or "fp32"
# from one dense copy made at load time (faster per call, num_items x dim x 4 more bytes).
ItemScoring = Literal["stored", "fp32"]
ITEM_SCORING = ("stored", "fp32")
# Weight a (history items count 1 + a times the others) and regulariser of the MF fold-in, in
# units of the mean squared item norm; chosen on validation users (BENCHMARKS.md, issue 14).
FOLD_IN_WEIGHT = 10.0
FOLD_IN_L2 = 1.0


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


@dataclass(frozen=True)
class Query:
    """One ranking of a batch: a known ``user`` (external id) or, with ``user=None``, a new
    user given by the external ids of their ``history``. ``exclude_items`` are never returned;
    a non-empty ``include_items`` is the only set ranked."""

    user: str | None = None
    history: tuple[str, ...] = ()
    k: int = 20
    exclude_seen: bool = True
    exclude_items: tuple[str, ...] = ()
    include_items: tuple[str, ...] = ()


def fold_in_base(items: Tensor) -> Tensor:
    """``QᵀQ + l2 s I`` of the item vectors ``Q (I, d)``: the part of the least-squares system
    every history shares."""
    scale = float(items.square().sum(1).mean())
    return items.T @ items + FOLD_IN_L2 * scale * torch.eye(items.shape[1], dtype=items.dtype)


def fold_in(items: Tensor, history: Tensor, method: FoldIn, base: Tensor | None = None
            ) -> Tensor:
    """The vector ``(d,)`` of a user whose history is the rows ``history`` of ``items (I, d)``
    (see the module docstring for the two methods). ``base``: ``fold_in_base(items)``, computed
    here when not given."""
    chosen = items[history]
    if method == "mean":
        return chosen.mean(0)
    base = fold_in_base(items) if base is None else base
    return torch.linalg.solve(base + FOLD_IN_WEIGHT * chosen.T @ chosen,
                              (1 + FOLD_IN_WEIGHT) * chosen.sum(0))


def mask_items(scores: Tensor, excluded: Sequence[np.ndarray]) -> None:
    """``scores[row, excluded[row]] = -inf`` for every row, in one scatter."""
    counts = [len(items) for items in excluded]
    if sum(counts):
        rows = np.repeat(np.arange(len(excluded)), counts)
        scores[torch.from_numpy(rows), torch.from_numpy(np.concatenate(excluded))] = -torch.inf


def keep_only(row: Tensor, items: np.ndarray) -> None:
    """Set every score of ``row`` to -inf except those of ``items``."""
    kept = row[torch.from_numpy(items)].clone()
    row.fill_(-torch.inf)
    row[torch.from_numpy(items)] = kept


def item_indices(index: Mapping[str, int], items: Sequence[str], strict: bool) -> np.ndarray:
    """``index[item]`` of each external item id; unknown ids are skipped, or with ``strict`` a
    ``ConfigError`` naming them (``strict`` is for ``include_items``)."""
    found = [index.get(item, -1) for item in items]
    if strict and -1 in found:
        unknown = [item for item, position in zip(items, found, strict=True) if position < 0]
        raise ConfigError(f"include_items: {len(unknown)} item id(s) unknown to this model: "
                          f"{_preview(unknown)}.")
    return np.array([position for position in found if position >= 0], dtype=np.int64)


def _preview(ids: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(repr(value) for value in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


class Recommender:
    """A loaded model plus its vocabularies and seen items, ready to answer top-K queries."""

    def __init__(self, model: RetrievalModel, manifest: dict[str, Any], user_ids: np.ndarray,
                 item_ids: np.ndarray, seen: sp.csr_matrix | None,
                 folder: Path | None = None, item_scoring: ItemScoring = "stored") -> None:
        if item_scoring not in ITEM_SCORING:
            raise ConfigError(f"item_scoring must be one of {', '.join(ITEM_SCORING)}; got "
                              f"{item_scoring!r}.")
        self.model = model
        self.manifest = manifest
        self.user_ids = user_ids
        self.item_ids = item_ids
        self.seen = seen
        self.folder = folder
        self._user_index = {user: index for index, user in enumerate(user_ids.tolist())}
        # Shared work (item matrix, LightGCN propagation) is done once, here.
        self.item_scoring = item_scoring
        self._score = model.scorer(stored=item_scoring == "stored")
        # Equal scores (ids sharing a row) are ordered as in evaluation: by a seeded random
        # order of the items, never by id (low ids are often the popular items).
        self._tie_rank = tie_order(len(item_ids), run_seed(manifest))
        self._popular: tuple[np.ndarray, np.ndarray] | None = None
        self._item_index: dict[str, int] | None = None  # built on first use
        self._fold_in_matrix: Tensor | None = None
        self._fold_in_base: Tensor | None = None

    @classmethod
    def load(cls, path: str | Path, item_scoring: ItemScoring = "stored"
             ) -> Recommender | SequentialRecommender:
        """Load a model folder; checksums are verified and a foreign folder fails clearly.

        A sequential run loads as a ``SequentialRecommender``, whose
        ``recommend(history=[...], k=20)`` gives the next items after a history.
        """
        artifact = load_artifact(path, task=("retrieval", "sequential"))
        if artifact.task == "sequential":
            from slimrec.serve.sequential import SequentialRecommender

            return SequentialRecommender.from_artifact(artifact)
        return cls.from_artifact(artifact, item_scoring)

    @classmethod
    def from_artifact(cls, artifact: Artifact, item_scoring: ItemScoring = "stored"
                      ) -> Recommender:
        """The recommender of a loaded retrieval artifact (``item_scoring``: see
        ``ITEM_SCORING``)."""
        user_ids = np.asarray(artifact.vocab["users"], dtype=str)
        item_ids = np.asarray(artifact.vocab["items"], dtype=str)
        seen = artifact.extras.get(SEEN_FILE)
        if seen is not None:
            seen = seen_matrix(seen, (len(user_ids), len(item_ids)))
        return cls(artifact.model, artifact.manifest, user_ids, item_ids, seen, artifact.folder,
                   item_scoring)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    def unknown_users(self, user_ids: Sequence[str]) -> list[str]:
        """The ids among ``user_ids`` that the model has no vector for."""
        return [user for user in user_ids if user not in self._user_index]

    def recommend(self, user_ids: Sequence[str], k: int = 20, exclude_seen: bool = True,
                  fallback: Fallback = "none", batch_size: int = 1024) -> list[Recommendation]:
        """Top-``k`` items for each of ``user_ids`` (external ids), in the order given.

        ``exclude_seen`` drops the items each user interacted with in the saved data (train and
        validation). Fewer than ``k`` items come back when fewer remain.
        """
        if batch_size < 1:
            raise ConfigError(f"batch_size must be an int >= 1; got {batch_size}.")
        queries = [Query(user=str(user), k=k, exclude_seen=exclude_seen) for user in user_ids]
        return [result for begin in range(0, max(1, len(queries)), batch_size)
                for result in self.answer(queries[begin: begin + batch_size], fallback)]

    def recommend_history(self, history: Sequence[str], k: int = 20,
                          exclude_items: Sequence[str] = (),
                          include_items: Sequence[str] = ()) -> Recommendation:
        """Top-``k`` items for a user the model never saw, from the items of their history.

        The user's vector is folded in (``fold_in_method``); the history's items are not
        recommended back. History items unknown to the model are skipped and named in
        ``message``; a history of unknown items only is a ``ConfigError``.
        """
        query = Query(history=tuple(str(item) for item in history), k=k,
                      exclude_items=tuple(exclude_items), include_items=tuple(include_items))
        return self.answer([query])[0]

    def answer(self, queries: Sequence[Query], fallback: Fallback = "none"
               ) -> list[Recommendation]:
        """Recommendations for a batch of queries, in the order given, with one scoring product
        for the known users, one for the folded-in histories and one ``topk`` for all rows.

        This is what micro-batching calls: the queries may come from different callers, each
        with its own ``k`` and filters.
        """
        if fallback not in FALLBACKS:
            raise ConfigError(f"fallback must be one of {', '.join(FALLBACKS)}; got "
                              f"{fallback!r}.")
        for query in queries:
            if query.k < 1:
                raise ConfigError(f"k must be an int >= 1; got {query.k}.")
        if self.seen is None and any(q.exclude_seen and q.user is not None for q in queries):
            raise ArtifactError(
                f"{self.folder or 'this model'} was saved without its seen items, so they "
                "cannot be excluded; pass exclude_seen=False (--include-seen) or re-save the "
                "model with a current slimrec.")
        results: list[Recommendation | None] = [None] * len(queries)
        user_index = [self._user_index.get(q.user, -1) if q.user is not None else -1
                      for q in queries]
        # Rows: known users excluding their seen items first (one mask_seen call on a prefix),
        # then the other known users, then the histories.
        known = [p for p, q in enumerate(queries) if user_index[p] >= 0]
        known.sort(key=lambda p: not queries[p].exclude_seen)
        histories = [p for p, q in enumerate(queries) if q.user is None]
        rows = known + histories
        if rows:
            ranked = self._rank([queries[p] for p in rows], np.array(
                [user_index[p] for p in known], dtype=np.int64))
            for position, result in zip(rows, ranked, strict=True):
                results[position] = result
        for position, query in enumerate(queries):
            if results[position] is None:
                results[position] = self._unknown(str(query.user),
                                                  min(query.k, self.num_items), fallback)
        return [result for result in results if result is not None]

    def _rank(self, queries: list[Query], users: np.ndarray) -> list[Recommendation]:
        """Score and rank ``queries``: the first ``len(users)`` are those known users (the
        ones excluding seen items first), the rest are histories."""
        histories, messages = queries[len(users):], []
        excluded: list[np.ndarray] = [self._item_indices(q.exclude_items, strict=False)
                                      for q in queries]
        with torch.no_grad():
            parts = []
            if len(users):
                parts.append(self._score(torch.from_numpy(users), None))
            if histories:
                vectors, history_items, messages = self._fold_in_all(histories)
                parts.append(vectors @ self._fold_in_items().T)
                excluded[len(users):] = [np.concatenate([items, history])
                                         for items, history in zip(
                                             excluded[len(users):], history_items, strict=True)]
            scores = torch.cat(parts) if len(parts) > 1 else parts[0]
            masking = sum(q.exclude_seen for q in queries[:len(users)])
            if masking:
                mask_seen(scores[:masking], self.seen, users[:masking])
            mask_items(scores, excluded)
            for row, query in enumerate(queries):
                if query.include_items:
                    keep_only(scores[row], self._item_indices(query.include_items, strict=True))
            top_items, top_scores, _ = neutral_top(
                scores, min(max(q.k for q in queries), self.num_items), self._tie_rank)
        top_scores_np = top_scores.numpy()
        names = self.item_ids[top_items.numpy()]  # (B, k) external item ids
        # -inf marks an excluded item that had to fill the top k: fewer items remained.
        finite = np.isfinite(top_scores_np)
        results = []
        for row, query in enumerate(queries):
            keep = finite[row, :query.k]
            items, row_scores = names[row, :query.k][keep], top_scores_np[row, :query.k][keep]
            if query.user is not None:
                results.append(Recommendation(query.user, items.tolist(), row_scores.tolist()))
            else:
                results.append(Recommendation("", items.tolist(), row_scores.tolist(),
                                              source="history",
                                              message=messages[row - len(users)]))
        return results

    def _item_indices(self, items: Sequence[str], strict: bool) -> np.ndarray:
        if not items:
            return np.zeros(0, dtype=np.int64)
        if self._item_index is None:
            self._item_index = {item: index for index, item in enumerate(self.item_ids.tolist())}
        return item_indices(self._item_index, items, strict)

    # ------------------------------------------------------------------ new users (fold-in)
    @property
    def fold_in_method(self) -> str:
        """How a history becomes a user vector: ``"least_squares"`` for MF, ``"mean"`` for
        LightGCN (see the module docstring); ``"none"`` for models without user vectors."""
        trained = self.manifest.get("trained_model", self.manifest.get("model"))
        if trained == "lightgcn":
            return "mean"
        return "least_squares" if trained == "mf" else "none"

    def _fold_in_items(self) -> Tensor:
        """The item vectors users are scored against, ``(I, d)``, built on first use."""
        if self._fold_in_matrix is None:
            if self.fold_in_method == "none":
                raise ConfigError(
                    f"history fold-in needs a model scoring users by a dot product with item "
                    f"vectors (mf, lightgcn); this model is {self.manifest.get('model')!r}.")
            with torch.no_grad():
                if isinstance(self.model, MF):
                    self._fold_in_matrix = self.model.item_table.full_weight().detach()
                else:  # LightGCN saved with keep_graph: propagate once
                    self._fold_in_matrix = self.model.final_vectors()[1]
                if self.fold_in_method == "least_squares":
                    self._fold_in_base = fold_in_base(self._fold_in_matrix)
        return self._fold_in_matrix

    def _fold_in_all(self, histories: list[Query]
                     ) -> tuple[Tensor, list[np.ndarray], list[str]]:
        """User vectors ``(H, d)`` of histories, their known item indices and a message each."""
        items_matrix = self._fold_in_items()
        vectors, indices, messages = [], [], []
        for query in histories:
            known = self._item_indices(query.history, strict=False)
            missing = len(query.history) - len(known)
            if not len(known):
                raise ConfigError(f"history: none of its {len(query.history)} item id(s) is "
                                  f"known to this model: {_preview(list(query.history))}.")
            known = np.unique(known)
            vectors.append(fold_in(items_matrix, torch.from_numpy(known), self.fold_in_method,
                                   self._fold_in_base))
            indices.append(known)
            messages.append(f"{missing} history item id(s) unknown to this model were skipped"
                            if missing else "")
        return torch.stack(vectors), indices, messages

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
        """Item ids by decreasing number of users who saw them (ties: in the seeded tie order,
        as in ranking), and the count of every item (a float array, the fallback's score)."""
        if self._popular is None:
            if self.seen is None:
                raise ArtifactError(
                    f"{self.folder or 'this model'} has no seen-items matrix, so item "
                    "popularity is unknown; the popular fallback is not available.")
            counts = np.bincount(self.seen.indices, minlength=self.num_items).astype(float)
            by_tie_rank = np.argsort(self._tie_rank.numpy(), kind="stable")
            order = by_tie_rank[np.argsort(-counts[by_tie_rank], kind="stable")]
            self._popular = (order, counts)
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
