"""CTR datasets as ``FieldData``: Frappe, MovieLens-100K, Criteo and Avazu, with a disk cache.

``load_field_data(name, data_dir)`` finds the dataset's file under ``data_dir`` (for example
``../shared/data``; default the download cache), encodes it with ``encode_batches`` and caches
the arrays as ``.npz`` keyed by the settings and the source files' sizes and mtimes. The
datasets are the "fields" entries of the one registry (``slimrec.data.registry``); their
``format`` picks the reader in ``FIELD_READERS``. A cache file that cannot be read is a cache
miss: a ``RuntimeWarning`` names it and the data is encoded again over it.

- ``frappe``: the literature's CTR version (NFM / AFN / FuxiCTR "Frappe_x1"), regenerated from
  the original log: every log row is a positive with 10 fields (user, item and 8 context
  fields; ``cnt`` is dropped); each gets 2 negatives with the same user and context and an item
  drawn uniformly among the items that user never used (seeded). 96,203 log rows give exactly
  288,609 rows, split 7:2:1 at random (seeded).
- ``ml-100k``: RecBole atomic files joined with the user and item tables; label rating >= 4;
  fields user, item, age, gender, occupation, zip (first 3 characters) and genres (multi-hot).
- ``ml-1m``: the original GroupLens files (``ratings.dat``, ``users.dat``, ``movies.dat``, plain
  or .gz) joined as for the multi-task table; label rating >= 4; the same 7 fields as ml-100k
  (genres ``|``-separated, multi-hot).
- ``criteo`` / ``avazu`` (and ``criteo-sample`` / ``avazu-sample``, the DeepCTR fixtures):
  streamed in chunks. Criteo's 13 integer fields are log-square binned; Avazu's ``hour``
  (YYMMDDHH) becomes ``hour_of_day`` and ``weekday``; its ``id`` column is dropped.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from slimrec.data.build import encode, vocabulary
from slimrec.data.fields import (
    ENCODING_VERSION,
    FieldData,
    FieldSchema,
    encode_batches,
    frame_batches,
    iter_delimited,
)
from slimrec.data.readers import iter_lines, read_table_lines, shorten, strip_atomic_types
from slimrec.data.registry import DatasetInfo, cache_dir, dataset_info, datasets_of
from slimrec.errors import DataError

Batches = Iterable[tuple[np.ndarray, pl.DataFrame]]
FRAPPE_CONTEXT = ("daytime", "weekday", "isweekend", "homework", "cost", "weather", "country",
                  "city")
CRITEO_COLUMNS = ["label", *(f"I{k}" for k in range(1, 14)), *(f"C{k}" for k in range(1, 27))]


# ---------------------------------------------------------------------- Frappe
def sample_unused_items(users: np.ndarray, items: np.ndarray, num_items: int, per_row: int,
                        rng: np.random.Generator) -> np.ndarray:
    """For each row, ``per_row`` items drawn uniformly among those its user never used.

    ``users``/``items`` are internal ids of the logged (used) pairs; returns int64
    ``(len(users), per_row)``. Rejection sampling, vectorised: redraw only the collisions.
    """
    users = users.astype(np.int64)
    used = np.unique(users * num_items + items)
    distinct = np.bincount(used // num_items)
    if distinct.size and distinct.max() >= num_items:
        raise DataError(f"user {int(distinct.argmax())} used all {num_items} items; no "
                        "negative item can be sampled for it.")
    draws = rng.integers(0, num_items, size=(len(users), per_row))
    pending = np.ones(draws.shape, dtype=bool)
    while pending.any():
        keys = users[:, None] * num_items + draws
        position = np.searchsorted(used, keys).clip(max=len(used) - 1)
        pending = used[position] == keys
        draws[pending] = rng.integers(0, num_items, size=int(pending.sum()))
    return draws


def frappe_batches(path: Path, seed: int, negatives_per_positive: int = 2
                   ) -> tuple[FieldSchema, Batches]:
    frame, lines = read_table_lines(path, separator="\t")
    _require(frame, path, ("user", "item", *FRAPPE_CONTEXT))
    frame = frame.select("user", "item", *FRAPPE_CONTEXT).with_columns(
        pl.col("user", "item").str.strip_chars())
    for column in ("user", "item"):
        empty = (frame[column].is_null() | (frame[column] == "")).to_numpy()
        if empty.any():
            raise DataError(f"{path} line {lines[np.argmax(empty)]}: field {column!r} is empty; "
                            f"expected a {column} id.")
    users, items = frame["user"].to_numpy().astype(str), frame["item"].to_numpy().astype(str)
    item_ids = vocabulary(items)
    negatives = sample_unused_items(encode(vocabulary(users), users), encode(item_ids, items),
                                    len(item_ids), negatives_per_positive,
                                    np.random.default_rng([seed, 1]))
    parts = [frame.with_columns(pl.lit("1").alias("label"))]
    for k in range(negatives_per_positive):
        parts.append(frame.with_columns(pl.Series("item", item_ids[negatives[:, k]]),
                                        pl.lit("0").alias("label")))
    schema = FieldSchema("label", ("user", "item", *FRAPPE_CONTEXT), user_field="user",
                         item_field="item")
    return schema, frame_batches(pl.concat(parts), np.tile(lines, negatives_per_positive + 1))


def _require(frame: pl.DataFrame, path: Path, columns: Iterable[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column {missing[0]!r}; the file has columns "
                        f"{frame.columns}.")


# ---------------------------------------------------------------------- MovieLens-100K
def _atomic_table(folder: Path, name: str, columns: tuple[str, ...]
                  ) -> tuple[Path, pl.DataFrame, np.ndarray]:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            frame, lines = read_table_lines(candidate, separator="\t")
            frame = strip_atomic_types(frame, candidate)
            _require(frame, candidate, columns)
            return candidate, frame, lines
    raise DataError(f"{folder}: expected {name} (plain or .gz).")


def _join_side(frame: pl.DataFrame, side: pl.DataFrame, key: str, lines: np.ndarray,
               source: Path, side_source: Path, side_lines: np.ndarray) -> pl.DataFrame:
    empty = (side[key].is_null() | (side[key].str.strip_chars() == "")).fill_null(True)
    if empty.any():
        row = int(np.argmax(empty.to_numpy()))
        raise DataError(f"{side_source} line {side_lines[row]}: {key} is empty; expected an id "
                        "on every row.")
    repeated = (~side[key].is_first_distinct()).to_numpy()
    if repeated.any():
        row = int(np.argmax(repeated))
        first = int(np.argmax((side[key] == side[key][row]).fill_null(False).to_numpy()))
        raise DataError(f"{side_source} line {side_lines[row]}: {key} {side[key][row]!r} already "
                        f"has a row (line {side_lines[first]}); expected one row per id.")
    joined = frame.join(side, on=key, how="left", maintain_order="left")
    missing = joined[side.columns[1]].is_null().to_numpy()
    if missing.any():
        row = int(np.argmax(missing))
        raise DataError(f"{source} line {lines[row]}: {key} {frame[key][row]!r} has no row in "
                        f"{side_source}.")
    return joined


def movielens_batches(inter_path: Path, seed: int) -> tuple[FieldSchema, Batches]:
    folder = inter_path.parent
    _, inter, lines = _atomic_table(folder, inter_path.name.removesuffix(".gz"),
                                    ("user_id", "item_id", "rating"))
    stem = inter_path.name.split(".")[0]
    user_path, users, user_lines = _atomic_table(
        folder, f"{stem}.user", ("user_id", "age", "gender", "occupation", "zip_code"))
    item_path, items, item_lines = _atomic_table(folder, f"{stem}.item", ("item_id", "class"))
    rating = inter["rating"].str.strip_chars().cast(pl.Float64, strict=False)
    bad = (rating.is_null() | rating.is_nan() | rating.is_infinite()).to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raw = inter["rating"][row]
        shown = "is empty" if raw is None else f"{shorten(raw)} is not a finite number"
        raise DataError(f"{inter_path} line {lines[row]}: rating {shown}; expected a number "
                        "(ratings >= 4 become clicks).")
    frame = inter.select("user_id", "item_id").with_columns(
        pl.Series("label", np.where(rating.to_numpy() >= 4, "1", "0")))
    frame = _join_side(frame, users.select("user_id", "age", "gender", "occupation",
                                           "zip_code"), "user_id", lines, inter_path, user_path,
                       user_lines)
    frame = _join_side(frame, items.select("item_id", "class"), "item_id", lines, inter_path,
                       item_path, item_lines)
    frame = frame.select(pl.col("label"), pl.col("user_id").alias("user"),
                         pl.col("item_id").alias("item"), "age", "gender", "occupation",
                         pl.col("zip_code").str.slice(0, 3).alias("zip"),
                         pl.col("class").alias("genres"))
    schema = FieldSchema("label", ("user", "item", "age", "gender", "occupation", "zip"),
                         multi_hot=(("genres", " "),), user_field="user", item_field="item")
    return schema, frame_batches(frame, lines)


def movielens_dat_batches(ratings_path: Path) -> tuple[FieldSchema, Batches]:
    """MovieLens-1M's ``::`` files as CTR rows (the join of ``slimrec.data.multitask``)."""
    from slimrec.data.multitask import ml1m_frame

    frame = ml1m_frame(ratings_path.parent)
    frame = frame.select(pl.col("click").cast(pl.Utf8).alias("label"), "user",
                         pl.col("movie").alias("item"), "age", "gender", "occupation", "zip",
                         "genres")
    schema = FieldSchema("label", ("user", "item", "age", "gender", "occupation", "zip"),
                         multi_hot=(("genres", "|"),), user_field="user", item_field="item")
    return schema, frame_batches(frame, np.arange(1, frame.height + 1))


