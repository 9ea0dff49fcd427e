"""Readers for interaction files. Each validates its input and names file, line and field."""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from slimrec.errors import DataError


def open_text(path: str | Path) -> io.TextIOBase:
    """Open a plain or gzip-compressed text file for reading."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found.")
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


@dataclass(frozen=True)
class InteractionLog:
    """Interactions as parallel arrays of external ids (strings), one entry per file row.

    ``lines`` holds the 1-based line of each entry in ``source``, so later checks
    (duplicates, unknown ids) can name where the problem is.
    """

    source: str
    users: np.ndarray
    items: np.ndarray
    lines: np.ndarray
    ratings: np.ndarray | None = None
    timestamps: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.users)

    def select(self, mask: np.ndarray) -> InteractionLog:
        def pick(array: np.ndarray | None) -> np.ndarray | None:
            return None if array is None else array[mask]

        return InteractionLog(self.source, self.users[mask], self.items[mask], self.lines[mask],
                              pick(self.ratings), pick(self.timestamps))


# ---------------------------------------------------------------- LightGCN format
def _parse_id(token: str, path: Path, line_number: int, what: str) -> int:
    try:
        value = int(token)
    except ValueError:
        raise DataError(
            f"{path} line {line_number}: {what} id {token!r} is not an integer.") from None
    if value < 0:
        raise DataError(f"{path} line {line_number}: {what} id {value} is negative.")
    return value


def _iter_lightgcn_lines(path: Path) -> Iterator[tuple[int, int, list[str]]]:
    with open_text(path) as handle:
        for line_number, line in enumerate(handle, start=1):
            tokens = line.split()
            if not tokens:
                continue
            user = _parse_id(tokens[0], path, line_number, "user")
            yield line_number, user, tokens[1:]


def read_lightgcn_file(path: str | Path, *, require_items: bool) -> InteractionLog:
    """Read one LightGCN file (``user item item ...`` per line, plain or ``.gz``)."""
    path = Path(path)
    users, items, lines = [], [], []
    seen_users: dict[int, int] = {}
    for line_number, user, tokens in _iter_lightgcn_lines(path):
        if user in seen_users:
            raise DataError(
                f"{path} line {line_number}: user {user} already has a line "
                f"(line {seen_users[user]}); each user must appear on one line."
            )
        seen_users[user] = line_number
        if not tokens and require_items:
            raise DataError(f"{path} line {line_number}: user {user} has no train items.")
        try:
            row = np.asarray(tokens, dtype=np.int64)
        except ValueError:
            for token in tokens:
                _parse_id(token, path, line_number, "item")
            raise
        if row.size and row.min() < 0:
            raise DataError(f"{path} line {line_number}: item id {row.min()} is negative.")
        if np.unique(row).size != row.size:
            values, counts = np.unique(row, return_counts=True)
            raise DataError(
                f"{path} line {line_number}: duplicate interaction: user {user} lists item "
                f"{values[counts > 1][0]} more than once."
            )
        users.append(np.full(row.size, user, dtype=np.int64))
        items.append(row)
        lines.append(np.full(row.size, line_number, dtype=np.int64))
    if not seen_users:
        raise DataError(f"{path}: file is empty (no interaction lines).")
    concat = np.concatenate
    return InteractionLog(str(path), concat(users).astype(str), concat(items).astype(str),
                          concat(lines))


# ---------------------------------------------------------------- delimited tables
def _scan_for_bad_row(path: Path, separator: str) -> DataError | None:
    """Find the first row whose field count differs from the header (slow path for errors)."""
    with open_text(path) as handle:
        reader = csv.reader(handle, delimiter=separator)
        header = next(reader, None)
        if header is None:
            return DataError(f"{path}: file is empty.")
        for row in reader:
            if row and len(row) != len(header):
                return DataError(
                    f"{path} line {reader.line_num}: expected {len(header)} fields "
                    f"({separator!r}-separated), found {len(row)}."
                )
    return None


def read_table(path: str | Path, separator: str | None = None) -> pl.DataFrame:
    """Read a CSV/TSV (plain or ``.gz``) or Parquet file with every column as a string."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found.")
    if path.suffix == ".parquet":
        try:
            frame = pl.read_parquet(path)
        except Exception as error:  # polars raises many types for corrupt files
            raise DataError(f"{path}: not a readable Parquet file ({error}).") from None
        return frame.with_columns(pl.all().cast(pl.String))
    if separator is None:
        stem_suffix = Path(path.stem).suffix if path.suffix == ".gz" else path.suffix
        separator = "\t" if stem_suffix in (".tsv", ".inter", ".txt") else ","
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty.")
    try:
        frame = pl.read_csv(path, separator=separator, infer_schema=False, quote_char='"')
    except Exception as error:
        bad = _scan_for_bad_row(path, separator)
        raise (bad or DataError(f"{path}: cannot be parsed as a table ({error}).")) from None
    if frame.height == 0:
        raise DataError(f"{path}: file has a header but no rows.")
    return frame


