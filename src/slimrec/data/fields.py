"""``FieldData``: CTR rows as compact int32 ids per field, a 0/1 label and a seeded split.

Every field is categorical. Numeric columns are turned into categories by the log-square binning
of the Criteo competition winners (``v > 2 -> floor(ln(v)^2)``, small values kept as they are),
so one embedding table per field serves every column kind. Multi-hot columns (genres) are stored
as CSR-style ``offsets``/``values`` per field and pooled by the model (mean of the rows).

Vocabularies are built on the train split only. Id 0 of every field is its OOV bucket: values
unseen in train, or seen fewer than ``min_count`` times there, map to 0 — at test time too.

Encoding reads its input batch by batch (``encode_batches``) in one pass: each batch's values get
provisional ids in order of first appearance (a polars join against the values seen so far, no
Python loop per row); once all rows are in, the split is drawn, train counts decide the final
vocabularies, and one remap array per field turns provisional ids into final ones. Only the id
arrays and the vocabularies are held in memory, never the text.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from slimrec.data.build import encode, vocabulary
from slimrec.data.interactions import csr_from_pairs
from slimrec.data.readers import MAX_ID_LENGTH, POLARS_ERRORS, iter_lines, shorten
from slimrec.errors import ConfigError, DataError
from slimrec.io import atomic_write

OOV_ID = 0
OOV_TOKEN = "<OOV>"
SPLITS = ("train", "val", "test")
# Bump when encoding changes, so that cached arrays from older code are not reused.
ENCODING_VERSION = 1


@dataclass(frozen=True)
class Field:
    """One categorical field: ``vocabulary[k]`` is the raw value of id ``k``; id 0 is OOV."""

    name: str
    vocabulary: np.ndarray
    multi_hot: bool = False

    @property
    def num_embeddings(self) -> int:
        return len(self.vocabulary)

    def encode(self, values: Iterable[str]) -> np.ndarray:
        """Ids of raw values (int32); values outside the vocabulary get the OOV id 0."""
        values = np.asarray(values if isinstance(values, np.ndarray) else list(values),
                            dtype=str)
        known = self.vocabulary[1:]
        if len(known) == 0:
            return np.zeros(len(values), dtype=np.int32)
        order = np.argsort(known, kind="stable")
        position = np.searchsorted(known[order], values).clip(max=len(known) - 1)
        found = known[order][position] == values
        return np.where(found, order[position] + 1, OOV_ID).astype(np.int32)


@dataclass(frozen=True)
class FieldSchema:
    """Which columns of a raw table are what. Fields keep this order: categorical, numeric,
    multi-hot. ``multi_hot`` pairs a column with the separator of its values."""

    label: str
    categorical: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()
    multi_hot: tuple[tuple[str, str], ...] = ()
    user_field: str | None = None
    item_field: str | None = None

    @property
    def single(self) -> tuple[str, ...]:
        return self.categorical + self.numeric

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.label, *self.single, *(name for name, _ in self.multi_hot))


@dataclass(frozen=True)
class FieldData:
    """Encoded CTR rows.

    - ``ids``: int32 ``(num_rows, num_single_fields)``, column ``j`` is ``single_fields[j]``;
    - ``bags[name] = (offsets, values)``: int64 ``(num_rows + 1,)`` and int32 ``(nnz,)``; row
      ``r`` of a multi-hot field holds ``values[offsets[r]:offsets[r + 1]]`` (at least one id);
    - ``labels``: int8 ``(num_rows,)`` of 0/1; ``split``: int8 ``(num_rows,)``, an index into
      ``SPLITS``.
    """

    name: str
    fields: tuple[Field, ...]
    ids: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    bags: Mapping[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    user_field: str | None = None
    item_field: str | None = None
    source: str = ""

    def __post_init__(self) -> None:
        rows = len(self.labels)
        if self.ids.shape != (rows, len(self.single_fields)):
            raise DataError(f"{self.name}: ids have shape {self.ids.shape}, expected "
                            f"({rows}, {len(self.single_fields)}).")
        if self.split.shape != (rows,):
            raise DataError(f"{self.name}: split has {len(self.split)} rows, expected {rows}.")
        if sorted(self.bags) != sorted(f.name for f in self.bag_fields):
            raise DataError(f"{self.name}: bags {sorted(self.bags)} do not match the multi-hot "
                            f"fields {[f.name for f in self.bag_fields]}.")
        for role, name in (("user_field", self.user_field), ("item_field", self.item_field)):
            if name is not None and name not in self.field_names:
                raise DataError(f"{self.name}: {role} {name!r} is not one of the fields "
                                f"{self.field_names}.")

    # ------------------------------------------------------------------ shape
    @property
    def num_rows(self) -> int:
        return len(self.labels)

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def single_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if not f.multi_hot)

    @property
    def bag_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.multi_hot)

    def field(self, name: str) -> Field:
        for candidate in self.fields:
            if candidate.name == name:
                return candidate
        raise ConfigError(f"{self.name} has no field {name!r}; fields: {self.field_names}.")

    def rows(self, split: str) -> np.ndarray:
        """Row indices (int64) of ``split`` ("train", "val" or "test")."""
        if split not in SPLITS:
            raise ConfigError(f"split must be one of {SPLITS}; got {split!r}.")
        return np.flatnonzero(self.split == SPLITS.index(split))

    # ------------------------------------------------------------------ statistics
    def frequencies(self, name: str) -> np.ndarray:
        """Train occurrences of each id of field ``name``, int64 ``(num_embeddings,)``."""
        target = self.field(name)
        train = self.split == SPLITS.index("train")
        if target.multi_hot:
            offsets, values = self.bags[name]
            ids = values[np.repeat(train, np.diff(offsets))]
        else:
            ids = self.ids[train, self.single_fields.index(target)]
        return np.bincount(ids, minlength=target.num_embeddings).astype(np.int64)

    def interactions(self) -> sp.csr_matrix | None:
        """Binary ``(user ids, item ids)`` CSR of the positive train rows; None without both
        a user and an item field. Row/column 0 (the OOV ids) stay empty by construction."""
        if self.user_field is None or self.item_field is None:
            return None
        positive = (self.split == SPLITS.index("train")) & (self.labels == 1)
        user_column = self.single_fields.index(self.field(self.user_field))
        item_column = self.single_fields.index(self.field(self.item_field))
        shape = (self.field(self.user_field).num_embeddings,
                 self.field(self.item_field).num_embeddings)
        return csr_from_pairs(self.ids[positive, user_column], self.ids[positive, item_column],
                              shape)

    def stats(self) -> dict[str, Any]:
        counts = {split: int((self.split == code).sum()) for code, split in enumerate(SPLITS)}
        return {"name": self.name, "rows": self.num_rows, **counts,
                "positive_rate": float(self.labels.mean()) if self.num_rows else 0.0,
                "fields": {f.name: f.num_embeddings for f in self.fields}}

    # ------------------------------------------------------------------ cache
    def save(self, path: str | Path) -> Path:
        """Write every array to one ``.npz`` (atomically; loads without pickle)."""
        meta = {"name": self.name, "source": self.source, "user_field": self.user_field,
                "item_field": self.item_field, "version": ENCODING_VERSION,
                "fields": [{"name": f.name, "multi_hot": f.multi_hot} for f in self.fields]}
        arrays = {"ids": self.ids, "labels": self.labels, "split": self.split,
                  "meta": np.asarray(json.dumps(meta))}
        for index, f in enumerate(self.fields):
            arrays[f"vocabulary_{index}"] = f.vocabulary
            if f.multi_hot:
                arrays[f"offsets_{index}"], arrays[f"values_{index}"] = self.bags[f.name]

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)

        return atomic_write(path, write)

    @classmethod
    def load(cls, path: str | Path) -> FieldData:
        """Read a file written by ``save``. A truncated, corrupt or foreign file, or one of
        another encoding version, raises ``DataError`` naming it (``load_field_data`` then
        treats it as a cache miss); the arrays are checked to be consistent (ids within their
        vocabularies, 0/1 labels, valid split codes and bag offsets)."""
        try:
            with np.load(path, allow_pickle=False) as saved:
                if not hasattr(saved, "files"):
                    raise DataError(f"{path}: holds a single array, not a FieldData .npz.")
                meta = json.loads(str(saved["meta"]))
                if not isinstance(meta, dict):
                    raise DataError(f"{path}: its metadata is not a JSON object.")
                if meta.get("version") != ENCODING_VERSION:
                    raise DataError(f"{path}: written by field encoding version "
                                    f"{shorten(meta.get('version'))}, this is "
                                    f"{ENCODING_VERSION}; delete it.")
                fields, bags = [], {}
                for index, spec in enumerate(meta["fields"]):
                    name, multi_hot = str(spec["name"]), bool(spec["multi_hot"])
                    fields.append(Field(name, saved[f"vocabulary_{index}"], multi_hot))
                    if multi_hot:
                        bags[name] = (saved[f"offsets_{index}"], saved[f"values_{index}"])
                data = cls(str(meta["name"]), tuple(fields), saved["ids"], saved["labels"],
                           saved["split"], bags, meta["user_field"], meta["item_field"],
                           str(meta["source"]))
        except DataError:
            raise
        except (OSError, EOFError, ValueError, KeyError, TypeError, IndexError, RuntimeError,
                NotImplementedError, MemoryError, zipfile.BadZipFile, zlib.error) as error:
            # RuntimeError / NotImplementedError: zip flags (encrypted, patched) in a corrupt
            # header; MemoryError: a corrupt array header claiming a huge shape.
            raise DataError(f"{path}: not a readable FieldData cache file "
                            f"({type(error).__name__}: {shorten(str(error), 120)}); expected an "
                            ".npz written by FieldData.save. Delete it to encode again.") from None
        data.check_arrays(str(path))
        return data

    def check_arrays(self, where: str) -> None:
        """Raise ``DataError`` unless every array has the expected dtype and range."""
        def fail(problem: str) -> None:
            raise DataError(f"{where}: {problem}; the file is corrupt. Delete it to encode "
                            "again.")

        for name, array in (("ids", self.ids), ("labels", self.labels), ("split", self.split)):
            if array.dtype.kind not in "iu":
                fail(f"{name} have dtype {array.dtype}, expected integers")
        if self.num_rows and not np.isin(self.labels, (0, 1)).all():
            fail("labels other than 0/1")
        if self.num_rows and not np.isin(self.split, range(len(SPLITS))).all():
            fail("split codes outside 0..2")
        for column, f in enumerate(self.single_fields):
            if f.vocabulary.ndim != 1 or f.vocabulary.dtype.kind != "U" or not f.num_embeddings:
                fail(f"field {f.name!r} has no string vocabulary")
            ids = self.ids[:, column]
            if ids.size and (ids.min() < 0 or ids.max() >= f.num_embeddings):
                fail(f"field {f.name!r} has ids outside 0..{f.num_embeddings - 1}")
        for f in self.bag_fields:
            offsets, values = self.bags[f.name]
            if f.vocabulary.ndim != 1 or f.vocabulary.dtype.kind != "U" or not f.num_embeddings:
                fail(f"field {f.name!r} has no string vocabulary")
            if (offsets.dtype.kind not in "iu" or values.dtype.kind not in "iu"
                    or offsets.shape != (self.num_rows + 1,) or offsets[0] != 0
                    or (np.diff(offsets) < 0).any() or offsets[-1] != len(values)):
                fail(f"multi-hot field {f.name!r} has inconsistent offsets")
            if values.size and (values.min() < 0 or values.max() >= f.num_embeddings):
                fail(f"multi-hot field {f.name!r} has ids outside 0..{f.num_embeddings - 1}")


# ---------------------------------------------------------------------- reading
def iter_delimited(path: str | Path, separator: str, columns: list[str] | None = None,
                   chunk_rows: int = 500_000) -> Iterator[tuple[np.ndarray, pl.DataFrame]]:
    """Stream a delimited text file (plain or ``.gz``) as ``(line numbers, string columns)``.

    ``columns`` names the fields of a file without a header; otherwise line 1 is the header.
    Fields are split on ``separator`` without quote handling (Criteo and Avazu use none), so a
    row with a different number of fields is reported with its line number. Blank lines are
    skipped. At most ``chunk_rows`` lines are held at a time.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found.")
    header = columns
    lazy = pl.scan_lines(path, row_index_name="row")
    try:
        for batch in lazy.collect_batches(chunk_size=chunk_rows):
            lines = batch["line"].str.strip_suffix("\r")
            numbers = batch["row"].cast(pl.Int64).to_numpy() + 1
            if header is None:
                header = lines[0].split(separator) if len(lines) else None
                lines, numbers = lines[1:], numbers[1:]
                if header is None:
                    continue
                if len(set(header)) != len(header):
                    raise DataError(f"{path} line 1: the header repeats a column name: {header}.")
            nul = lines.str.contains("\x00", literal=True).to_numpy()
            if nul.any():
                raise DataError(f"{path} line {numbers[np.argmax(nul)]}: contains a NUL byte; "
                                "expected text, not a binary file.")
            keep = (lines != "").to_numpy()
            lines, numbers = lines.filter(keep), numbers[keep]
            if len(lines) == 0:
                continue
            parts = lines.str.split(separator, literal=True)
            counts = parts.list.len().to_numpy()
            bad = np.flatnonzero(counts != len(header))
            if bad.size:
                raise DataError(
                    f"{path} line {numbers[bad[0]]}: expected {len(header)} fields "
                    f"({separator!r}-separated), found {counts[bad[0]]}."
                )
            frame = pl.DataFrame([parts.list.get(k).alias(name) for k, name in enumerate(header)])
            yield numbers, frame
    except POLARS_ERRORS as error:
        if isinstance(error, DataError):
            raise
        for _ in iter_lines(path):  # names the line of undecodable text or a corrupt .gz
            pass
        expected = ("a complete .gz file (polars rejects gzip data that Python's gzip "
                    "tolerates, such as padding after the end)" if path.suffix == ".gz"
                    else "UTF-8 delimited text")
        raise DataError(f"{path}: cannot be read ({shorten(str(error), 200)}); expected "
                        f"{expected}.") from None
    if header is None:
        raise DataError(f"{path}: file is empty.")


