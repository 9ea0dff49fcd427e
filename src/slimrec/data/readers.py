"""Readers for interaction files. Each validates its input and names file, line and field.

No input file may end in a traceback: undecodable bytes, NUL bytes, a truncated or corrupt
``.gz``, ids out of range, empty files and ragged rows all raise ``DataError`` naming the file,
the line (where one applies) and what was expected.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from slimrec.errors import DataError

# Longest accepted external id. Ids are stored as fixed-width numpy strings, so one huge
# "id" (a garbage line) would make every row that wide; real ids are far shorter.
MAX_ID_LENGTH = 256
# Largest id of the LightGCN format: ids are stored as int64.
MAX_INT_ID = np.iinfo(np.int64).max
# polars reports Rust panics as PanicException, which derives from BaseException.
POLARS_ERRORS: tuple[type[BaseException], ...] = (Exception, pl.exceptions.PanicException)
_CONTROL_CHARS = r"[\x00-\x1f\x7f]"
_GZIP_ERRORS = (OSError, EOFError, zlib.error)


def shorten(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages about arbitrary input."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 5]}...{text[-2:]}"


def _error_text(error: BaseException, limit: int = 200) -> str:
    text = str(error).strip().replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."


def open_text(path: str | Path) -> io.TextIOBase:
    """Open a plain or gzip-compressed text file for reading (UTF-8).

    Decoding happens while reading, so callers that must never fail with a traceback iterate
    with ``iter_lines`` instead, which turns every decoding problem into a ``DataError``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found.")
    if is_gzip(path):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def _decode_block(path: Path, block: bytes, first_line: int) -> list[str]:
    """Lines of a block of whole lines (the last one may lack its newline), decoded."""
    nul = block.find(b"\x00")
    if nul >= 0:
        line = first_line + block.count(b"\n", 0, nul)
        column = nul - (block.rfind(b"\n", 0, nul) + 1) + 1
        raise DataError(f"{path} line {line}: contains a NUL byte (column {column}); expected "
                        "UTF-8 text, not a binary file.")
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as error:
        line = first_line + block.count(b"\n", 0, error.start)
        column = error.start - (block.rfind(b"\n", 0, error.start) + 1) + 1
        raise DataError(f"{path} line {line}: byte {block[error.start]:#04x} at column {column} "
                        "is not valid UTF-8; expected UTF-8 text.") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def is_gzip(path: Path) -> bool:
    """Whether a file starts with the gzip magic bytes. Compression is told by content, as
    polars does, so a plain file named ``.gz`` (or a gzip file without the suffix) reads."""
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def iter_lines(path: str | Path, block_size: int = 1 << 20) -> Iterator[tuple[int, str]]:
    """``(1-based line number, text without the line ending)`` of a plain or gzip UTF-8 file.

    A NUL byte, invalid UTF-8, a truncated or corrupt gzip stream or an unreadable file raise
    ``DataError`` naming the file and the line. A UTF-8 byte-order mark on line 1 is dropped.
    Lines end at ``\n`` (a trailing ``\r`` is dropped too).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found.")
    line_number = 0
    try:
        compressed = is_gzip(path)
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as handle:
            pending: list[bytes] = []  # pieces of a line longer than one block
            while True:
                block = handle.read(block_size)
                cut = block.rfind(b"\n") + 1 if block else len(block)
                if block and cut == 0:
                    pending.append(block)
                    continue
                data = b"".join([*pending, block[:cut]])
                pending = [block[cut:]]
                if data:
                    for offset, text in enumerate(_decode_block(path, data, line_number + 1)):
                        if line_number + offset == 0:
                            text = text.removeprefix("\ufeff")
                        yield line_number + offset + 1, text.removesuffix("\r")
                    line_number += data.count(b"\n") + (not data.endswith(b"\n"))
                if not block:
                    break
    except _GZIP_ERRORS as error:
        if path.suffix == ".gz" or is_gzip(path):
            where = f" after line {line_number}" if line_number else ""
            raise DataError(
                f"{path}: corrupt or truncated gzip data{where} ({_error_text(error)}); "
                "expected a complete .gz file. Download or compress it again.") from None
        raise DataError(f"{path}: cannot be read ({_error_text(error)}).") from None


@dataclass(frozen=True)
class InteractionLog:
    """Interactions as parallel arrays of external ids (strings), one entry per file row.

    ``lines`` holds the line (``label`` "line", 1-based) or row (``label`` "row", 0-based, for
    in-memory frames and Parquet) of each entry in ``source``, so later checks (duplicates,
    unknown ids) can name where the problem is.
    """

    source: str
    users: np.ndarray
    items: np.ndarray
    lines: np.ndarray
    ratings: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    label: str = "line"

    def __len__(self) -> int:
        return len(self.users)

    def where(self, index: int) -> str:
        """``"<source> line <n>"`` of entry ``index``, for error messages."""
        return f"{self.source} {self.label} {self.lines[index]}"

    def select(self, mask: np.ndarray) -> InteractionLog:
        """The entries of a boolean mask or an index array."""
        def pick(array: np.ndarray | None) -> np.ndarray | None:
            return None if array is None else array[mask]

        return InteractionLog(self.source, self.users[mask], self.items[mask], self.lines[mask],
                              pick(self.ratings), pick(self.timestamps), self.label)


def id_column(series: pl.Series, source: str | Path, lines: np.ndarray, role: str,
              label: str = "line") -> np.ndarray:
    """Check a string column of external ids and return it stripped, as a numpy str array.

    Rejects empty ids, ids with control characters (NUL, tab, newline...) and ids longer than
    ``MAX_ID_LENGTH``, naming the line (or row) of the first offender.
    """
    text = series.cast(pl.String).str.strip_chars()
    checks = (
        (text.is_null() | (text == ""), "is empty"),
        (text.str.contains(_CONTROL_CHARS), "contains a control character"),
        (text.str.len_chars() > MAX_ID_LENGTH, f"is longer than {MAX_ID_LENGTH} characters"),
    )
    for mask, problem in checks:
        bad = mask.fill_null(False).to_numpy()
        if bad.any():
            row = int(np.argmax(bad))
            value = "" if problem == "is empty" else f": {shorten(series[row])}"
            raise DataError(
                f"{source} {label} {lines[row]}: field {series.name!r} ({role} id) "
                f"{problem}{value}; expected a non-empty id of printable characters, at most "
                f"{MAX_ID_LENGTH} long."
            )
    return text.to_numpy().astype(str)


def log_from_tokens(path: str | Path, users: list[str], items: list[str], lines: list[int],
                    ratings: list[float] | None = None,
                    timestamps: list[float] | None = None) -> InteractionLog:
    """An ``InteractionLog`` from a text reader's parallel lists, its ids checked by line."""
    line_array = np.asarray(lines, dtype=np.int64)
    return InteractionLog(str(path),
                          id_column(pl.Series("user", users, dtype=pl.String), path,
                                    line_array, "user"),
                          id_column(pl.Series("item", items, dtype=pl.String), path,
                                    line_array, "item"),
                          line_array,
                          None if ratings is None else np.asarray(ratings),
                          None if timestamps is None else np.asarray(timestamps))


