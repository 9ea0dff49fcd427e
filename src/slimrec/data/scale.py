"""Interactions at scale: a chunked synthetic generator and an out-of-core CSR ingest.

``generate_synthetic(out, SynthSpec(...))`` writes ``part-NNNNN.parquet`` chunks of (user, item)
pairs and a ``meta.json``, one chunk of users at a time, so memory is bounded by the chunk, not
the dataset. It follows the embedded generator (``data/synthetic.py``): Zipf item popularity,
planted communities (a user draws most items from its own community, weighted by popularity),
Pareto-tailed user activity; draws are vectorised over a whole chunk (inverse-CDF sampling
with ``searchsorted``) and duplicates within a user are dropped, so a chunk holds slightly fewer
pairs than drawn (``meta.json`` records the count written).

``ingest(folder)`` builds the train / val / test CSR matrices from those chunks in three
streaming passes over the files (count per user and split; scatter the item ids into
memory-mapped ``.npy`` arrays; sort each row), holding one chunk of numpy arrays at a time and
never a Python object per row. The split is a seeded per-pair hash, so it needs no global
shuffle: a pair is test with probability ``test_fraction``, else val with probability
``val_fraction``. The arrays are cached beside the chunks (``.slimrec-cache/<key>/``, the key
hashing the chunk files and the split settings) and memory-mapped on the next run.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from slimrec.data.interactions import Interactions
from slimrec.env import peak_rss_bytes
from slimrec.errors import ConfigError, DataError
from slimrec.io import atomic_write, atomic_write_json

META_FILE = "meta.json"
FORMAT = "slimrec-chunks/1"
SPLITS = ("train", "val", "test")
CACHE_FOLDER = ".slimrec-cache"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class SynthSpec:
    """Sizes and shape of a synthetic dataset (``interactions`` is the number drawn)."""

    users: int
    items: int
    interactions: int
    communities: int = 64
    in_community: float = 0.85
    popularity_exponent: float = 0.9
    seed: int = 0
    chunk_rows: int = 4_000_000  # pairs per Parquet file: bounds the generator's memory
    row_group_rows: int = 1_000_000

    def check(self) -> None:
        if self.users < 1 or self.items < 10 or self.interactions < self.users:
            raise ConfigError(f"synth needs users >= 1, items >= 10 and interactions >= users "
                              f"(every user has one); got users={self.users}, "
                              f"items={self.items}, interactions={self.interactions}.")
        if not 1 <= self.communities <= self.items:
            raise ConfigError(f"communities must be in [1, items={self.items}]; got "
                              f"{self.communities}.")
        if not 0 <= self.in_community <= 1:
            raise ConfigError(f"in_community must be in [0, 1]; got {self.in_community}.")


def _silent(_: str) -> None:
    pass


def _id_dtype(count: int) -> type:
    return np.int32 if count <= np.iinfo(np.int32).max else np.int64


class _ItemSampler:
    """Popularity-weighted item draws, from all items or from one community's."""

    def __init__(self, spec: SynthSpec, rng: np.random.Generator) -> None:
        ranks = rng.permutation(spec.items) + 1.0
        popularity = ranks ** (-spec.popularity_exponent)
        community = rng.integers(0, spec.communities, spec.items)
        self.order = np.argsort(community, kind="stable")  # items grouped by community
        self.cdf = np.cumsum(popularity[self.order])
        starts = np.searchsorted(community[self.order], np.arange(spec.communities + 1))
        self.low = np.concatenate(([0.0], self.cdf))[starts[:-1]]
        self.high = np.concatenate(([0.0], self.cdf))[starts[1:]]

    def draw(self, low: np.ndarray, high: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One item per entry, drawn by popularity among the items whose cumulative weight
        lies in ``[low, high)`` (a community's range, or everything)."""
        target = low + rng.random(len(low)) * (high - low)
        position = np.searchsorted(self.cdf, target, side="right")
        return self.order[np.minimum(position, self.cdf.size - 1)]

    def own(self, communities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.draw(self.low[communities], self.high[communities], rng)

    def any(self, count: int, rng: np.random.Generator) -> np.ndarray:
        return self.draw(np.zeros(count), np.full(count, self.cdf[-1]), rng)


def _user_degrees(spec: SynthSpec, rng: np.random.Generator) -> np.ndarray:
    """Pareto-tailed activity scaled to ``interactions`` in total, at least one each."""
    raw = rng.pareto(2.5, spec.users) + 1.0
    degrees = np.round(raw * (spec.interactions / raw.sum())).astype(np.int64)
    return np.clip(degrees, 1, max(1, spec.items // 4))


def _chunk_pairs(spec: SynthSpec, first: int, degrees: np.ndarray, community: np.ndarray,
                 items: _ItemSampler, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """The (user, item) pairs of users ``first .. first + len(degrees)``, each pair once."""
    users = np.repeat(np.arange(first, first + len(degrees), dtype=np.int64), degrees)
    own = rng.random(len(users)) < spec.in_community
    drawn = np.empty(len(users), dtype=np.int64)
    drawn[own] = items.own(community[users[own] - first], rng)
    drawn[~own] = items.any(int((~own).sum()), rng)
    keys = np.unique(users * spec.items + drawn)  # sorted by user, then item; duplicates gone
    return keys // spec.items, keys % spec.items


def _write_parquet(path: Path, users: np.ndarray, items: np.ndarray, spec: SynthSpec) -> None:
    import polars as pl

    frame = pl.DataFrame({"user": users.astype(_id_dtype(spec.users)),
                          "item": items.astype(_id_dtype(spec.items))})
    atomic_write(path, lambda tmp: frame.write_parquet(tmp, row_group_size=spec.row_group_rows))


def generate_synthetic(out: str | Path, spec: SynthSpec,
                       progress: Progress = _silent) -> dict[str, Any]:
    """Write ``spec``'s dataset to ``out`` as Parquet chunks plus ``meta.json``; return the
    meta document (with ``seconds`` and ``peak_rss_bytes``)."""
    spec.check()
    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / META_FILE).unlink(missing_ok=True)  # a folder without meta.json is unfinished
    rng = np.random.default_rng(spec.seed)
    items = _ItemSampler(spec, rng)
    community = rng.integers(0, spec.communities, spec.users).astype(np.int32)
    degrees = _user_degrees(spec, rng)
    # Chunk boundaries: whole users, about chunk_rows draws each.
    bounds = np.searchsorted(np.cumsum(degrees),
                             np.arange(spec.chunk_rows, degrees.sum(), spec.chunk_rows))
    bounds = np.unique(np.concatenate(([0], bounds + 1, [spec.users])).clip(max=spec.users))
    files = []
    for index, (first, last) in enumerate(itertools.pairwise(bounds)):
        chunk_rng = np.random.default_rng([spec.seed, index])  # chunks are independent
        users, chosen = _chunk_pairs(spec, int(first), degrees[first:last],
                                     community[first:last], items, chunk_rng)
        name = f"part-{index:05d}.parquet"
        _write_parquet(out / name, users, chosen, spec)
        files.append({"name": name, "rows": len(users)})
        progress(f"chunk {index + 1}/{len(bounds) - 1}: users {first:,}-{last - 1:,}, "
                 f"{len(users):,} pairs, {time.perf_counter() - start:.1f}s")
    meta = {"format": FORMAT, **asdict(spec), "drawn": int(degrees.sum()),
            "interactions": sum(f["rows"] for f in files), "files": files,
            "columns": {"user": "user", "item": "item"},
            "seconds": time.perf_counter() - start, "peak_rss_bytes": peak_rss_bytes()}
    atomic_write_json(out / META_FILE, meta)
    return meta


# ---------------------------------------------------------------------------------- ingest
def read_meta(folder: Path) -> dict[str, Any]:
    path = folder / META_FILE
    if not path.is_file():
        raise DataError(f"{folder}: no {META_FILE}; write chunks with `slimrec datasets synth` "
                        "(an unfinished generation has none either).")
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT:
        raise DataError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}.")
    return meta


def read_batches(folder: Path, meta: dict[str, Any]) -> Iterator[tuple[np.ndarray, ...]]:
    """The (user, item) arrays of every chunk, one row group at a time (so memory is bounded by
    a row group, whatever the file sizes), checked: integer columns, no nulls, ids in range. An
    error names the file and the row group."""
    import polars as pl

    group = int(meta.get("row_group_rows") or 1_000_000)
    for entry in meta["files"]:
        path = folder / entry["name"]
        try:
            schema = pl.read_parquet_schema(path)
        except Exception as error:  # polars raises its own types for unreadable files
            raise DataError(f"{path}: not a readable Parquet file ({error}).") from None
        for column in ("user", "item"):
            dtype = schema.get(column)
            if dtype is None or not dtype.is_integer():
                found = ", ".join(f"{k}: {v}" for k, v in schema.items())
                raise DataError(f"{path} (every row group: Parquet has one schema per file): "
                                f"column {column!r} must hold integer ids; the file has "
                                f"{found}.")
        for first in range(0, entry["rows"], group):
            where = (f"{path}, row group {first // group} (rows {first:,}-"
                     f"{first + group - 1:,})")
            frame = pl.scan_parquet(path).select("user", "item").slice(first, group).collect()
            yield tuple(_checked(frame[column], limit, column, where, first)
                        for column, limit in (("user", meta["users"]), ("item", meta["items"])))


def _checked(series: Any, limit: int, column: str, where: str, first: int) -> np.ndarray:
    if series.null_count():
        row = first + int(series.is_null().arg_max())
        raise DataError(f"{where}, row {row}: {column} id is missing (null).")
    values = series.to_numpy()
    bad = (values < 0) | (values >= limit)
    if bad.any():
        at = int(np.argmax(bad))
        raise DataError(f"{where}, row {first + at}: {column} id {values[at]} is outside "
                        f"[0, {limit:,}) ({META_FILE} says {limit:,} {column}s).")
    return values.astype(np.int64, copy=False)


def _split_of(users: np.ndarray, items: np.ndarray, num_items: int, seed: int,
              val_fraction: float, test_fraction: float) -> np.ndarray:
    """0 train, 1 val, 2 test for each pair: a seeded hash (splitmix64) of the pair, so the
    split of a pair does not depend on which chunk holds it or in which order."""
    x = (users.astype(np.uint64) * np.uint64(num_items) + items.astype(np.uint64)
         + np.uint64(seed * 0x9E3779B97F4A7C15 % 2**64))
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    uniform = (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    split = np.zeros(len(users), dtype=np.int8)
    split[uniform < test_fraction + (1 - test_fraction) * val_fraction] = 1
    split[uniform < test_fraction] = 2
    return split


def _cache_key(folder: Path, meta: dict[str, Any], settings: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for entry in meta["files"]:
        stat = (folder / entry["name"]).stat()
        digest.update(f"{entry['name']}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _open(cache: Path, split: str, shape: tuple[int, int]) -> sp.csr_matrix:
    """A split's CSR over the memory-mapped arrays (nothing is read until used)."""
    arrays = {part: np.load(cache / f"{split}_{part}.npy", mmap_mode="r")
              for part in ("indptr", "indices", "data")}
    return sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=shape,
                         copy=False)


def _build(folder: Path, meta: dict[str, Any], cache: Path, split_of: Callable,
           progress: Progress, sort_rows: int = 2_000_000) -> None:
    """The three passes (module docstring) into ``cache``."""
    num_users, num_items = meta["users"], meta["items"]
    index_dtype = _id_dtype(max(num_items, meta["interactions"]))
    counts = np.zeros((len(SPLITS), num_users), dtype=np.int64)
    for users, items in read_batches(folder, meta):  # pass 1: pairs per user and split
        split = split_of(users, items)
        for s in range(len(SPLITS)):
            counts[s] += np.bincount(users[split == s], minlength=num_users)
    progress("ingest pass 1/3 (count pairs per user and split) done")
    cache.mkdir(parents=True, exist_ok=True)
    indptr, indices, cursor = [], [], []
    for s, name in enumerate(SPLITS):
        pointers = np.concatenate(([0], np.cumsum(counts[s]))).astype(index_dtype)
        np.save(cache / f"{name}_indptr.npy", pointers)
        data = np.lib.format.open_memmap(cache / f"{name}_data.npy", "w+", np.float32,
                                         (int(pointers[-1]),))
        data[:] = 1.0
        data.flush()
        del data
        indptr.append(pointers)
        indices.append(np.lib.format.open_memmap(cache / f"{name}_indices.npy", "w+",
                                                 index_dtype, (int(pointers[-1]),)))
        cursor.append(pointers[:-1].astype(np.int64))
    del counts
    for users, items in read_batches(folder, meta):  # pass 2: scatter items into rows
        split = split_of(users, items)
        for s in range(len(SPLITS)):
            mine = split == s
            order = np.argsort(users[mine], kind="stable")
            row_users, row_items = users[mine][order], items[mine][order]
            present, first_at, sizes = np.unique(row_users, return_index=True,
                                                 return_counts=True)
            within = np.arange(len(row_users)) - np.repeat(first_at, sizes)
            indices[s][cursor[s][row_users] + within] = row_items
            cursor[s][present] += sizes
    progress("ingest pass 2/3 (scatter items into their rows) done")
    for s, name in enumerate(SPLITS):  # pass 3: sort each row's items, find duplicates
        pointers, columns = indptr[s], indices[s]
        first = 0
        while first < num_users:
            last = int(np.searchsorted(pointers, pointers[first] + sort_rows, side="right"))
            last = min(max(last - 1, first + 1), num_users)
            begin, end = int(pointers[first]), int(pointers[last])
            rows = np.repeat(np.arange(last - first, dtype=np.int64),
                             np.diff(pointers[first:last + 1]))
            keys = np.sort(rows * num_items + columns[begin:end])
            if keys.size and (np.diff(keys) == 0).any():
                at = int(np.argmax(np.diff(keys) == 0))
                raise DataError(f"{folder}: pair (user {first + keys[at] // num_items}, item "
                                f"{keys[at] % num_items}) occurs more than once; chunks must "
                                "hold each pair once.")
            columns[begin:end] = keys - rows * num_items
            first = last
        columns.flush()
        progress(f"ingest pass 3/3 (sort rows): {name} done")
    del indices


def ingest(folder: str | Path, *, val_fraction: float = 0.1, test_fraction: float = 0.2,
           seed: int = 0, progress: Progress = _silent) -> tuple[Interactions, dict[str, Any]]:
    """The chunks of ``folder`` as ``Interactions`` over memory-mapped CSR arrays, and a
    report (``cached``, ``seconds``, ``csr_bytes``, ``peak_rss_bytes``)."""
    if not (0 <= val_fraction < 1 and 0 < test_fraction < 1):
        raise ConfigError(f"ingest needs 0 <= val_fraction < 1 and 0 < test_fraction < 1; got "
                          f"{val_fraction}, {test_fraction}.")
    start = time.perf_counter()
    folder = Path(folder)
    meta = read_meta(folder)
    settings = {"val_fraction": val_fraction, "test_fraction": test_fraction, "seed": seed}
    cache = folder / CACHE_FOLDER / _cache_key(folder, meta, settings)
    done = cache / "done.json"
    cached = done.is_file()
    if not cached:
        _build(folder, meta, cache, lambda u, i: _split_of(u, i, meta["items"], seed,
                                                           val_fraction, test_fraction),
               progress)
        atomic_write_json(done, {"settings": settings, "source": str(folder)})
    shape = (meta["users"], meta["items"])
    splits = {name: _open(cache, name, shape) for name in SPLITS}
    data = Interactions(f"chunks:{folder.name}", np.arange(shape[0]).astype(str),
                        np.arange(shape[1]).astype(str), **splits)
    csr_bytes = sum(m.indptr.nbytes + m.indices.nbytes + m.data.nbytes for m in splits.values())
    report = {"cached": cached, "cache": str(cache), "seconds": time.perf_counter() - start,
              "csr_bytes": int(csr_bytes), "peak_rss_bytes": peak_rss_bytes(),
              **{name: int(m.nnz) for name, m in splits.items()}}
    return data, report


def remove_cache(folder: str | Path) -> None:
    """Forget every cached CSR of ``folder`` (the chunks stay)."""
    import shutil

    shutil.rmtree(Path(folder) / CACHE_FOLDER, ignore_errors=True)