def frame_batches(frame: pl.DataFrame, lines: np.ndarray | None = None
                  ) -> list[tuple[np.ndarray, pl.DataFrame]]:
    """An in-memory table as one batch; lines default to 2.. (one header line)."""
    if lines is None:
        lines = np.arange(2, frame.height + 2, dtype=np.int64)
    return [(lines, frame)]


# ---------------------------------------------------------------------- encoding
class _FirstSeenIds:
    """Provisional ids in order of first appearance, grown one batch at a time."""

    def __init__(self) -> None:
        self.table = pl.DataFrame(schema={"value": pl.String, "pid": pl.Int32})

    def __len__(self) -> int:
        return self.table.height

    def encode(self, values: pl.Series) -> np.ndarray:
        frame = values.alias("value").to_frame()
        new = frame.unique(maintain_order=True).join(self.table, on="value", how="anti")
        if new.height:
            new = new.with_columns(pl.int_range(len(self), len(self) + new.height,
                                                dtype=pl.Int32).alias("pid"))
            self.table = pl.concat([self.table, new])
        joined = frame.join(self.table, on="value", how="left", maintain_order="left")
        return joined["pid"].to_numpy()

    def values(self) -> np.ndarray:
        return self.table["value"].to_numpy().astype(str)


def _labels(series: pl.Series, lines: np.ndarray, source: str) -> np.ndarray:
    text = series.str.strip_chars()
    number = text.cast(pl.Float64, strict=False)
    bad = (number.is_null() | ~number.is_in([0.0, 1.0])).to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(
            f"{source} line {lines[row]}: label {series[row]!r} in column {series.name!r} is not "
            "0 or 1; CTR labels must be binary (click / no click)."
        )
    return number.to_numpy().astype(np.int8)