def _column(frame: pl.DataFrame, path: str | Path, name: str, role: str) -> str:
    if name in frame.columns:
        return name
    raise DataError(
        f"{path}: missing {role} column {name!r}; the file has columns {frame.columns}."
    )


def _numeric(frame: pl.DataFrame, column: str, path: str | Path) -> np.ndarray:
    values = frame[column].cast(pl.Float64, strict=False)
    bad = values.is_null() | values.is_nan()
    if bad.any():
        row = int(bad.arg_max())
        raise DataError(
            f"{path} line {row + 2}: field {column!r} has value {frame[column][row]!r}, "
            "which is not a finite number."
        )
    return values.to_numpy()


def log_from_frame(
    frame: pl.DataFrame,
    path: str | Path,
    user_col: str,
    item_col: str,
    rating_col: str | None = None,
    time_col: str | None = None,
) -> InteractionLog:
    """Turn a string table into an ``InteractionLog``, checking for missing fields."""
    columns = {"user": user_col, "item": item_col}
    for role, name in columns.items():
        _column(frame, path, name, role)
        empty = frame[name].is_null() | (frame[name].str.strip_chars() == "")
        if empty.any():
            row = int(empty.arg_max())
            raise DataError(f"{path} line {row + 2}: field {name!r} ({role} id) is empty.")
    ratings = timestamps = None
    if rating_col is not None:
        ratings = _numeric(frame, _column(frame, path, rating_col, "rating"), path)
    if time_col is not None:
        timestamps = _numeric(frame, _column(frame, path, time_col, "timestamp"), path)
    lines = np.arange(2, frame.height + 2, dtype=np.int64)
    users = frame[user_col].str.strip_chars().to_numpy().astype(str)
    items = frame[item_col].str.strip_chars().to_numpy().astype(str)
    return InteractionLog(str(path), users, items, lines, ratings, timestamps)


def read_atomic_inter(path: str | Path) -> InteractionLog:
    """Read a RecBole atomic ``.inter`` file (tab-separated, ``name:type`` header)."""
    frame = read_table(path, separator="\t")
    renamed = {column: column.split(":", 1)[0] for column in frame.columns}
    frame = frame.rename(renamed)
    rating = "rating" if "rating" in frame.columns else None
    timestamp = "timestamp" if "timestamp" in frame.columns else None
    return log_from_frame(frame, path, "user_id", "item_id", rating, timestamp)


def read_csv_log(
    path: str | Path,
    user_col: str = "user",
    item_col: str = "item",
    rating_col: str | None = None,
    time_col: str | None = None,
    separator: str | None = None,
) -> InteractionLog:
    """Read a CSV/TSV/Parquet interaction table with columns chosen by name."""
    frame = read_table(path, separator)
    return log_from_frame(frame, path, user_col, item_col, rating_col, time_col)


def read_movielens_ratings(path: str | Path) -> InteractionLog:
    """Read MovieLens ``u.data`` (tab) or ``ratings.dat`` (``::``) files."""
    path = Path(path)
    separator = "::" if path.name.startswith("ratings.dat") else "\t"
    users, items, ratings, stamps, lines = [], [], [], [], []
    with open_text(path) as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            fields = line.rstrip("\n").split(separator)
            if len(fields) != 4:
                raise DataError(
                    f"{path} line {line_number}: expected 4 fields (user, item, rating, "
                    f"timestamp) separated by {separator!r}, found {len(fields)}."
                )
            try:
                ratings.append(float(fields[2]))
                stamps.append(float(fields[3]))
            except ValueError:
                raise DataError(
                    f"{path} line {line_number}: rating {fields[2]!r} or timestamp "
                    f"{fields[3]!r} is not a number."
                ) from None
            users.append(fields[0])
            items.append(fields[1])
            lines.append(line_number)
    if not users:
        raise DataError(f"{path}: file is empty.")
    return InteractionLog(str(path), np.asarray(users), np.asarray(items), np.asarray(lines),
                          np.asarray(ratings), np.asarray(stamps))
