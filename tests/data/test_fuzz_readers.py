"""Property-based fuzzing of every reader: whatever bytes a file holds, reading it either
succeeds or raises ``SlimRecError`` (never another exception, never a polars panic).

Inputs: random bytes; near-valid files (a valid file with mutated fields and lines: extra or
missing fields, huge, negative, non-numeric or non-ASCII values, NUL bytes, invalid UTF-8,
blank and duplicated lines); and gzip versions of both, intact, truncated or with a flipped
byte. Deterministic (``derandomize``) and small, so the file runs in well under a minute.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from slimrec.data.fields import FieldData
from slimrec.data.own_data import interactions_from_frame, load_interactions_file
from slimrec.errors import SlimRecError

from .reader_cases import CASES, ReaderCase, field_data_bytes, parquet_bytes

FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])

# Replacement values for one field: each breaks some reader assumption.
ODD_VALUES = ("", " ", "-5", "-0", "9" * 25, "18446744073709551616", "1e400", "-1e300", "nan",
              "inf", "NaN", "1.5", "0x1F", "+3", "1_0", "é", "١٢", "²", "\x00", "a\x00b", "\x7f",
              "\t", '"', '"unclosed', "\ufeff1", "\r", "x" * 300, "::", ",", "1 2", "null",
              "2147483648", "-9223372036854775809", "14102100", "0", "1")


@st.composite
def near_valid(draw: st.DrawFn, case: ReaderCase) -> bytes:
    """A valid file of ``case`` with a few drawn mutations of its fields and lines."""
    rows = [line.split(case.separator) for line in case.lines]
    for _ in range(draw(st.integers(1, 4))):
        row = draw(st.integers(0, len(rows) - 1))
        action = draw(st.sampled_from(("replace", "replace", "replace", "drop_field",
                                       "add_field", "drop_line", "repeat_line", "blank_line",
                                       "other_separator", "text_line")))
        fields = rows[row]
        if action == "replace" and fields:
            fields[draw(st.integers(0, len(fields) - 1))] = draw(
                st.sampled_from(ODD_VALUES) | st.text(max_size=12))
        elif action == "drop_field" and fields:
            del fields[draw(st.integers(0, len(fields) - 1))]
        elif action == "add_field":
            fields.insert(draw(st.integers(0, len(fields))), draw(st.sampled_from(ODD_VALUES)))
        elif action == "drop_line" and len(rows) > 1:
            del rows[row]
        elif action == "repeat_line":
            rows.insert(row, list(fields))
        elif action == "blank_line":
            rows.insert(row, [])
        elif action == "other_separator":
            rows[row] = (" ; ".join(fields)).split(case.separator)
        elif action == "text_line":
            rows.insert(row, [draw(st.text(max_size=40))])
    text = "\n".join(case.separator.join(fields) for fields in rows)
    text += draw(st.sampled_from(("\n", "", "\r\n", "\n\n")))
    encoding = draw(st.sampled_from(("utf-8", "utf-8", "utf-8", "latin-1", "utf-16")))
    data = text.encode(encoding, errors="replace")
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from((b"\xff", b"\x00", b"\xc3", b"\xe2\x82"))) \
            + data[at:]
    return data


@st.composite
def corrupted(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` intact, truncated, with a flipped byte or with trailing garbage."""
    how = draw(st.sampled_from(("intact", "truncate", "flip", "append")))
    if how == "truncate":
        return data[:draw(st.integers(0, max(len(data) - 1, 0)))]
    if how == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
    if how == "append":
        return data + draw(st.binary(min_size=1, max_size=16))
    return data


def file_contents(case: ReaderCase) -> st.SearchStrategy[tuple[bytes, bool]]:
    """``(bytes, gzipped?)``: random or near-valid text, and gzip versions of it."""
    text = st.binary(max_size=300) | near_valid(case) | near_valid(case)
    plain = text.map(lambda data: (data, False))
    if not case.gzip:
        return plain
    zipped = text.flatmap(lambda data: corrupted(gzip.compress(data, mtime=0))).map(
        lambda data: (data, True))
    return plain | zipped


def parses_or_raises_slimrec_error(run, *args, **kwargs) -> None:
    """Any exception but ``SlimRecError`` (and any polars panic) fails the test."""
    with contextlib.suppress(SlimRecError):
        run(*args, **kwargs)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
@FUZZ
@given(data=st.data())
def test_reader(case: ReaderCase, data: st.DataObject) -> None:
    content, zipped = data.draw(file_contents(case), label="file")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = case.write(folder, content, zipped)
        parses_or_raises_slimrec_error(case.run, folder, path)