# ---------------------------------------------------------------------- Criteo and Avazu
def _first_line(path: Path) -> str:
    line = next((text for _, text in iter_lines(path)), "")
    if not line:
        raise DataError(f"{path}: file is empty or starts with a blank line; expected a "
                        "header or a first row on line 1.")
    return line


def criteo_batches(path: Path, chunk_rows: int) -> tuple[FieldSchema, Batches]:
    """Criteo with a ``label,I1..I13,C1..C26`` header (DeepCTR) or without (the Kaggle
    ``train.txt``, tab-separated)."""
    first = _first_line(path)
    separator = "\t" if "\t" in first else ","
    columns = None if first.split(separator)[0] == "label" else CRITEO_COLUMNS
    schema = FieldSchema("label", tuple(CRITEO_COLUMNS[14:]), tuple(CRITEO_COLUMNS[1:14]))
    return schema, iter_delimited(path, separator, columns, chunk_rows)


def _avazu_time(batches: Batches, source: Path) -> Iterator[tuple[np.ndarray, pl.DataFrame]]:
    for lines, frame in batches:
        if "hour" not in frame.columns:
            raise DataError(f"{source}: missing column 'hour'; the file has columns "
                            f"{frame.columns}.")
        hour = frame["hour"].str.strip_chars()
        day = hour.str.slice(0, 6).str.to_date("%y%m%d", strict=False)
        bad = ((hour.str.len_chars() != 8) | day.is_null()).to_numpy()
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(f"{source} line {lines[row]}: hour {frame['hour'][row]!r} is not "
                            "of the form YYMMDDHH.")
        yield lines, frame.with_columns(hour.str.slice(6, 2).alias("hour_of_day"),
                                        day.dt.weekday().cast(pl.String).alias("weekday"))


