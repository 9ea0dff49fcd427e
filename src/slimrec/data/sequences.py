"""``Sequences``: each user's items in time order (repeats allowed), split leave-one-out.

Internal item ids start at 1; ``0`` is padding, so a model's item table has ``num_items + 1``
rows. ``item_ids[i - 1]`` is the external id of internal item ``i``.

Leave-one-out (SASRec, Kang & McAuley 2018): a user with at least 3 items has the last item as
test target (input: every earlier item) and the second-to-last as validation target (input:
the items before it); the items before both are the user's training sequence. A user with
fewer than 3 items trains on all of them and is not evaluated.

Readers: the S3-Rec files (``user item item ...`` per line, already chronological), MovieLens
``ratings.dat`` and any (user, item[, time]) log of your own (CSV/TSV/Parquet/.inter, read by
``slimrec.data.own_data``), sorted by time with ties kept in file order; without a time column
the file order is the time order.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from slimrec.data.build import encode, vocabulary
from slimrec.data.readers import InteractionLog, iter_lines, log_from_tokens, read_movielens_ratings
from slimrec.errors import ConfigError, DataError

PADDING = 0
HOLDOUT_SPLITS = ("val", "test")


@dataclass(frozen=True)
class Holdout:
    """One evaluation split: per evaluated user, the end of its input and its target.

    The input of row ``r`` is ``items[starts[r]:ends[r]]``; ``targets[r]`` follows it.
    """

    users: np.ndarray  # int64 (R,)
    starts: np.ndarray  # int64 (R,)
    ends: np.ndarray  # int64 (R,)
    targets: np.ndarray  # int64 (R,)

    def __len__(self) -> int:
        return len(self.users)

    def rows(self, index: np.ndarray) -> Holdout:
        """The rows ``index`` (an order or a subset)."""
        return Holdout(self.users[index], self.starts[index], self.ends[index],
                       self.targets[index])


@dataclass(frozen=True)
class Sequences:
    """Histories of ``num_users`` users over ``num_items`` items, concatenated in CSR form.

    ``items[indptr[u]:indptr[u + 1]]`` is user ``u``'s history, oldest first, as internal ids
    in ``[1, num_items]``.
    """

    name: str
    user_ids: np.ndarray  # str (U,)
    item_ids: np.ndarray  # str (V,)
    indptr: np.ndarray  # int64 (U + 1,)
    items: np.ndarray  # int64 (N,)

    def __post_init__(self) -> None:
        indptr, items = np.asarray(self.indptr, np.int64), np.asarray(self.items, np.int64)
        object.__setattr__(self, "indptr", indptr)
        object.__setattr__(self, "items", items)
        if len(self.item_ids) == 0 or len(self.user_ids) == 0:
            raise DataError(f"{self.name}: no users or no items; expected at least one "
                            "history of one item.")
        if indptr.shape != (len(self.user_ids) + 1,) or indptr[0] != 0 \
                or indptr[-1] != len(items) or np.any(np.diff(indptr) < 0):
            raise DataError(f"{self.name}: indptr must rise from 0 to {len(items)} with one "
                            f"entry per user plus one; got {len(indptr)} entries.")
        empty = np.flatnonzero(np.diff(indptr) == 0)
        if empty.size:
            raise DataError(f"{self.name}: the history of user {self.user_ids[empty[0]]!r} is "
                            "empty; every user needs at least one item.")
        bad = np.flatnonzero((items < 1) | (items > len(self.item_ids)))
        if bad.size:
            raise DataError(f"{self.name}: item id {items[bad[0]]} at position {bad[0]} is out "
                            f"of range; internal ids run from 1 to {len(self.item_ids)} "
                            "(0 is padding).")

    # ------------------------------------------------------------------ sizes
    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        """Items, without the padding id."""
        return len(self.item_ids)

    @property
    def vocab_size(self) -> int:
        """Rows of an item table: the items plus the padding row 0."""
        return self.num_items + 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def history(self, user: int) -> np.ndarray:
        return self.items[self.indptr[user]: self.indptr[user + 1]]

    # ------------------------------------------------------------------ leave-one-out
    @property
    def evaluated(self) -> np.ndarray:
        """Users with a validation and a test item (at least 3 items)."""
        return self.lengths >= 3

    @property
    def train_ends(self) -> np.ndarray:
        """End (exclusive, into ``items``) of each user's training sequence."""
        return self.indptr[1:] - np.where(self.evaluated, 2, 0)

    def holdout(self, split: str) -> Holdout:
        """The ``"val"`` or ``"test"`` split (see the module docstring)."""
        if split not in HOLDOUT_SPLITS:
            raise ConfigError(f"split must be 'val' or 'test'; got {split!r}.")
        users = np.flatnonzero(self.evaluated)
        ends = self.indptr[users + 1] - (2 if split == "val" else 1)
        return Holdout(users, self.indptr[users], ends, self.items[ends])

    def item_frequencies(self) -> np.ndarray:
        """Training occurrences of every id, shape ``(vocab_size,)`` (padding counts 0)."""
        return np.bincount(self.items[self._train_mask()], minlength=self.vocab_size)

    def train_graph(self) -> sp.csr_matrix:
        """The binary ``(num_users, vocab_size)`` user-item graph of the training sequences
        (what graph-clustering tables need; column 0, padding, has no edge)."""
        mask = self._train_mask()
        users = np.repeat(np.arange(self.num_users), self.lengths)[mask]
        graph = sp.csr_matrix((np.ones(int(mask.sum()), dtype=np.float32),
                               (users, self.items[mask])),
                              shape=(self.num_users, self.vocab_size))
        graph.data[:] = 1.0  # repeats count once
        return graph

    def _train_mask(self) -> np.ndarray:
        position = np.arange(len(self.items)) - np.repeat(self.indptr[:-1], self.lengths)
        limit = np.repeat(self.train_ends - self.indptr[:-1], self.lengths)
        return position < limit

    def stats(self) -> dict[str, Any]:
        lengths = self.lengths
        return {"name": self.name, "users": self.num_users, "items": self.num_items,
                "interactions": len(self.items),
                "mean_length": float(lengths.mean()), "max_length": int(lengths.max()),
                "evaluated_users": int(self.evaluated.sum())}


