"""One regression test per kind of bad input: every reader raises ``DataError`` naming the file,
the line where one applies and what was expected; never a traceback of another type."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from slimrec.data import registry
from slimrec.data.ctr_readers import criteo_batches, load_field_data
from slimrec.data.fields import FieldData, encode_batches
from slimrec.data.own_data import load_interactions_file
from slimrec.data.readers import MAX_ID_LENGTH, read_lightgcn_file
from slimrec.data.registry import DatasetInfo, RemoteFile, cache_dir, download
from slimrec.errors import DataError

from .reader_cases import CASES, ReaderCase, field_data_bytes, gz

TEXT_CASES = [case for case in CASES if case.name != "checksums.json"]
GZIP_CASES = [case for case in CASES if case.gzip]


def ids(cases: list[ReaderCase]) -> list[str]:
    return [case.name for case in cases]


def load(case: ReaderCase, folder: Path, content: bytes, zipped: bool = False) -> object:
    return case.run(folder, case.write(folder, content, zipped))


def with_line_2(case: ReaderCase, insert: bytes) -> bytes:
    """The valid file with ``insert`` in the middle of line 2."""
    lines = case.valid_bytes().split(b"\n")
    lines[1] = lines[1][:3] + insert + lines[1][3:]
    return b"\n".join(lines)


@pytest.mark.parametrize("zipped", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_valid_samples_load(case: ReaderCase, zipped: bool, tmp_path: Path) -> None:
    """The fuzzing starts from these files: they must load as they are."""
    if zipped and not case.gzip:
        pytest.skip("read plain only")
    content = case.valid_bytes()
    assert load(case, tmp_path, gz(content) if zipped else content, zipped) is not None


@pytest.mark.parametrize("zipped", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("case", TEXT_CASES, ids=ids(TEXT_CASES))
def test_invalid_utf8_names_the_line(case: ReaderCase, zipped: bool, tmp_path: Path) -> None:
    content = with_line_2(case, b"\xff\xfe")
    with pytest.raises(DataError, match=rf"{case.filename}(\.gz)? line 2: byte 0xff at column "
                                        r"\d+ is not valid UTF-8"):
        load(case, tmp_path, gz(content) if zipped else content, zipped)


@pytest.mark.parametrize("case", TEXT_CASES, ids=ids(TEXT_CASES))
def test_nul_byte_names_the_line(case: ReaderCase, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=rf"{case.filename} line 2: contains a NUL byte"):
        load(case, tmp_path, with_line_2(case, b"\x00"))


@pytest.mark.parametrize("case", TEXT_CASES, ids=ids(TEXT_CASES))
def test_binary_file(case: ReaderCase, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=case.filename):
        load(case, tmp_path, bytes(range(256)) * 8)


@pytest.mark.parametrize("zipped", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("case", TEXT_CASES, ids=ids(TEXT_CASES))
def test_empty_file(case: ReaderCase, zipped: bool, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=rf"{case.filename}(\.gz)?: .*empty"):
        load(case, tmp_path, gz(b"") if zipped else b"", zipped)


@pytest.mark.parametrize("case", GZIP_CASES, ids=ids(GZIP_CASES))
def test_truncated_gzip(case: ReaderCase, tmp_path: Path) -> None:
    content = gz(case.valid_bytes())
    with pytest.raises(DataError, match=rf"{case.filename}.gz: corrupt or truncated gzip data"):
        load(case, tmp_path, content[: len(content) // 2], zipped=True)


@pytest.mark.parametrize("case", GZIP_CASES, ids=ids(GZIP_CASES))
def test_compression_is_told_by_content(case: ReaderCase, tmp_path: Path) -> None:
    """Like polars: plain text behind a .gz name and gzip without the suffix both read."""
    assert load(case, tmp_path / "plain", case.valid_bytes(), zipped=True) is not None
    assert load(case, tmp_path / "gzip", gz(case.valid_bytes())) is not None


def test_gzip_with_a_corrupt_stream(tmp_path: Path) -> None:
    case = next(case for case in CASES if case.name == "u.data")
    content = bytearray(gz(case.valid_bytes() * 20))
    content[len(content) // 2] ^= 0xFF
    with pytest.raises(DataError, match=r"u\.data\.gz: corrupt or truncated gzip data"):
        load(case, tmp_path, bytes(content), zipped=True)


# ---------------------------------------------------------------- ids and values out of range
@pytest.mark.parametrize(("line", "message"), [
    ("9223372036854775808 1\n", r"line 1: user id '9223372036854775808' is too large; "
                                r"expected ids up to 9223372036854775807"),
    ("0 1 99999999999999999999999\n", r"line 1: item id '99999999999999999999999' is too "
                                      "large"),
    ("0 1 ١٢\n", r"line 1: item id '١٢' is not an integer"),
    ("0 +3\n", r"line 1: item id '\+3' is not an integer"),
    ("0 1_0\n", r"line 1: item id '1_0' is not an integer"),
])
def test_lightgcn_ids_out_of_range(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "train.txt"
    path.write_text(line)
    with pytest.raises(DataError, match=message):
        read_lightgcn_file(path, require_items=True)


def test_lightgcn_largest_int64_id_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "train.txt"
    path.write_text("9223372036854775807 0 000000000000000000000007\n")
    log = read_lightgcn_file(path, require_items=True)
    assert log.users.tolist() == ["9223372036854775807"] * 2
    assert log.items.tolist() == ["0", "7"]


def test_huge_numeric_ids_of_a_table_sort_by_value(tmp_path: Path) -> None:
    big = "123456789012345678901234567890"
    path = tmp_path / "x.csv"
    path.write_text(f"user,item\n{big},1\n{big},2\n9,1\n9,2\n10,1\n10,2\n")
    data = load_interactions_file(path, test_fraction=0.5)
    assert data.user_ids.tolist() == ["9", "10", big]


def test_too_long_id(tmp_path: Path) -> None:
    path = tmp_path / "x.tsv"
    path.write_text(f"user\titem\n1\t{'x' * (MAX_ID_LENGTH + 1)}\n")
    with pytest.raises(DataError, match=rf"x\.tsv line 2: field 'item' \(item id\) is longer "
                                        rf"than {MAX_ID_LENGTH} characters"):
        load_interactions_file(path)


def test_control_character_in_id(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text('user,item\n1,2\n"a\tb",3\n')
    with pytest.raises(DataError, match=r"x\.csv line 3: field 'user' \(user id\) contains a "
                                        "control character"):
        load_interactions_file(path)


@pytest.mark.parametrize("value", ["1e400", "inf", "nan", "", "four"])
def test_non_finite_rating(tmp_path: Path, value: str) -> None:
    path = tmp_path / "x.csv"
    path.write_text(f"user,item,rating\n1,2,4\n1,3,{value}\n")
    with pytest.raises(DataError, match=r"x\.csv line 3: field 'rating' .*expected a finite"):
        load_interactions_file(path, rating_col="rating")


@pytest.mark.parametrize("value", ["1e400", "nan", "x"])
def test_movielens_non_finite_rating(tmp_path: Path, value: str) -> None:
    path = tmp_path / "u.data"
    path.write_text(f"1\t2\t4\t100\n1\t3\t{value}\t101\n")
    with pytest.raises(DataError, match=r"u\.data line 2: rating .* is not a finite number"):
        load_interactions_file(path)


def test_blank_lines_are_skipped_and_lines_still_counted(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("user,item\n1,a\n\n1,b\n\n,c\n")
    with pytest.raises(DataError, match=r"x\.csv line 6: field 'user' \(user id\) is empty"):
        load_interactions_file(path)


def test_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "train.txt"
    path.write_bytes(b"\xef\xbb\xbf0 1 2\n")
    assert read_lightgcn_file(path, require_items=True).users.tolist() == ["0", "0"]


def test_atomic_header_repeating_a_name(tmp_path: Path) -> None:
    path = tmp_path / "x.inter"
    path.write_text("user_id:token\titem_id:token\titem_id:float\n1\t2\t3\n")
    with pytest.raises(DataError, match=r"x\.inter line 1: column 'item_id' appears more than "
                                        "once"):
        load_interactions_file(path)


def test_criteo_very_negative_value_is_binned(tmp_path: Path) -> None:
    path = tmp_path / "train.txt"
    row = ["1", "-1e300", *["5"] * 12, *["abc"] * 26]
    path.write_text("\t".join(row) + "\n" + "\t".join(["0", *row[1:]]) + "\n")
    schema, batches = criteo_batches(path, chunk_rows=10)
    data = encode_batches("criteo", str(path), batches, schema, fractions=(1.0, 0.0, 0.0))
    assert data.num_rows == 2


def test_movielens_ctr_side_table_problems(tmp_path: Path) -> None:
    case = next(case for case in CASES if case.name == "ml-100k-ctr.user")
    lines = list(case.lines)
    with pytest.raises(DataError, match=r"ml-100k\.user line 3: user_id '1' already has a "
                                        r"row \(line 2\)"):
        load(case, tmp_path, "\n".join([*lines[:2], lines[1], *lines[2:]]).encode())
    empty_key = "\n".join([*lines, "\t30\tM\twriter\t12345"]).encode()
    with pytest.raises(DataError, match=r"ml-100k\.user line 5: user_id is empty"):
        load(case, tmp_path, empty_key)
    without_zip = "\n".join(line.rsplit("\t", 1)[0] for line in lines).encode()
    with pytest.raises(DataError, match=r"ml-100k\.user: missing column 'zip_code'"):
        load(case, tmp_path, without_zip)


# ---------------------------------------------------------------- Parquet
def test_corrupt_parquet(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    buffer = io.BytesIO()
    pl.DataFrame({"user": [1, 2], "item": [3, 4]}).write_parquet(buffer)
    path.write_bytes(buffer.getvalue()[:-20])
    with pytest.raises(DataError, match=r"x\.parquet: not a readable Parquet file"):
        load_interactions_file(path)


def test_parquet_float_ids_with_nan(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    pl.DataFrame({"user": [1.0, float("nan")], "item": [3, 4]}).write_parquet(path)
    with pytest.raises(DataError, match=r"x\.parquet row 1: column 'user' \(user\) has value "
                                        "nan; expected integer or string ids"):
        load_interactions_file(path)


# ---------------------------------------------------------------- download cache
def _register_tiny(monkeypatch: pytest.MonkeyPatch, sha256: str | None) -> None:
    info = DatasetInfo("tiny", "test fixture", "movielens", "holdout",
                       (RemoteFile("https://example.org/tiny.zip", "u.data", sha256,
                                   "tiny/u.data"),))
    monkeypatch.setitem(registry.REGISTRY, ("tiny", "interactions"), info)


def _serve(content: bytes):
    def fetch(url: str, destination: Path, progress: bool) -> None:
        destination.write_bytes(content)
    return fetch


@pytest.mark.parametrize(("record", "message"), [
    (b"{not json", r"checksums\.json line 1: corrupt checksum record"),
    (b'["a", "b"]', r"checksums\.json: holds a JSON list, not an object"),
    (b'{"https://example.org/tiny.zip": 5}', r"checksums\.json: the checksum of .* is '5', not a "
                                             "sha256"),
    (b"\xff\xfe{}", r"checksums\.json: byte 0 of the checksum record is not UTF-8"),
    (b"[" * 100_000, r"checksums\.json"),
    (b"", r"checksums\.json line 1: corrupt checksum record"),
])
def test_corrupt_checksum_record(monkeypatch: pytest.MonkeyPatch, record: bytes,
                                 message: str) -> None:
    _register_tiny(monkeypatch, None)
    folder = cache_dir() / "tiny"
    folder.mkdir(parents=True)
    (folder / "checksums.json").write_bytes(record)
    with pytest.raises(DataError, match=message) as error:
        download("tiny", progress=False, fetch=_serve(b"unused"))
    assert "expected a JSON object mapping each URL to its sha256" in str(error.value)


@pytest.mark.parametrize("archive", [b"not a zip at all", b"PK\x03\x04" + b"\x00" * 40, None])
def test_corrupt_or_truncated_zip(monkeypatch: pytest.MonkeyPatch, archive: bytes | None) -> None:
    if archive is None:  # a real archive cut in half
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zipped:
            zipped.writestr("tiny/u.data", "1\t2\t3\t4\n" * 1000)
        archive = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    _register_tiny(monkeypatch, None)
    with pytest.raises(DataError, match=r"tiny\.zip\.part: cannot extract 'tiny/u\.data'"):
        download("tiny", progress=False, fetch=_serve(archive))
    folder = cache_dir() / "tiny"
    assert sorted(p.name for p in folder.iterdir()) == []  # no partial file, no record


def test_zip_without_the_member(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        zipped.writestr("other.txt", "x")
    blob = buffer.getvalue()
    _register_tiny(monkeypatch, hashlib.sha256(blob).hexdigest())
    with pytest.raises(DataError, match=r"has no member 'tiny/u\.data'"):
        download("tiny", progress=False, fetch=_serve(blob))


# ---------------------------------------------------------------- FieldData cache files
VALID_NPZ = field_data_bytes()


@pytest.mark.parametrize("content", [b"", b"garbage", VALID_NPZ[:200], VALID_NPZ[:-30]],
                         ids=["empty", "garbage", "head", "truncated"])
def test_corrupt_field_data_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.npz"
    path.write_bytes(content)
    with pytest.raises(DataError, match=r"x\.npz: not a readable FieldData cache file"):
        FieldData.load(path)


def test_field_data_file_with_foreign_zip_flags(tmp_path: Path) -> None:
    """Found by fuzzing: a flipped bit marking a member encrypted made zipfile raise
    RuntimeError."""
    content = bytearray(VALID_NPZ)
    for entry in re.finditer(rb"PK\x01\x02", VALID_NPZ):  # central directory entries
        content[entry.start() + 8] |= 1  # general purpose flag bit 0: encrypted
    path = tmp_path / "x.npz"
    path.write_bytes(bytes(content))
    with pytest.raises(DataError, match=r"x\.npz: not a readable FieldData cache file "
                                        r"\(RuntimeError"):
        FieldData.load(path)


def _rewrite(tmp_path: Path, **changes: object) -> Path:
    source = tmp_path / "valid.npz"
    source.write_bytes(VALID_NPZ)
    with np.load(source) as saved:
        arrays = {name: saved[name] for name in saved.files}
    arrays.update(changes)
    path = tmp_path / "changed.npz"
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    return path


def test_field_data_with_ids_out_of_range(tmp_path: Path) -> None:
    with np.load(io.BytesIO(VALID_NPZ)) as saved:
        ids = saved["ids"].copy()
    ids[0, 0] = 99
    with pytest.raises(DataError, match=r"changed\.npz: field 'user' has ids outside"):
        FieldData.load(_rewrite(tmp_path, ids=ids))


def test_field_data_of_another_version(tmp_path: Path) -> None:
    with np.load(io.BytesIO(VALID_NPZ)) as saved:
        meta = json.loads(str(saved["meta"]))
    meta["version"] = 999
    with pytest.raises(DataError, match="field encoding version 999"):
        FieldData.load(_rewrite(tmp_path, meta=np.asarray(json.dumps(meta))))


def test_field_data_with_object_arrays(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a readable FieldData cache file"):
        FieldData.load(_rewrite(tmp_path, labels=np.asarray([1, "x"], dtype=object)))


def test_corrupt_cache_file_is_a_miss(tmp_path: Path) -> None:
    """load_field_data re-encodes over a corrupt cache file, with a warning naming it."""
    case = next(case for case in CASES if case.name == "avazu")
    folder = tmp_path / "ctr_samples"
    folder.mkdir()
    case.write(folder, case.valid_bytes())
    first = load_field_data("avazu-sample", tmp_path)
    (cached,) = (cache_dir() / "ctr").glob("avazu-sample-*.npz")
    cached.write_bytes(cached.read_bytes()[:100])
    with pytest.warns(RuntimeWarning, match=r"avazu-sample-.*\.npz: not a readable FieldData "
                                            "cache file.*Encoding avazu-sample again"):
        again = load_field_data("avazu-sample", tmp_path)
    assert (again.ids == first.ids).all()
    assert FieldData.load(cached).num_rows == first.num_rows  # the file was rewritten

