"""Users' own interaction data: a file (CSV, TSV, Parquet, RecBole ``.inter``, MovieLens) or an
in-memory table (pandas or polars DataFrame, dict or tuple of numpy arrays).

Everything goes through ``interactions_from_log``, so the split, ``min_rating`` and the
duplicates policy behave exactly as for registered datasets. Every problem of the input is a
``DataError`` naming the file or frame, the line or row, the column and what was expected.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from slimrec.data.build import (
    DUPLICATE_POLICIES,
    DuplicatePolicy,
    SplitName,
    interactions_from_log,
    interactions_from_split_logs,
)
from slimrec.data.interactions import Interactions
from slimrec.data.readers import (
    POLARS_ERRORS,
    InteractionLog,
    id_column,
    log_from_frame,
    read_lightgcn_file,
    read_movielens_ratings,
    read_parquet_frame,
    read_table_lines,
    shorten,
    strip_atomic_types,
)
from slimrec.errors import ConfigError, DataError

# Suffix (before an optional .gz) -> format. Parquet is binary and has its own compression.
FILE_FORMATS = {".csv": "csv", ".tsv": "tsv", ".inter": "inter", ".parquet": "parquet"}
SEPARATORS = {"csv": ",", "tsv": "\t", "inter": "\t"}
MOVIELENS_NAMES = ("u.data", "ratings.dat")
TUPLE_ROLES = ("users", "items", "ratings", "timestamps")
_ID_EXPECTED = "integer or string ids"
_NUMBER_EXPECTED = "finite numbers"


def _expected(role: str) -> str:
    return _ID_EXPECTED if role in ("user", "item") else _NUMBER_EXPECTED


def file_format(path: str | Path) -> str:
    """Format of an interaction file from its name: csv, tsv, inter, parquet or movielens.

    ``.gz`` is allowed on the text formats; ``u.data`` and ``ratings.dat`` (plain or ``.gz``)
    are MovieLens files.
    """
    path = Path(path)
    name = path.name.removesuffix(".gz")
    if name in MOVIELENS_NAMES:
        return "movielens"
    suffix = Path(name).suffix.lower()
    kind = FILE_FORMATS.get(suffix)
    if kind is None or (kind == "parquet" and path.suffix == ".gz"):
        raise DataError(
            f"{path}: cannot tell the format from the name; expected a .csv, .tsv or .inter "
            "file (optionally .gz), a .parquet file, or MovieLens u.data / ratings.dat.")
    return kind


def looks_like_path(name: str) -> bool:
    """Whether a dataset argument names a file or folder rather than a registered dataset:
    it has a path separator or a known data suffix, or it exists on disk."""
    if "/" in name or "\\" in name:
        return True
    stripped = name.removesuffix(".gz")
    if stripped in MOVIELENS_NAMES or Path(stripped).suffix.lower() in FILE_FORMATS:
        return True
    return name.endswith(".gz") or Path(name).exists()


def _default_column(columns: list[str], wanted: str, default: str, fallback: str) -> str:
    return fallback if wanted == default and wanted not in columns and fallback in columns \
        else wanted


def read_interactions_file(
    path: str | Path,
    *,
    user_col: str = "user",
    item_col: str = "item",
    rating_col: str | None = None,
    time_col: str | None = None,
    separator: str | None = None,
) -> InteractionLog:
    """Read a user's interaction file into an ``InteractionLog`` (format from the suffix).

    - CSV (``,``) / TSV (tab), plain or ``.gz``: a header line names the columns; ``separator``
      overrides the one implied by the suffix.
    - RecBole ``.inter``: tab-separated with ``name:type`` headers; the types are dropped, and
      the default columns fall back to RecBole's ``user_id`` / ``item_id``; ``rating`` and
      ``timestamp`` are used when present and no other column was named.
    - Parquet: typed columns, checked like ``interactions_from_frame`` (rows are 0-based).
    - MovieLens ``u.data`` / ``ratings.dat``: fixed columns; the column options are ignored.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found.")
    if path.is_dir():
        raise DataError(f"{path}: is a folder; expected an interaction file.")
    kind = file_format(path)
    if kind == "movielens":
        return read_movielens_ratings(path)
    if kind == "parquet":
        return log_from_table(read_parquet_frame(path), user_col=user_col, item_col=item_col,
                              rating_col=rating_col, time_col=time_col, source=str(path))
    frame, lines = read_table_lines(path, separator or SEPARATORS[kind])
    if kind == "inter":
        frame = strip_atomic_types(frame, path)
        user_col = _default_column(frame.columns, user_col, "user", "user_id")
        item_col = _default_column(frame.columns, item_col, "item", "item_id")
        if rating_col is None and "rating" in frame.columns:
            rating_col = "rating"
        if time_col is None and "timestamp" in frame.columns:
            time_col = "timestamp"
    return log_from_frame(frame, path, user_col, item_col, rating_col, time_col, lines)