# ---------------------------------------------------------------- LightGCN format
_DIGITS = re.compile(r"[0-9 \t]*")


def _parse_id(token: str, path: Path, line_number: int, what: str) -> int:
    """A LightGCN id: a non-negative decimal integer (ASCII digits) that fits in int64."""
    digits = token[1:] if token[:1] == "-" else token
    if not (digits.isascii() and digits.isdigit()):
        raise DataError(f"{path} line {line_number}: {what} id {shorten(token)} is not an "
                        "integer; expected non-negative decimal ids (ASCII digits).")
    if token[:1] == "-":
        shown = token if len(token) <= 40 else f"{token[:30]}...({len(token)} digits)"
        raise DataError(f"{path} line {line_number}: {what} id {shown} is negative; "
                        "expected non-negative ids.")
    value = int(digits)
    if value > MAX_INT_ID:
        raise DataError(f"{path} line {line_number}: {what} id {shorten(token)} is too large; "
                        f"expected ids up to {MAX_INT_ID} (int64).")
    return value


def _item_row(tokens: list[str], line: str, path: Path, line_number: int) -> np.ndarray:
    if _DIGITS.fullmatch(line) and all(len(token) <= 18 for token in tokens):
        return np.asarray(tokens, dtype=np.int64)  # fast path: plain digits that fit in int64
    return np.asarray([_parse_id(token, path, line_number, "item") for token in tokens],
                      dtype=np.int64)


