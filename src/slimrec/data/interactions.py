"""The ``Interactions`` object: train/val/test as CSR matrices plus explicit id vocabularies."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from slimrec.errors import DataError


def csr_from_pairs(users: np.ndarray, items: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """Binary CSR matrix (float32 ones) from parallel arrays of internal ids, sorted indices."""
    matrix = sp.csr_matrix(
        (np.ones(len(users), dtype=np.float32), (users.astype(np.int64), items.astype(np.int64))),
        shape=shape,
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    matrix.sort_indices()
    return matrix


def empty_csr(shape: tuple[int, int]) -> sp.csr_matrix:
    return sp.csr_matrix(shape, dtype=np.float32)


@dataclass(frozen=True)
class Interactions:
    """Implicit-feedback interactions of one dataset.

    ``user_ids[u]`` / ``item_ids[i]`` are the external ids (strings) of internal ids ``u``/``i``.
    ``train``, ``val`` and ``test`` are binary ``(num_users, num_items)`` CSR matrices with sorted
    indices and no overlap between them.

    ``counts`` (optional, float32 CSR of the same shape) holds how often each (user, item) pair
    occurred in the source when it was loaded with ``duplicates="count"``; it covers every split.
    Training and evaluation read the binary splits only, so a repeated pair counts once there;
    the counts are kept for weighting and statistics.
    """

    name: str
    user_ids: np.ndarray
    item_ids: np.ndarray
    train: sp.csr_matrix
    val: sp.csr_matrix
    test: sp.csr_matrix
    _user_index: dict[str, int] = field(default=None, repr=False, compare=False)  # type: ignore[assignment]
    counts: sp.csr_matrix | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        shape = (len(self.user_ids), len(self.item_ids))
        for split in ("train", "val", "test"):
            matrix = getattr(self, split)
            if matrix.shape != shape:
                raise DataError(
                    f"{self.name}: {split} matrix has shape {matrix.shape}, expected {shape} "
                    "(users x items)."
                )
        if self.train.nnz == 0:
            raise DataError(f"{self.name}: the train split is empty.")
        if self.counts is not None and self.counts.shape != shape:
            raise DataError(f"{self.name}: counts matrix has shape {self.counts.shape}, "
                            f"expected {shape} (users x items).")

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    def user_index(self, external_id: str) -> int | None:
        """Internal id of an external user id, or None when the user is unknown."""
        if self._user_index is None:  # built on first use: millions of ids cost seconds
            object.__setattr__(self, "_user_index", {u: k for k, u in enumerate(self.user_ids)})
        return self._user_index.get(str(external_id))

    def item_index(self) -> dict[str, int]:
        return {item: k for k, item in enumerate(self.item_ids)}

    def item_frequencies(self) -> np.ndarray:
        """Number of training interactions of each item, shape ``(num_items,)``."""
        return np.asarray(self.train.sum(axis=0)).ravel().astype(np.int64)

    def user_frequencies(self) -> np.ndarray:
        """Number of training interactions of each user, shape ``(num_users,)``."""
        return np.diff(self.train.indptr).astype(np.int64)

    def fingerprint(self) -> str:
        """sha256 of the training graph: keys caches (cluster maps) to exactly this data."""
        digest = hashlib.sha256()
        digest.update(np.asarray(self.train.shape, dtype=np.int64).tobytes())
        digest.update(self.train.indptr.astype(np.int64).tobytes())
        digest.update(self.train.indices.astype(np.int64).tobytes())
        return digest.hexdigest()

    def with_splits(
        self, train: sp.csr_matrix, val: sp.csr_matrix, test: sp.csr_matrix
    ) -> Interactions:
        return Interactions(self.name, self.user_ids, self.item_ids, train, val, test,
                            self._user_index, self.counts)

    def stats(self) -> dict[str, float | int]:
        """Sizes, density and degree quantiles of the splits."""
        user_degree = self.user_frequencies()
        item_degree = self.item_frequencies()
        total = self.train.nnz + self.val.nnz + self.test.nnz
        stats: dict[str, float | int] = {
            "users": self.num_users,
            "items": self.num_items,
            "interactions": int(total),
            "train": int(self.train.nnz),
            "val": int(self.val.nnz),
            "test": int(self.test.nnz),
            "density": total / float(self.num_users * self.num_items),
            "test_users": int(np.count_nonzero(np.diff(self.test.indptr))),
        }
        for q in (0.5, 0.9, 0.99):
            stats[f"user_train_degree_p{int(q * 100)}"] = float(np.quantile(user_degree, q))
            stats[f"item_train_degree_p{int(q * 100)}"] = float(np.quantile(item_degree, q))
        stats["items_without_train"] = int(np.count_nonzero(item_degree == 0))
        return stats


def build_interactions(
    name: str,
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    counts: sp.csr_matrix | None = None,
) -> Interactions:
    """Build ``Interactions`` from per-split ``(user, item)`` internal-id arrays (and optional
    per-pair occurrence ``counts``)."""
    shape = (len(user_ids), len(item_ids))
    matrices = {
        split: csr_from_pairs(*splits[split], shape) if split in splits else empty_csr(shape)
        for split in ("train", "val", "test")
    }
    return Interactions(name, np.asarray(user_ids, dtype=str), np.asarray(item_ids, dtype=str),
                        **matrices, counts=counts)
