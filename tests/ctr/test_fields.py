"""FieldData: train-only vocabularies, OOV, min-count, multi-hot bags, cache, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from slimrec.data.fields import (
    OOV_ID,
    SPLITS,
    FieldData,
    FieldSchema,
    encode_batches,
    frame_batches,
    iter_delimited,
    split_codes,
)
from slimrec.errors import ConfigError, DataError


def test_vocabularies_come_from_train_only(tiny_fields: FieldData, planted_frame) -> None:
    frame = planted_frame()
    train = tiny_fields.split == SPLITS.index("train")
    for column, field in enumerate(tiny_fields.single_fields):
        raw = frame[field.name].to_numpy().astype(str)
        assert set(field.vocabulary[1:]) == set(raw[train])
        decoded = field.vocabulary[tiny_fields.ids[:, column]]
        known = np.isin(raw, raw[train])
        assert (decoded[known] == raw[known]).all()
        assert (tiny_fields.ids[~known, column] == OOV_ID).all()


def test_unknown_values_at_test_go_to_oov() -> None:
    frame = pl.DataFrame({"label": ["1", "0"] * 50,
                          "user": [f"u{k % 10}" for k in range(100)]})
    data = encode_batches("t", "t.csv", frame_batches(frame), FieldSchema("label", ("user",)),
                          fractions=(0.5, 0.25, 0.25), seed=1)
    field = data.field("user")
    assert field.vocabulary[0] == "<OOV>"
    assert field.encode(["u3", "never-seen", "u9"]).tolist() == [
        int(np.flatnonzero(field.vocabulary == "u3")[0]), OOV_ID,
        int(np.flatnonzero(field.vocabulary == "u9")[0])]


def test_min_count_sends_rare_values_to_oov() -> None:
    users = ["a"] * 10 + ["b"] * 2 + ["c"]
    frame = pl.DataFrame({"label": ["1"] * len(users), "user": users})
    data = encode_batches("t", "t.csv", frame_batches(frame), FieldSchema("label", ("user",)),
                          fractions=(1.0, 0.0, 0.0), min_count=3)
    assert data.field("user").vocabulary.tolist() == ["<OOV>", "a"]
    assert data.ids[:, 0].tolist() == [1] * 10 + [0] * 3
    with pytest.raises(ConfigError, match="min_count"):
        encode_batches("t", "t.csv", frame_batches(frame), FieldSchema("label", ("user",)),
                       min_count=0)


def test_multi_hot_bags(tiny_fields: FieldData, planted_frame) -> None:
    frame = planted_frame()
    offsets, values = tiny_fields.bags["tags"]
    vocabulary = tiny_fields.field("tags").vocabulary
    assert offsets[0] == 0 and offsets[-1] == len(values) and values.dtype == np.int32
    for row in (0, 1, 7, 500):
        tokens = frame["tags"][row].split("|")
        train_tokens = vocabulary[values[offsets[row]: offsets[row + 1]]]
        assert len(train_tokens) == len(tokens)
        assert set(train_tokens) <= {*tokens, "<OOV>"}
    assert tiny_fields.frequencies("tags").sum() == np.diff(offsets)[
        tiny_fields.split == 0].sum()


def test_numeric_fields_are_log_square_binned() -> None:
    frame = pl.DataFrame({"label": ["0", "1", "0", "1", "1"],
                          "count": ["", "1", "2", "3", "1000"]})
    data = encode_batches("t", "t.csv", frame_batches(frame),
                          FieldSchema("label", numeric=("count",)), fractions=(1.0, 0.0, 0.0))
    vocabulary = data.field("count").vocabulary
    # ln(3)^2 = 1.2 -> bin 1; ln(1000)^2 = 47.7 -> bin 47; "" is its own (missing) value.
    assert vocabulary[data.ids[:, 0]].tolist() == ["", "1", "2", "b1", "b47"]


def test_split_is_seeded_and_exact() -> None:
    codes = split_codes(288_609, (0.7, 0.2, 0.1), seed=0)
    assert np.bincount(codes).tolist() == [202_026, 57_722, 28_861]
    assert (codes == split_codes(288_609, (0.7, 0.2, 0.1), seed=0)).all()
    assert not (codes == split_codes(288_609, (0.7, 0.2, 0.1), seed=1)).all()
    with pytest.raises(ConfigError, match="summing to 1"):
        split_codes(10, (0.7, 0.2, 0.2), seed=0)


def test_cache_round_trip(tiny_fields: FieldData, tmp_path: Path) -> None:
    path = tiny_fields.save(tmp_path / "tiny.npz")
    loaded = FieldData.load(path)
    assert loaded.field_names == tiny_fields.field_names
    assert (loaded.ids == tiny_fields.ids).all() and loaded.ids.dtype == np.int32
    assert (loaded.labels == tiny_fields.labels).all()
    assert (loaded.split == tiny_fields.split).all()
    for name, (offsets, values) in tiny_fields.bags.items():
        assert (loaded.bags[name][0] == offsets).all()
        assert (loaded.bags[name][1] == values).all()
    assert (loaded.field("user").vocabulary == tiny_fields.field("user").vocabulary).all()
    assert loaded.user_field == "user" and loaded.item_field == "item"
    assert (loaded.interactions() != tiny_fields.interactions()).nnz == 0


def test_interactions_are_the_positive_train_rows(tiny_fields: FieldData) -> None:
    graph = tiny_fields.interactions()
    positive = (tiny_fields.split == 0) & (tiny_fields.labels == 1)
    pairs = {tuple(p) for p in tiny_fields.ids[positive][:, :2]}
    assert graph.nnz == len(pairs)
    assert graph.shape == (tiny_fields.field("user").num_embeddings,
                           tiny_fields.field("item").num_embeddings)


def test_streaming_in_chunks_gives_the_same_data(tmp_path: Path, planted_frame) -> None:
    frame = planted_frame(500).drop("tags")
    path = tmp_path / "rows.csv"
    frame.write_csv(path)
    schema = FieldSchema("label", ("user", "item", "city"))
    whole = encode_batches("t", str(path), iter_delimited(path, ",", chunk_rows=10_000), schema)
    chunked = encode_batches("t", str(path), iter_delimited(path, ",", chunk_rows=37), schema)
    assert (whole.ids == chunked.ids).all() and (whole.labels == chunked.labels).all()
    assert [f.vocabulary.tolist() for f in whole.fields] == [
        f.vocabulary.tolist() for f in chunked.fields]


# ---------------------------------------------------------------------- bad input
def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    return path


def _encode(path: Path, schema: FieldSchema | None = None) -> FieldData:
    schema = schema or FieldSchema("label", ("a", "b"))
    return encode_batches("t", str(path), iter_delimited(path, ",", chunk_rows=2), schema)


def test_non_binary_label_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "label,a,b\n0,x,y\n1,x,y\n0,x,y\n2,x,y\n")
    with pytest.raises(DataError, match=r"bad.csv line 5: label '2' .* not 0 or 1"):
        _encode(path)
    path = _write(tmp_path, "label,a,b\n0,x,y\nyes,x,y\n")
    with pytest.raises(DataError, match="line 3: label 'yes'"):
        _encode(path)


def test_missing_label_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "click,a,b\n0,x,y\n")
    with pytest.raises(DataError, match="missing label column 'label'"):
        _encode(path)


@pytest.mark.parametrize(("row", "found"), [("1,x", 2), ("1,x,y,z", 4)])
def test_ragged_rows_name_the_line(tmp_path: Path, row: str, found: int) -> None:
    path = _write(tmp_path, f"label,a,b\n0,x,y\n0,x,y\n\n0,x,y\n{row}\n0,x,y\n")
    with pytest.raises(DataError, match=rf"line 6: expected 3 fields .* found {found}"):
        _encode(path)


def test_bad_numeric_value_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "label,a,b\n0,x,3\n1,x,abc\n")
    with pytest.raises(DataError, match="line 3: numeric field 'b' has value 'abc'"):
        _encode(path, FieldSchema("label", ("a",), ("b",)))


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="empty"):
        _encode(_write(tmp_path, ""))
    with pytest.raises(DataError, match="no rows"):
        _encode(_write(tmp_path, "label,a,b\n"))


def test_gzip_input(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "rows.csv.gz"
    path.write_bytes(gzip.compress(b"label,a,b\r\n0,x,y\r\n1,z,y\r\n"))
    data = _encode(path)
    assert data.num_rows == 2 and data.labels.tolist() == [0, 1]
    assert set(data.field("b").vocabulary) == {"<OOV>", "y"}  # "\r" is not part of the value
