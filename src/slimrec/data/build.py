"""Turn interaction logs into ``Interactions``: vocabularies, duplicate checks and splits."""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp

from slimrec.data.interactions import Interactions, build_interactions
from slimrec.data.readers import InteractionLog
from slimrec.data.splits import leave_last_out_mask, random_holdout_mask
from slimrec.errors import ConfigError, DataError

SplitName = Literal["holdout", "leave_last_out"]
DuplicatePolicy = Literal["error", "first", "count"]
DUPLICATE_POLICIES: tuple[str, ...] = ("error", "first", "count")


def vocabulary(*columns: np.ndarray) -> np.ndarray:
    """Sorted unique external ids; all-digit ids sort numerically so "10" follows "9".

    Digit ids of any length are ordered by value (no int64 conversion beyond 18 digits, so
    huge ids cannot overflow); ids of equal value ("7", "007") keep string order.
    """
    ids = np.unique(np.concatenate(columns))
    if ids.size and np.char.isdigit(ids).all():
        if np.char.str_len(ids).max() <= 18:
            try:
                return ids[np.argsort(ids.astype(np.int64), kind="stable")]
            except (ValueError, OverflowError):  # non-ASCII digits such as "²"
                pass
        stripped = np.char.lstrip(ids, "0")
        ids = ids[np.lexsort((ids, stripped, np.char.str_len(stripped)))]
    return ids


def encode(ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Internal ids of ``values`` in the vocabulary ``ids`` (all values must be present)."""
    order = np.argsort(ids, kind="stable")
    return order[np.searchsorted(ids, values, sorter=order)]


def _check_no_duplicates(log: InteractionLog, user_index: np.ndarray, item_index: np.ndarray,
                         num_items: int) -> None:
    keys = user_index.astype(np.int64) * num_items + item_index
    order = np.argsort(keys, kind="stable")
    repeated = np.flatnonzero(np.diff(keys[order]) == 0)
    if repeated.size:
        first, second = order[repeated[0]], order[repeated[0] + 1]
        raise DataError(
            f"{log.where(second)}: duplicate interaction (user "
            f"{str(log.users[second])!r}, item {str(log.items[second])!r}) already on "
            f"{log.label} {log.lines[first]}. Remove repeats or aggregate them before loading "
            "(or load with duplicates='first' or 'count')."
        )


def resolve_duplicates(log: InteractionLog, user_index: np.ndarray, item_index: np.ndarray,
                       num_items: int, policy: str
                       ) -> tuple[InteractionLog, np.ndarray, np.ndarray, np.ndarray | None]:
    """Apply a duplicates policy to one log of internal ids.

    - ``"error"``: raise ``DataError`` naming the line of the first repeat (and the original);
    - ``"first"``: keep the first occurrence of each (user, item) pair, in file order;
    - ``"count"``: keep the first occurrence and return, per kept entry, how many times the
      pair occurs (float32), the weight stored in ``Interactions.counts``.

    Returns ``(log, user_index, item_index, counts or None)`` restricted to the kept entries.
    """
    if policy not in DUPLICATE_POLICIES:
        raise ConfigError(f"duplicates must be one of {', '.join(DUPLICATE_POLICIES)}; "
                          f"got {policy!r}.")
    if policy == "error":
        _check_no_duplicates(log, user_index, item_index, num_items)
        return log, user_index, item_index, None
    keys = user_index.astype(np.int64) * num_items + item_index
    _, first, counts = np.unique(keys, return_index=True, return_counts=True)
    order = np.argsort(first, kind="stable")
    keep = first[order]
    weights = counts[order].astype(np.float32) if policy == "count" else None
    return log.select(keep), user_index[keep], item_index[keep], weights


def interactions_from_log(
    name: str,
    log: InteractionLog,
    split: SplitName = "holdout",
    test_fraction: float = 0.2,
    seed: int = 0,
    min_rating: float | None = None,
    duplicates: DuplicatePolicy = "error",
) -> Interactions:
    """Build train/test from one log with a per-user random holdout or leave-last-out.

    ``min_rating`` keeps rows with rating >= it (before duplicates are handled);
    ``duplicates`` is the policy of ``resolve_duplicates``. With ``"count"`` the pair counts
    are kept in ``Interactions.counts``; train/val/test stay binary (each pair once).
    """
    if duplicates not in DUPLICATE_POLICIES:
        raise ConfigError(f"duplicates must be one of {', '.join(DUPLICATE_POLICIES)}; "
                          f"got {duplicates!r}.")
    if min_rating is not None:
        if log.ratings is None:
            raise ConfigError(
                f"min_rating={min_rating} needs a rating column; {log.source} has none.")
        log = log.select(log.ratings >= min_rating)
    if len(log) == 0:
        raise DataError(f"{log.source}: no interactions left to split.")
    user_ids, item_ids = vocabulary(log.users), vocabulary(log.items)
    user_index, item_index = encode(user_ids, log.users), encode(item_ids, log.items)
    log, user_index, item_index, weights = resolve_duplicates(
        log, user_index, item_index, len(item_ids), duplicates)
    if split == "holdout":
        held = random_holdout_mask(user_index, len(user_ids), test_fraction, seed)
    elif split == "leave_last_out":
        held = leave_last_out_mask(user_index, log.timestamps, len(user_ids))
    else:
        raise ConfigError(f"split must be 'holdout' or 'leave_last_out'; got {split!r}.")
    if not held.any():
        raise DataError(f"{log.source}: the {split} split left the test set empty (every "
                        "user has a single interaction?).")
    splits = {"train": (user_index[~held], item_index[~held]),
              "test": (user_index[held], item_index[held])}
    counts = None
    if weights is not None:
        counts = sp.csr_matrix((weights, (user_index.astype(np.int64),
                                          item_index.astype(np.int64))),
                               shape=(len(user_ids), len(item_ids)), dtype=np.float32)
        counts.sort_indices()
    return build_interactions(name, user_ids, item_ids, splits, counts=counts)


def interactions_from_split_logs(name: str, train: InteractionLog,
                                 test: InteractionLog) -> Interactions:
    """Build ``Interactions`` from separate train and test logs (e.g. LightGCN files).

    Every test user must have train items; test items unseen in train are kept (cold items).
    """
    user_ids = vocabulary(train.users)
    item_ids = vocabulary(train.items, test.items)
    known = np.isin(test.users, user_ids)
    if not known.all():
        bad = int(np.argmin(known))
        raise DataError(
            f"{test.where(bad)}: user {str(test.users[bad])!r} has no train "
            f"items in {train.source}; every test user needs train interactions."
        )
    splits = {}
    for split, log in (("train", train), ("test", test)):
        users, items = encode(user_ids, log.users), encode(item_ids, log.items)
        _check_no_duplicates(log, users, items, len(item_ids))
        splits[split] = (users, items)
    overlap = _overlap(splits["train"], splits["test"], len(item_ids))
    if overlap is not None:
        raise DataError(
            f"{test.where(overlap)}: (user {str(test.users[overlap])!r}, item "
            f"{str(test.items[overlap])!r}) is also in {train.source}; train and test must not "
            "overlap."
        )
    return build_interactions(name, user_ids, item_ids, splits)


def _overlap(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
             num_items: int) -> int | None:
    train_keys = np.sort(train[0] * num_items + train[1])
    test_keys = test[0] * num_items + test[1]
    position = np.clip(np.searchsorted(train_keys, test_keys), 0, len(train_keys) - 1)
    hits = np.flatnonzero(train_keys[position] == test_keys)
    return int(hits[0]) if hits.size else None