def _dataset_name(path: Path) -> str:
    name = path.name.removesuffix(".gz")
    return name if name in MOVIELENS_NAMES else Path(name).stem or name


def _check_policy(duplicates: str) -> None:
    if duplicates not in DUPLICATE_POLICIES:
        raise ConfigError(f"duplicates must be one of {', '.join(DUPLICATE_POLICIES)}; "
                          f"got {duplicates!r}.")


def load_interactions_file(
    path: str | Path,
    *,
    user_col: str = "user",
    item_col: str = "item",
    rating_col: str | None = None,
    time_col: str | None = None,
    separator: str | None = None,
    duplicates: DuplicatePolicy = "error",
    min_rating: float | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    split: SplitName | None = None,
    name: str | None = None,
) -> Interactions:
    """Load a user's own interaction file as ``Interactions`` (see ``read_interactions_file``
    for the formats and ``interactions_from_log`` for ``split`` (default "holdout";
    "leave_last_out" needs ``time_col``), ``min_rating`` and ``duplicates``: "error" | "first"
    | "count").

    A folder is read as a LightGCN split when it holds ``train.txt`` and ``test.txt`` (plain or
    ``.gz``; their split is kept, so ``split`` must stay None), else as its single ``.inter``
    file. ``name`` (default: the file name without suffixes) names the dataset.
    """
    _check_policy(duplicates)
    path = Path(path)
    if path.is_dir():
        split_files = _lightgcn_split_files(path)
        if split_files is not None:
            return _load_lightgcn_folder(path, split_files, name=name, min_rating=min_rating,
                                         split=split)
        name, path = name or path.name, _single_inter_file(path)
    log = read_interactions_file(path, user_col=user_col, item_col=item_col,
                                 rating_col=rating_col, time_col=time_col, separator=separator)
    return interactions_from_log(name or _dataset_name(path), log, split or "holdout",
                                 test_fraction, seed, min_rating, duplicates)


def _lightgcn_split_files(folder: Path) -> tuple[Path, Path] | None:
    """``train.txt`` and ``test.txt`` (plain or ``.gz``) when the folder holds both."""
    def find(filename: str) -> Path | None:
        return next((p for p in (folder / filename, folder / f"{filename}.gz") if p.is_file()),
                    None)

    train, test = find("train.txt"), find("test.txt")
    return None if train is None or test is None else (train, test)


def _load_lightgcn_folder(folder: Path, split_files: tuple[Path, Path], *, name: str | None,
                          min_rating: float | None, split: SplitName | None) -> Interactions:
    if min_rating is not None:
        raise ConfigError(f"min_rating needs ratings; the LightGCN files in {folder} have none.")
    if split is not None:
        raise ConfigError(f"{folder} holds a given train/test split (train.txt, test.txt); "
                          "split cannot be chosen.")
    train, test = split_files
    return interactions_from_split_logs(
        name or folder.name, read_lightgcn_file(train, require_items=True),
        read_lightgcn_file(test, require_items=False))


def _single_inter_file(folder: Path) -> Path:
    inter = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.name.removesuffix(".gz").endswith(".inter"))
    if len(inter) != 1:
        raise DataError(f"{folder}: expected train.txt and test.txt (LightGCN split) or exactly "
                        f"one .inter file; found {[p.name for p in inter] or 'neither'}.")
    return inter[0]


# ---------------------------------------------------------------- in-memory tables
def _ids_from_array(values: np.ndarray, column: str, role: str, source: str) -> pl.Series:
    """External ids as a polars String series; rejects floats with NaN, bools, objects..."""
    kind = values.dtype.kind
    if kind in "iu":
        return pl.Series(column, values.astype(str), dtype=pl.String)
    if kind == "U":
        return pl.Series(column, values, dtype=pl.String)
    if kind == "f":
        finite = np.isfinite(values)
        whole = finite & (np.abs(np.where(finite, values, 0)) <= 2.0**53)
        whole &= np.where(whole, values, 0) == np.floor(np.where(whole, values, 0))
        if not whole.all():
            row = int(np.argmin(whole))
            raise DataError(f"{source} row {row}: column {column!r} ({role}) has value "
                            f"{shorten(values[row].item())}; expected {_ID_EXPECTED} (a float "
                            "column is accepted only when every value is a whole number).")
        return pl.Series(column, values.astype(np.int64).astype(str), dtype=pl.String)
    if kind == "O":
        text = []
        for row, value in enumerate(values.tolist()):
            if isinstance(value, str):
                text.append(value)
            elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
                text.append(str(int(value)))
            else:
                raise DataError(f"{source} row {row}: column {column!r} ({role}) has "
                                f"{type(value).__name__} value {shorten(value)}; expected "
                                f"{_ID_EXPECTED}.")
        return pl.Series(column, text, dtype=pl.String)
    raise DataError(f"{source}: column {column!r} ({role}) has dtype {values.dtype}; "
                    f"expected {_ID_EXPECTED}.")