# ---------------------------------------------------------------- JSON cache record
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)


@FUZZ
@given(document=JSON | st.dictionaries(st.text(max_size=30), st.text(max_size=70)),
       raw=st.binary(max_size=200), use_raw=st.booleans())
def test_checksum_record(document, raw: bytes, use_raw: bool) -> None:
    case = next(case for case in CASES if case.name == "checksums.json")
    content = raw if use_raw else json.dumps(document).encode()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        parses_or_raises_slimrec_error(case.run, folder, case.write(folder, content))


# ---------------------------------------------------------------- FieldData cache (.npz)
VALID_NPZ = field_data_bytes()


@FUZZ
@given(content=st.binary(max_size=300) | corrupted(VALID_NPZ) | corrupted(VALID_NPZ))
def test_field_data_cache_file(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cache.npz"
        path.write_bytes(content)
        parses_or_raises_slimrec_error(FieldData.load, path)


# ---------------------------------------------------------------- Parquet and in-memory frames
def _column(kind: str, size: int) -> st.SearchStrategy[list]:
    values = {
        "int": st.integers(-(2**63), 2**63 - 1),
        "float": st.floats(allow_nan=True, allow_infinity=True),
        "str": st.sampled_from(ODD_VALUES) | st.text(max_size=6),
        "bool": st.booleans(),
    }[kind]
    return st.lists(values | st.none(), min_size=size, max_size=size)


@st.composite
def polars_frames(draw: st.DrawFn) -> pl.DataFrame:
    size = draw(st.integers(0, 8))
    columns = {}
    for name in draw(st.lists(st.sampled_from(("user", "item", "rating", "ts", "other")),
                              min_size=1, max_size=4, unique=True)):
        kind = draw(st.sampled_from(("int", "float", "str", "bool", "list")))
        if kind == "list":
            columns[name] = pl.Series(name, [[1, 2]] * size)
        else:
            columns[name] = pl.Series(name, draw(_column(kind, size)), strict=False)
    return pl.DataFrame(columns)


@FUZZ
@given(frame=polars_frames(), data=st.data())
def test_parquet_file(frame: pl.DataFrame, data: st.DataObject) -> None:
    content = data.draw(corrupted(parquet_bytes(frame)) | st.binary(max_size=200))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.parquet"
        path.write_bytes(content)
        parses_or_raises_slimrec_error(load_interactions_file, path, rating_col="rating",
                                       time_col="ts", duplicates="count")


ARRAY_DTYPES = st.sampled_from((np.int64, np.uint64, np.int8, np.float64, np.float32, np.bool_,
                                np.dtype("U4"), np.dtype("datetime64[s]"), np.complex64))


@st.composite
def arrays(draw: st.DrawFn, size: int) -> np.ndarray:
    if draw(st.integers(0, 5)) == 0:  # an object array of mixed Python values
        values = draw(st.lists(st.integers() | st.text(max_size=4) | st.none()
                               | st.floats() | st.booleans(), min_size=size, max_size=size))
        array = np.empty(size, dtype=object)
        array[:] = values
        return array
    shape = size if draw(st.integers(0, 9)) else (size, 2)
    return draw(hnp.arrays(draw(ARRAY_DTYPES), shape))


@st.composite
def tables(draw: st.DrawFn) -> object:
    size = draw(st.integers(0, 10))
    count = draw(st.integers(1, 5))
    columns = [draw(arrays(size if draw(st.integers(0, 7)) else size + 1)) for _ in range(count)]
    shape = draw(st.sampled_from(("tuple", "dict", "polars", "list", "other")))
    if shape == "tuple":
        return tuple(columns)
    names = ("user", "item", "rating", "timestamp", "x")
    if shape == "dict":
        return dict(zip(names, columns, strict=False))
    if shape == "polars":
        try:
            return pl.DataFrame(dict(zip(names, columns, strict=False)))
        except Exception:  # polars refuses some arrays itself: not our reader's business
            return {}
    if shape == "list":
        return [column.tolist() for column in columns]
    return draw(st.sampled_from((None, 3, "user,item", b"\x00", np.zeros(3))))


@FUZZ
@given(frame=tables(), duplicates=st.sampled_from(("error", "first", "count")))
def test_frame(frame: object, duplicates: str) -> None:
    parses_or_raises_slimrec_error(interactions_from_frame, frame, rating_col="rating",
                                   time_col="timestamp", duplicates=duplicates)