def read_lightgcn_file(path: str | Path, *, require_items: bool) -> InteractionLog:
    """Read one LightGCN file (``user item item ...`` per line, plain or ``.gz``)."""
    path = Path(path)
    users, items, lines = [], [], []
    seen_users: dict[int, int] = {}
    for line_number, line in iter_lines(path):
        tokens = line.split()
        if not tokens:
            continue
        user = _parse_id(tokens[0], path, line_number, "user")
        if user in seen_users:
            raise DataError(
                f"{path} line {line_number}: user {user} already has a line "
                f"(line {seen_users[user]}); each user must appear on one line."
            )
        seen_users[user] = line_number
        if len(tokens) == 1 and require_items:
            raise DataError(f"{path} line {line_number}: user {user} has no train items.")
        row = _item_row(tokens[1:], line, path, line_number)
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
        raise DataError(f"{path}: file is empty (no interaction lines); expected lines of "
                        "'user item item ...'.")
    concat = np.concatenate
    return InteractionLog(str(path), concat(users).astype(str), concat(items).astype(str),
                          concat(lines))


# ---------------------------------------------------------------- delimited tables
def _scan_for_bad_row(path: Path, separator: str) -> DataError | None:
    """Find the first row whose field count differs from the header (slow path for errors).

    Undecodable or corrupt input raises ``DataError`` from ``iter_lines``.
    """
    reader = csv.reader((f"{line}\n" for _, line in iter_lines(path)), delimiter=separator)
    try:
        header = next(reader, None)
        if header is None:
            return DataError(f"{path}: file is empty; expected a header line.")
        for row in reader:
            if row and len(row) != len(header):
                return DataError(
                    f"{path} line {reader.line_num}: expected {len(header)} fields "
                    f"({separator!r}-separated), found {len(row)}."
                )
    except csv.Error as error:
        return DataError(f"{path} line {reader.line_num}: {_error_text(error)}; expected "
                         f"{separator!r}-separated fields.")
    return None


def text_separator(path: Path) -> str:
    """Field separator implied by the suffix: tab for .tsv/.inter/.txt, else comma."""
    stem_suffix = Path(path.stem).suffix if path.suffix == ".gz" else path.suffix
    return "\t" if stem_suffix in (".tsv", ".inter", ".txt") else ","


def read_parquet_frame(path: str | Path) -> pl.DataFrame:
    """A Parquet file as a polars frame with its own column types."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found.")
    try:
        return pl.read_parquet(path)
    except POLARS_ERRORS as error:  # polars raises many types (and panics) for corrupt files
        raise DataError(f"{path}: not a readable Parquet file ({_error_text(error)}).") from None


def read_table(path: str | Path, separator: str | None = None) -> pl.DataFrame:
    """Read a CSV/TSV (plain or ``.gz``) or Parquet file with every column as a string.

    A blank line of a text file becomes an all-null row (polars), so row ``k`` is line
    ``k + 2``; ``read_table_lines`` drops those rows and returns the line numbers.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found.")
    if path.suffix == ".parquet":
        frame = read_parquet_frame(path)
        try:
            return frame.with_columns(pl.all().cast(pl.String))
        except POLARS_ERRORS as error:
            raise DataError(f"{path}: a column cannot be read as text ({_error_text(error)}); "
                            "expected columns of numbers or strings.") from None
    if separator is None:
        separator = text_separator(path)
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty; expected a header line and rows.")
    try:
        frame = pl.read_csv(path, separator=separator, infer_schema=False, quote_char='"')
    except POLARS_ERRORS as error:
        bad = _scan_for_bad_row(path, separator)
        raise (bad or DataError(f"{path}: cannot be parsed as a {separator!r}-separated table "
                                f"({_error_text(error)}).")) from None
    if frame.height == 0:
        raise DataError(f"{path}: file has a header but no rows.")
    _reject_nul(frame, path)
    return frame


def _reject_nul(frame: pl.DataFrame, path: Path) -> None:
    """polars reads NUL bytes as text; a NUL means binary content, so name where it is."""
    if any("\x00" in name for name in frame.columns):
        raise DataError(f"{path} line 1: the header contains a NUL byte; expected UTF-8 text, "
                        "not a binary file.")
    nul = frame.select(pl.any_horizontal(pl.all().str.contains("\x00", literal=True))
                       ).to_series().fill_null(False).to_numpy()
    if nul.any():
        raise DataError(f"{path} line {int(np.argmax(nul)) + 2}: contains a NUL byte; expected "
                        "UTF-8 text, not a binary file.")


def read_table_lines(path: str | Path, separator: str | None = None
                     ) -> tuple[pl.DataFrame, np.ndarray]:
    """``read_table`` without the rows of blank lines, and the file line of each kept row."""
    frame = read_table(path, separator)
    lines = np.arange(2, frame.height + 2, dtype=np.int64)
    if Path(path).suffix == ".parquet":
        return frame, lines
    blank = frame.select(pl.all_horizontal(pl.all().is_null())).to_series().to_numpy()
    if blank.any():
        frame, lines = frame.filter(pl.Series(~blank)), lines[~blank]
        if frame.height == 0:
            raise DataError(f"{path}: file has a header but no rows.")
    return frame, lines