def _numbers_from_array(values: np.ndarray, column: str, role: str, source: str) -> np.ndarray:
    """Ratings or timestamps as float64 (datetimes become unix seconds); finite only."""
    kind = values.dtype.kind
    if kind == "M":
        missing = np.isnat(values)
        if missing.any():
            row = int(np.argmax(missing))
            raise DataError(f"{source} row {row}: column {column!r} ({role}) is missing (NaT); "
                            f"expected {_NUMBER_EXPECTED} or datetimes.")
        numbers_ = values.astype("datetime64[ns]").astype(np.int64) / 1e9
    elif kind in "biuf":
        numbers_ = values.astype(np.float64)
    elif kind == "O":
        items = values.tolist()
        for row, value in enumerate(items):
            if not isinstance(value, numbers.Real):
                raise DataError(f"{source} row {row}: column {column!r} ({role}) has "
                                f"{type(value).__name__} value {shorten(value)}; expected "
                                f"{_NUMBER_EXPECTED}.")
        numbers_ = np.asarray([float(value) for value in items], dtype=np.float64)
    else:
        raise DataError(f"{source}: column {column!r} ({role}) has dtype {values.dtype}; "
                        f"expected {_NUMBER_EXPECTED}.")
    bad = ~np.isfinite(numbers_)
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(f"{source} row {row}: column {column!r} ({role}) has value "
                        f"{shorten(values[row].item() if kind != 'O' else values[row])}; "
                        f"expected {_NUMBER_EXPECTED}.")
    return numbers_


def _polars_column(frame: pl.DataFrame, column: str, role: str, source: str) -> np.ndarray:
    series = frame[column]
    if series.null_count():
        row = int(np.argmax(series.is_null().to_numpy()))
        raise DataError(f"{source} row {row}: column {column!r} ({role}) is null; expected "
                        f"{_expected(role)}.")
    if series.dtype in (pl.Categorical, pl.Enum):
        series = series.cast(pl.String)
    if series.dtype == pl.String:
        return np.asarray(series.to_list(), dtype=object)
    if series.dtype.is_nested() or series.dtype in (pl.Binary, pl.Object, pl.Null):
        raise DataError(f"{source}: column {column!r} ({role}) has type {series.dtype}; "
                        f"expected {_expected(role)}.")
    try:
        return series.to_numpy()
    except POLARS_ERRORS as error:
        raise DataError(f"{source}: column {column!r} ({role}) of type {series.dtype} cannot "
                        f"be read ({error}).") from None


def _frame_like_column(frame: Any, column: str, role: str, source: str) -> np.ndarray:
    """One column of a pandas-like frame (``frame[column].to_numpy()``, nulls via isna)."""
    series = frame[column]
    isna = getattr(series, "isna", None)
    if isna is not None:
        missing = np.asarray(isna(), dtype=bool)
        if missing.any():
            row = int(np.argmax(missing))
            raise DataError(f"{source} row {row}: column {column!r} ({role}) is missing "
                            f"(NaN/None); expected {_expected(role)}.")
    values = series.to_numpy() if hasattr(series, "to_numpy") else np.asarray(series)
    if getattr(values.dtype, "kind", "O") not in "biufUOM":  # pandas extension arrays
        values = np.asarray(values, dtype=object)
    return values


def _as_1d(values: Any, column: str, role: str, source: str) -> np.ndarray:
    try:
        array = np.asarray(values)
    except (ValueError, TypeError) as error:
        raise DataError(f"{source}: column {column!r} ({role}) cannot be read as an array "
                        f"({error}); expected a 1-d array.") from None
    if array.ndim != 1:
        raise DataError(f"{source}: column {column!r} ({role}) has shape {array.shape}; "
                        "expected a 1-d array.")
    return array