def _bin_numeric(series: pl.Series, lines: np.ndarray, source: str) -> pl.Series:
    """Tokens of a numeric column: '' when missing, 'k' for v <= 2 (k = floor(v)), 'bk' with
    k = floor(ln(v)^2) above; so counts and prices become a few dozen categories."""
    text = series.str.strip_chars()
    number = text.cast(pl.Float64, strict=False)
    bad = ((text != "") & (number.is_null() | number.is_nan() | number.is_infinite())).to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(
            f"{source} line {lines[row]}: numeric field {series.name!r} has value "
            f"{series[row]!r}, which is not a finite number; leave it empty when missing."
        )
    frame = pl.DataFrame({"text": text, "v": number})
    token = (pl.when(pl.col("text") == "").then(pl.lit(""))
             .when(pl.col("v") > 2).then(pl.lit("b") + (pl.col("v").log().pow(2).floor()
                                                        .cast(pl.Int64).cast(pl.String)))
             .otherwise(pl.col("v").clip(lower_bound=-(2.0**62)).floor().cast(pl.Int64)
                        .cast(pl.String)))
    return frame.select(token.alias(series.name)).to_series()


def _check_value_lengths(values: pl.Series, lines: np.ndarray, source: str,
                         column: str) -> None:
    """Categorical values become fixed-width numpy strings: cap their length (as ids)."""
    long = (values.str.len_chars() > MAX_ID_LENGTH).fill_null(False).to_numpy()
    if long.any():
        row = int(np.argmax(long))
        raise DataError(f"{source} line {lines[row]}: field {column!r} has a value of "
                        f"{len(values[row])} characters ({shorten(values[row])}); expected "
                        f"categorical values of at most {MAX_ID_LENGTH} characters.")