def avazu_batches(path: Path, chunk_rows: int) -> tuple[FieldSchema, Batches]:
    """Avazu (header ``id,click,hour,...``): ``click`` is the label, ``id`` is dropped."""
    header = _first_line(path).split(",")
    if "click" not in header:
        raise DataError(f"{path}: missing label column 'click'; the header has {header}.")
    categorical = tuple(c for c in header if c not in ("id", "click", "hour"))
    schema = FieldSchema("click", (*categorical, "hour_of_day", "weekday"))
    return schema, _avazu_time(iter_delimited(path, ",", None, chunk_rows), path)


# ---------------------------------------------------------------------- registry and cache
Reader = Callable[[Path, int, int], tuple[FieldSchema, Batches]]
# ``DatasetInfo.format`` of a fields dataset -> reader ``(path, seed, chunk_rows)``.
FIELD_READERS: dict[str, Reader] = {
    "frappe": lambda path, seed, chunk: frappe_batches(path, seed),
    "recbole-ctr": lambda path, seed, chunk: movielens_batches(path, seed),
    "movielens-dat": lambda path, seed, chunk: movielens_dat_batches(path),
    "criteo": lambda path, seed, chunk: criteo_batches(path, chunk),
    "avazu": lambda path, seed, chunk: avazu_batches(path, chunk),
}
# Former name of the entry type of a CTR dataset: entries now live in the one registry.
CTRDataset = DatasetInfo