def _columns_of(frame: Any, roles: dict[str, str | None], source: str
                ) -> dict[str, tuple[str, np.ndarray]]:
    """``{role: (column name, raw values)}`` for the roles that are asked for."""
    wanted = {role: column for role, column in roles.items() if column is not None}
    if isinstance(frame, pl.LazyFrame):
        try:
            frame = frame.collect()
        except POLARS_ERRORS as error:
            raise DataError(f"{source}: the LazyFrame cannot be collected ({error}).") from None
    if isinstance(frame, tuple | list):
        if not 2 <= len(frame) <= 4:
            raise DataError(f"{source}: a tuple of arrays must be (users, items[, ratings[, "
                            f"timestamps]]); got {len(frame)} arrays.")
        named = dict(zip(TUPLE_ROLES, frame, strict=False))
        positional = {"user": "users", "item": "items", "rating": "ratings",
                      "timestamp": "timestamps"}
        return {role: (positional[role], _as_1d(named[positional[role]], positional[role],
                                                 role, source))
                for role in ("user", "item", "rating", "timestamp")
                if positional[role] in named}
    if isinstance(frame, pl.DataFrame):
        columns = frame.columns
        get = lambda column, role: _polars_column(frame, column, role, source)  # noqa: E731
    elif isinstance(frame, Mapping):
        columns = list(frame.keys())
        get = lambda column, role: _as_1d(frame[column], column, role, source)  # noqa: E731
    elif hasattr(frame, "columns") and hasattr(frame, "__getitem__"):  # pandas and look-alikes
        columns = list(frame.columns)
        get = lambda column, role: _as_1d(  # noqa: E731
            _frame_like_column(frame, column, role, source), column, role, source)
    else:
        raise DataError(
            "interactions_from_frame: expected a pandas or polars DataFrame, a dict of column "
            "arrays or a tuple (users, items[, ratings[, timestamps]]) of numpy arrays; got "
            f"{type(frame).__name__}.")
    found = {}
    for role, column in wanted.items():
        if column not in columns:
            raise DataError(f"{source}: missing {role} column {column!r}; found columns "
                            f"{columns}.")
        found[role] = (column, get(column, role))
    return found


def log_from_table(
    frame: Any,
    *,
    user_col: str = "user",
    item_col: str = "item",
    rating_col: str | None = None,
    time_col: str | None = None,
    source: str | None = None,
) -> InteractionLog:
    """An ``InteractionLog`` from an in-memory table (see ``interactions_from_frame``);
    rows are numbered from 0 in error messages."""
    source = source or type(frame).__name__
    roles = {"user": user_col, "item": item_col, "rating": rating_col, "timestamp": time_col}
    columns = _columns_of(frame, roles, source)
    lengths = {role: len(values) for role, (_, values) in columns.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"{source}: columns have different lengths {lengths}; expected one "
                        "value per interaction in each.")
    size = lengths["user"]
    if size == 0:
        raise DataError(f"{source}: has no rows; expected at least one interaction.")
    rows = np.arange(size, dtype=np.int64)
    ids = {}
    for role in ("user", "item"):
        column, values = columns[role]
        series = _ids_from_array(values, column, role, source)
        ids[role] = id_column(series, source, rows, role, label="row")
    numbers_ = {role: _numbers_from_array(values, column, role, source)
                for role, (column, values) in columns.items() if role in ("rating", "timestamp")}
    return InteractionLog(source, ids["user"], ids["item"], rows, numbers_.get("rating"),
                          numbers_.get("timestamp"), label="row")


def interactions_from_frame(
    frame: Any,
    *,
    user_col: str = "user",
    item_col: str = "item",
    rating_col: str | None = None,
    time_col: str | None = None,
    duplicates: DuplicatePolicy = "error",
    min_rating: float | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    split: SplitName = "holdout",
    name: str = "frame",
) -> Interactions:
    """Build ``Interactions`` from an in-memory table.

    ``frame`` is a pandas or polars DataFrame (or polars LazyFrame), a dict of column name ->
    1-d array, or a tuple ``(users, items[, ratings[, timestamps]])`` of 1-d arrays (then the
    column options are ignored and ratings / timestamps are used when given).
    Ids may be integers, strings, categoricals or whole-number floats; ratings and timestamps
    numbers (timestamps may be datetimes). Anything else (NaN or null ids, object columns of
    other things, missing columns, arrays of different lengths) raises ``DataError`` naming
    the column and the row (0-based).
    """
    _check_policy(duplicates)
    log = log_from_table(frame, user_col=user_col, item_col=item_col, rating_col=rating_col,
                         time_col=time_col)
    return interactions_from_log(name, log, split, test_fraction, seed, min_rating, duplicates)