def _require_columns(frame: pl.DataFrame, schema: FieldSchema, source: str) -> None:
    missing = [name for name in schema.columns if name not in frame.columns]
    if missing:
        role = "label column" if schema.label in missing else "column"
        raise DataError(f"{source}: missing {role} {missing[0]!r}; the file has columns "
                        f"{frame.columns}.")


def split_codes(num_rows: int, fractions: tuple[float, float, float], seed: int) -> np.ndarray:
    """Seeded random split of ``num_rows`` rows in the given train/val/test proportions
    (exact counts: ``round(n * f_train)``, ``round(n * f_val)``, the rest), int8 codes."""
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-9:
        raise ConfigError(f"split fractions must be three numbers >= 0 summing to 1 "
                          f"(train, val, test); got {fractions}.")
    order = np.random.default_rng(seed).permutation(num_rows)
    num_train = round(num_rows * fractions[0])
    num_val = round(num_rows * fractions[1])
    codes = np.full(num_rows, SPLITS.index("test"), dtype=np.int8)
    codes[order[:num_train]] = SPLITS.index("train")
    codes[order[num_train: num_train + num_val]] = SPLITS.index("val")
    return codes


def _final_ids(pids: np.ndarray, first_seen: _FirstSeenIds, train_pids: np.ndarray,
               min_count: int) -> tuple[np.ndarray, np.ndarray]:
    """Vocabulary (OOV first, then the kept values sorted) and the final int32 ids."""
    counts = np.bincount(train_pids, minlength=len(first_seen))
    values = first_seen.values()
    kept = np.flatnonzero(counts >= min_count)
    known = vocabulary(values[kept]) if kept.size else np.asarray([], dtype=str)
    remap = np.zeros(len(first_seen), dtype=np.int32)
    remap[kept] = encode(known, values[kept]) + 1
    return np.concatenate(([OOV_TOKEN], known)).astype(str), remap[pids]


