"""Turn interaction logs into ``Interactions``: vocabularies, duplicate checks and splits."""

from __future__ import annotations

from typing import Literal

import numpy as np

from slimrec.data.interactions import Interactions, build_interactions
from slimrec.data.readers import InteractionLog
from slimrec.data.splits import leave_last_out_mask, random_holdout_mask
from slimrec.errors import ConfigError, DataError

SplitName = Literal["holdout", "leave_last_out"]


def vocabulary(*columns: np.ndarray) -> np.ndarray:
    """Sorted unique external ids; all-digit ids sort numerically so "10" follows "9"."""
    ids = np.unique(np.concatenate(columns))
    if ids.size and np.char.isdigit(ids).all():
        ids = ids[np.argsort(ids.astype(np.int64), kind="stable")]
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
            f"{log.source} line {log.lines[second]}: duplicate interaction (user "
            f"{str(log.users[second])!r}, item {str(log.items[second])!r}) already on line "
            f"{log.lines[first]}. Remove repeats or aggregate them before loading."
        )


def interactions_from_log(
    name: str,
    log: InteractionLog,
    split: SplitName = "holdout",
    test_fraction: float = 0.2,
    seed: int = 0,
    min_rating: float | None = None,
) -> Interactions:
    """Build train/test from one log with a per-user random holdout or leave-last-out."""
    if min_rating is not None:
        if log.ratings is None:
            raise ConfigError(
                f"min_rating={min_rating} needs a rating column; {log.source} has none.")
        log = log.select(log.ratings >= min_rating)
    if len(log) == 0:
        raise DataError(f"{log.source}: no interactions left to split.")
    user_ids, item_ids = vocabulary(log.users), vocabulary(log.items)
    user_index, item_index = encode(user_ids, log.users), encode(item_ids, log.items)
    _check_no_duplicates(log, user_index, item_index, len(item_ids))
    if split == "holdout":
        held = random_holdout_mask(user_index, len(user_ids), test_fraction, seed)
    elif split == "leave_last_out":
        held = leave_last_out_mask(user_index, log.timestamps, len(user_ids))
    else:
        raise ConfigError(f"split must be 'holdout' or 'leave_last_out'; got {split!r}.")
    if not held.any():
        raise DataError(f"{log.source}: the {split} split left the test set empty.")
    splits = {"train": (user_index[~held], item_index[~held]),
              "test": (user_index[held], item_index[held])}
    return build_interactions(name, user_ids, item_ids, splits)


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
            f"{test.source} line {test.lines[bad]}: user {str(test.users[bad])!r} has no train "
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
            f"{test.source} line {test.lines[overlap]}: (user {str(test.users[overlap])!r}, item "
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