def ctr_dataset(name: str) -> DatasetInfo:
    """The registry entry of the fields (CTR) dataset ``name`` (``ConfigError`` if unknown)."""
    info = dataset_info(name, kind="fields")
    assert isinstance(info, DatasetInfo)
    return info


def __getattr__(name: str) -> Any:
    if name == "CTR_DATASETS":  # former separate registry: now a view of the one registry
        return datasets_of("fields")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def find_ctr_file(info: DatasetInfo, data_dir: str | Path | None) -> Path:
    folder = Path(data_dir) if data_dir is not None else cache_dir()
    for relative in info.files:
        for candidate in (folder / relative, folder / f"{relative}.gz"):
            if candidate.is_file():
                return candidate
    raise DataError(f"{folder}: no {' or '.join(info.files)} (plain or .gz) for dataset "
                    f"{info.name!r}; pass --data-dir with the folder that holds it "
                    "(e.g. ../shared/data).")


def load_field_data(name: str, data_dir: str | Path | None = None, seed: int = 0,
                    min_count: int | None = None,
                    fractions: tuple[float, float, float] = (0.7, 0.2, 0.1),
                    chunk_rows: int = 500_000, cache: bool = True) -> FieldData:
    """Encode (or read from the cache) the CTR dataset ``name``; ``seed`` fixes the sampled
    negatives (Frappe) and the split.

    ``name`` is looked up among the "fields" entries of the one registry. A cache file that
    cannot be read (truncated, corrupt, foreign, another encoding version) counts as a miss:
    a ``RuntimeWarning`` names it, the data is encoded again and the file is overwritten.
    """
    info = ctr_dataset(name)
    read = FIELD_READERS[info.format]
    path = find_ctr_file(info, data_dir)
    min_count = info.min_count if min_count is None else min_count
    sources = sorted(p for p in path.parent.iterdir() if p.is_file())
    key = json.dumps({"name": name, "seed": seed, "min_count": min_count,
                      "fractions": list(fractions), "version": ENCODING_VERSION,
                      "files": [(p.name, p.stat().st_size, p.stat().st_mtime_ns)
                                for p in sources]})
    cached = cache_dir() / "ctr" / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
    if cache and cached.is_file():
        try:
            return FieldData.load(cached)
        except DataError as error:  # a corrupt cache file is a miss: encode again, overwrite
            warnings.warn(f"{error} Encoding {name} again.", RuntimeWarning, stacklevel=2)
    schema, batches = read(path, seed, chunk_rows)
    data = encode_batches(name, str(path), batches, schema, fractions, seed, min_count)
    if cache:
        data.save(cached)
    return data