# ---------------------------------------------------------------------- builders
def sequences_from_lists(histories: Sequence[Sequence[Hashable]],
                         user_ids: Sequence[Hashable] | None = None,
                         name: str = "sequences") -> Sequences:
    """``Sequences`` from lists of external item ids, oldest first (user ids default to the
    list positions). An empty history is a ``DataError`` naming the user."""
    users = [str(user) for user in (user_ids if user_ids is not None
                                    else range(len(histories)))]
    if len(users) != len(histories):
        raise DataError(f"{name}: {len(users)} user ids for {len(histories)} histories.")
    for user, history in zip(users, histories, strict=True):
        if len(history) == 0:
            raise DataError(f"{name}: the history of user {user!r} is empty; every user needs "
                            "at least one item.")
    flat = np.asarray([str(item) for history in histories for item in history])
    items = vocabulary(flat)
    indptr = np.concatenate([[0], np.cumsum([len(history) for history in histories])])
    return Sequences(name, np.asarray(users), items, indptr, encode(items, flat) + 1)


def sequences_from_log(name: str, log: InteractionLog) -> Sequences:
    """Each user's items ordered by timestamp, ties (and logs without timestamps) in file
    order; users and items get sorted vocabularies."""
    if len(log) == 0:
        raise DataError(f"{log.source}: no interactions; expected at least one.")
    user_vocabulary, item_vocabulary = vocabulary(log.users), vocabulary(log.items)
    users, items = encode(user_vocabulary, log.users), encode(item_vocabulary, log.items)
    row = np.arange(len(log))
    keys = (row,) if log.timestamps is None else (row, log.timestamps)
    order = np.lexsort((*keys, users))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(users,
                                                        minlength=len(user_vocabulary)))])
    return Sequences(name, user_vocabulary, item_vocabulary, indptr, items[order] + 1)


def read_s3rec_file(path: str | Path) -> InteractionLog:
    """Read an S3-Rec sequence file: one line per user, ``user item item ...`` separated by
    spaces, oldest item first. The file order is the time order (no timestamps)."""
    path = Path(path)
    users: list[str] = []
    items: list[str] = []
    lines: list[int] = []
    for line_number, line in iter_lines(path):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) < 2:
            raise DataError(f"{path} line {line_number}: user {tokens[0]!r} has no items; "
                            "expected 'user item item ...'.")
        users.extend([tokens[0]] * (len(tokens) - 1))
        items.extend(tokens[1:])
        lines.extend([line_number] * (len(tokens) - 1))
    if not users:
        raise DataError(f"{path}: file is empty; expected lines of 'user item item ...'.")
    return log_from_tokens(path, users, items, lines)


