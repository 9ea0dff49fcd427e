"""Train/validation/test splits, vectorised per user and seeded."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from slimrec.data.interactions import Interactions, csr_from_pairs
from slimrec.errors import ConfigError, DataError


def _check_fraction(name: str, fraction: float) -> None:
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"{name} must be a fraction in (0, 1); got {fraction}.")


def holdout_counts(group_sizes: np.ndarray, fraction: float) -> np.ndarray:
    """Entries to hold out per group: round(fraction * size), keeping at least one behind."""
    counts = np.floor(group_sizes * fraction + 0.5).astype(np.int64)
    return np.minimum(counts, np.maximum(group_sizes - 1, 0))


def last_k_mask(groups: np.ndarray, order_key: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Boolean mask of the ``counts[g]`` entries of each group ``g`` with the largest key.

    Ties in ``order_key`` keep file order (the later entry counts as more recent).
    """
    position = np.arange(len(groups))
    order = np.lexsort((position, order_key, groups))
    sorted_groups = groups[order]
    sizes = np.bincount(groups, minlength=len(counts))
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    rank_from_end = sizes[sorted_groups] - (position - starts[sorted_groups])
    mask = np.zeros(len(groups), dtype=bool)
    mask[order] = rank_from_end <= counts[sorted_groups]
    return mask


def random_holdout_mask(users: np.ndarray, num_users: int, fraction: float,
                        seed: int) -> np.ndarray:
    """Mask of a seeded random ``fraction`` of each user's interactions (>= 1 stays out of it)."""
    _check_fraction("test_fraction", fraction)
    rng = np.random.default_rng(seed)
    counts = holdout_counts(np.bincount(users, minlength=num_users), fraction)
    return last_k_mask(users, rng.random(len(users)), counts)


def leave_last_out_mask(users: np.ndarray, timestamps: np.ndarray, num_users: int,
                        count: int = 1) -> np.ndarray:
    """Mask of each user's ``count`` most recent interactions (users with <= count keep all)."""
    if count < 1:
        raise ConfigError(f"leave-last-out count must be >= 1; got {count}.")
    if timestamps is None:
        raise DataError("leave-last-out needs a timestamp column; the data has none.")
    sizes = np.bincount(users, minlength=num_users)
    counts = np.where(sizes > count, count, 0)
    return last_k_mask(users, np.asarray(timestamps, dtype=np.float64), counts)


def carve_validation(data: Interactions, fraction: float, seed: int) -> Interactions:
    """Move a seeded random ``fraction`` of each user's train items into the validation split.

    Users keep at least one train item. The test split is untouched.
    """
    _check_fraction("val_fraction", fraction)
    train = data.train.tocoo()
    held = random_holdout_mask(train.row, data.num_users, fraction, seed)
    shape = (data.num_users, data.num_items)
    new_train = csr_from_pairs(train.row[~held], train.col[~held], shape)
    extra_val = csr_from_pairs(train.row[held], train.col[held], shape)
    val = (data.val + extra_val).tocsr() if data.val.nnz else extra_val
    val.data[:] = 1.0
    return data.with_splits(new_train, sp.csr_matrix(val), data.test)