def strip_atomic_types(frame: pl.DataFrame, path: str | Path) -> pl.DataFrame:
    """Drop the ``:type`` of RecBole atomic headers (``user_id:token`` -> ``user_id``)."""
    renamed = {column: column.split(":", 1)[0] for column in frame.columns}
    names = list(renamed.values())
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataError(f"{path} line 1: column {repeated[0]!r} appears more than once in the "
                        f"header {frame.columns}; expected one 'name:type' per column.")
    return frame.rename(renamed)


def _column(frame: pl.DataFrame, path: str | Path, name: str, role: str) -> str:
    if name in frame.columns:
        return name
    raise DataError(
        f"{path}: missing {role} column {name!r}; the file has columns {frame.columns}."
    )


def _numeric(frame: pl.DataFrame, column: str, path: str | Path,
             lines: np.ndarray | None = None, label: str = "line") -> np.ndarray:
    if lines is None:
        lines = np.arange(2, frame.height + 2, dtype=np.int64)
    values = frame[column].cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
    bad = (values.is_null() | values.is_nan() | values.is_infinite()).to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raw = frame[column][row]
        shown = "is empty" if raw is None or not str(raw).strip() else \
            f"has value {shorten(raw)}, which is not a finite number"
        raise DataError(f"{path} {label} {lines[row]}: field {column!r} {shown}; expected a "
                        "finite number.")
    return values.to_numpy()


def log_from_frame(
    frame: pl.DataFrame,
    path: str | Path,
    user_col: str,
    item_col: str,
    rating_col: str | None = None,
    time_col: str | None = None,
    lines: np.ndarray | None = None,
    label: str = "line",
) -> InteractionLog:
    """Turn a string table into an ``InteractionLog``, checking for missing fields.

    ``lines`` gives the line of each row (default ``2, 3, ...``: one header line).
    """
    if lines is None:
        lines = np.arange(2, frame.height + 2, dtype=np.int64)
    for role, name in (("user", user_col), ("item", item_col)):
        _column(frame, path, name, role)
    users = id_column(frame[user_col], path, lines, "user", label)
    items = id_column(frame[item_col], path, lines, "item", label)
    ratings = timestamps = None
    if rating_col is not None:
        ratings = _numeric(frame, _column(frame, path, rating_col, "rating"), path, lines, label)
    if time_col is not None:
        timestamps = _numeric(frame, _column(frame, path, time_col, "timestamp"), path, lines,
                              label)
    return InteractionLog(str(path), users, items, np.asarray(lines, dtype=np.int64), ratings,
                          timestamps, label)


def read_atomic_inter(path: str | Path) -> InteractionLog:
    """Read a RecBole atomic ``.inter`` file (tab-separated, ``name:type`` header)."""
    frame, lines = read_table_lines(path, separator="\t")
    frame = strip_atomic_types(frame, path)
    rating = "rating" if "rating" in frame.columns else None
    timestamp = "timestamp" if "timestamp" in frame.columns else None
    return log_from_frame(frame, path, "user_id", "item_id", rating, timestamp, lines)


def read_movielens_ratings(path: str | Path) -> InteractionLog:
    """Read MovieLens ``u.data`` (tab) or ``ratings.dat`` (``::``) files."""
    path = Path(path)
    separator = "::" if path.name.startswith("ratings.dat") else "\t"
    users, items, ratings, stamps, lines = [], [], [], [], []
    for line_number, line in iter_lines(path):
        if not line.strip():
            continue
        fields = line.split(separator)
        if len(fields) != 4:
            raise DataError(
                f"{path} line {line_number}: expected 4 fields (user, item, rating, "
                f"timestamp) separated by {separator!r}, found {len(fields)}."
            )
        try:
            rating, stamp = float(fields[2]), float(fields[3])
        except ValueError:
            rating = stamp = math.nan
        if not (math.isfinite(rating) and math.isfinite(stamp)):
            raise DataError(
                f"{path} line {line_number}: rating {shorten(fields[2])} or timestamp "
                f"{shorten(fields[3])} is not a finite number."
            )
        ratings.append(rating)
        stamps.append(stamp)
        users.append(fields[0])
        items.append(fields[1])
        lines.append(line_number)
    if not users:
        raise DataError(f"{path}: file is empty; expected lines of user{separator}item"
                        f"{separator}rating{separator}timestamp.")
    return log_from_tokens(path, users, items, lines, ratings, stamps)