def make_synthetic_sequences(num_users: int = 1000, num_items: int = 500,
                             mean_length: float = 20.0, max_length: int = 200,
                             seed: int = 0, name: str = "synthetic-seq") -> Sequences:
    """Seeded sequences with learnable order: each item has 3 likely successors; a user walks
    from item to successor (80%) or jumps to a Zipf-popular item (20%). Lengths are
    geometric around ``mean_length``, between 3 and ``max_length``."""
    if num_users < 1 or num_items < 2 or mean_length < 1 or max_length < 1:
        raise ConfigError("make_synthetic_sequences needs num_users >= 1, num_items >= 2, "
                          f"mean_length >= 1 and max_length >= 1; got {num_users}, "
                          f"{num_items}, {mean_length}, {max_length}.")
    rng = np.random.default_rng(seed)
    successors = rng.integers(0, num_items, size=(num_items, 3))
    popularity = 1.0 / np.arange(1, num_items + 1) ** 0.8
    popularity = rng.permutation(popularity / popularity.sum())
    lengths = np.clip(rng.geometric(1.0 / mean_length, num_users), min(3, max_length),
                      max_length)
    total = int(lengths.sum())
    jumps = rng.choice(num_items, size=total, p=popularity)
    jump = rng.random(total) < 0.2
    pick = rng.integers(0, 3, size=total)
    items = np.empty(total, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    first = np.zeros(total, dtype=bool)
    first[starts] = True
    current = 0
    for position in range(total):  # a Markov walk; fast enough for test and benchmark sizes
        current = jumps[position] if first[position] or jump[position] \
            else successors[current, pick[position]]
        items[position] = current
    return Sequences(name, np.asarray([str(u) for u in range(num_users)]),
                     np.asarray([str(i) for i in range(1, num_items + 1)]),
                     np.concatenate([[0], np.cumsum(lengths)]), items + 1)


# ---------------------------------------------------------------------- loading
def find_sequence_file(folder: Path, files: Sequence[str], name: str) -> Path:
    for relative in files:
        for candidate in (folder / relative, folder / f"{relative}.gz"):
            if candidate.is_file():
                return candidate
    raise DataError(f"{folder}: no {' or '.join(files)} (plain or .gz) for sequence dataset "
                    f"{name!r}; pass --data-dir with the folder that holds it "
                    "(e.g. ../shared/data).")


def read_sequence_log(path: Path, *, user_col: str = "user", item_col: str = "item",
                      time_col: str | None = None, separator: str | None = None
                      ) -> InteractionLog:
    """The log of a sequence file: S3-Rec ``.txt`` lines, MovieLens ratings, or a table."""
    from slimrec.data.own_data import read_interactions_file

    if path.name.removesuffix(".gz").endswith(".txt"):
        return read_s3rec_file(path)
    return read_interactions_file(path, user_col=user_col, item_col=item_col,
                                  time_col=time_col, separator=separator)


def load_sequences(name: str | os.PathLike[str], data_dir: str | Path | None = None, *,
                   user_col: str = "user", item_col: str = "item", time_col: str | None = None,
                   separator: str | None = None, progress: bool = False) -> Sequences:
    """A registered sequence dataset (``slimrec datasets list``) or your own file.

    Registered names are read from ``data_dir`` (``beauty`` from ``s3rec/Beauty.txt[.gz]``,
    ``ml-1m`` from ``ml-1m/ratings.dat[.gz]``), or from the download cache. A path is an S3-Rec
    style ``.txt`` file or a (user, item[, time]) table read with the column options; rows are
    ordered by ``time_col`` (ties: file order), else kept in file order.
    """
    from slimrec.data.own_data import looks_like_path
    from slimrec.data.registry import (
        DatasetInfo,
        cache_dir,
        dataset_info,
        dataset_kinds,
        download,
    )

    if isinstance(name, os.PathLike) or ("sequences" not in dataset_kinds(name)
                                         and looks_like_path(name)):
        path = Path(name)
        if not path.is_file():
            raise DataError(f"{path}: file not found.")
        log = read_sequence_log(path, user_col=user_col, item_col=item_col, time_col=time_col,
                                separator=separator)
        return sequences_from_log(path.name.split(".")[0], log)
    changed = {"user_col": user_col != "user", "item_col": item_col != "item",
               "time_col": time_col is not None, "separator": separator is not None}
    if any(changed.values()):
        raise ConfigError(f"{', '.join(key for key, on in changed.items() if on)} apply to "
                          f"your own files; {name!r} is a registered dataset with fixed "
                          "columns.")
    info = dataset_info(name, kind="sequences")
    assert isinstance(info, DatasetInfo)
    if info.format == "synthetic":
        return make_synthetic_sequences()
    if data_dir is None:
        folder = cache_dir()
        if info.remote and not any((folder / f).is_file() for f in info.files):
            download(info.name, progress, kind="sequences")
    else:
        folder = Path(data_dir)
    path = find_sequence_file(folder, info.files, info.name)
    log = read_movielens_ratings(path) if info.format == "movielens" else read_s3rec_file(path)
    return sequences_from_log(info.name, log)


def pad_windows(items: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[Tensor, Tensor]:
    """Rows ``items[starts[r]:ends[r]]`` right-padded with 0 to the longest:
    ``(LongTensor[R, max length], lengths LongTensor[R])``. Rows must be non-empty."""
    lengths = np.asarray(ends, np.int64) - np.asarray(starts, np.int64)
    offsets = np.arange(int(lengths.max()))
    valid = offsets < lengths[:, None]
    index = np.minimum(np.asarray(starts, np.int64)[:, None] + offsets, len(items) - 1)
    values = np.where(valid, items[index], PADDING)
    return torch.from_numpy(values), torch.from_numpy(lengths)


def last_window(starts: np.ndarray, ends: np.ndarray, max_len: int) -> np.ndarray:
    """Starts of the last ``max_len`` items of each row ``[starts, ends)``."""
    return np.maximum(starts, ends - max_len)