def encode_batches(name: str, source: str, batches: Iterable[tuple[np.ndarray, pl.DataFrame]],
                   schema: FieldSchema, fractions: tuple[float, float, float] = (0.7, 0.2, 0.1),
                   seed: int = 0, min_count: int = 1) -> FieldData:
    """Encode raw string batches into ``FieldData`` (see the module docstring).

    ``batches`` yields ``(line numbers, frame)``; the line numbers name rows in error messages.
    """
    if min_count < 1:
        raise ConfigError(f"min_count must be an int >= 1; got {min_count}.")
    first_seen = {column: _FirstSeenIds() for column in schema.columns[1:]}
    singles: dict[str, list[np.ndarray]] = {column: [] for column in schema.single}
    bag_parts: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {
        column: ([], []) for column, _ in schema.multi_hot}
    labels = []
    for lines, frame in batches:
        _require_columns(frame, schema, source)
        labels.append(_labels(frame[schema.label], lines, source))
        for column in schema.categorical:
            values = frame[column].fill_null("").str.strip_chars()
            _check_value_lengths(values, lines, source, column)
            singles[column].append(first_seen[column].encode(values))
        for column in schema.numeric:
            values = _bin_numeric(frame[column].fill_null(""), lines, source)
            singles[column].append(first_seen[column].encode(values))
        for column, separator in schema.multi_hot:
            tokens = frame[column].fill_null("").str.strip_chars().str.split(separator,
                                                                             literal=True)
            lengths = tokens.list.len().to_numpy().astype(np.int64)
            flat = tokens.explode()
            _check_value_lengths(flat, np.repeat(lines, lengths), source, column)
            bag_parts[column][0].append(lengths)
            bag_parts[column][1].append(first_seen[column].encode(flat))
    if not labels or sum(len(part) for part in labels) == 0:
        raise DataError(f"{source}: no rows to encode.")
    label_array = np.concatenate(labels)
    codes = split_codes(len(label_array), fractions, seed)
    train = codes == SPLITS.index("train")
    fields, columns, bags = [], [], {}
    for column in schema.single:
        pids = np.concatenate(singles.pop(column))
        vocab, ids = _final_ids(pids, first_seen[column], pids[train], min_count)
        fields.append(Field(column, vocab))
        columns.append(ids)
    for column, _ in schema.multi_hot:
        lengths, parts = (np.concatenate(part) for part in bag_parts.pop(column))
        vocab, values = _final_ids(parts, first_seen[column], parts[np.repeat(train, lengths)],
                                   min_count)
        fields.append(Field(column, vocab, multi_hot=True))
        bags[column] = (np.concatenate(([0], np.cumsum(lengths))).astype(np.int64), values)
    ids = (np.stack(columns, axis=1) if columns
           else np.zeros((len(label_array), 0), dtype=np.int32))
    return FieldData(name, tuple(fields), ids.astype(np.int32), label_array, codes, bags,
                     schema.user_field, schema.item_field, source)
