"""Every file reader as a case: a valid sample, the file it reads and the whole load path.

Shared by ``test_fuzz_readers.py`` (random and near-valid bytes) and ``test_bad_input.py``
(one regression test per kind of bad input). A case's ``run`` reads the file written at
``path`` (plus the valid companion files its ``setup`` wrote) all the way to ``Interactions``
or ``FieldData``.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from slimrec.data.ctr_readers import (
    CRITEO_COLUMNS,
    avazu_batches,
    criteo_batches,
    frappe_batches,
    movielens_batches,
)
from slimrec.data.fields import FieldData, FieldSchema, encode_batches, frame_batches
from slimrec.data.own_data import load_interactions_file
from slimrec.data.registry import _recorded_checksums


@dataclass(frozen=True)
class ReaderCase:
    name: str
    filename: str                       # the file that gets the fuzzed bytes
    lines: tuple[str, ...]              # a valid file, line by line (header first if any)
    separator: str
    run: Callable[[Path, Path], object]  # (folder, path of the fuzzed file) -> loaded data
    companions: tuple[tuple[str, str], ...] = ()  # valid files written next to it
    line_numbers: bool = True           # errors name a line (False: binary formats)
    gzip: bool = True                   # whether a .gz of the file is read too

    def valid_bytes(self) -> bytes:
        return ("\n".join(self.lines) + "\n").encode()

    def write(self, folder: Path, content: bytes, gz: bool = False) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for filename, text in self.companions:
            (folder / filename).write_text(text)
        path = folder / (self.filename + (".gz" if gz else ""))
        path.write_bytes(content)
        return path


def gz(content: bytes) -> bytes:
    return gzip.compress(content, mtime=0)


def _encode(batches_of: Callable[[Path], tuple[FieldSchema, object]]
            ) -> Callable[[Path, Path], object]:
    def run(folder: Path, path: Path) -> FieldData:
        schema, batches = batches_of(path)
        return encode_batches("fuzz", str(path), batches, schema, fractions=(0.5, 0.25, 0.25))
    return run


def _own(**options: object) -> Callable[[Path, Path], object]:
    return lambda folder, path: load_interactions_file(path, **options)


FRAPPE_HEADER = ("user\titem\tcnt\tdaytime\tweekday\tisweekend\thomework\tcost\tweather\t"
                 "country\tcity")
ML_USER = ("user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
           "1\t24\tM\ttechnician\t85711\n2\t53\tF\tother\t94043\n3\t23\tM\twriter\t32067\n")
ML_ITEM = ("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
           "10\tToy Story\t1995\tAnimation Children's Comedy\n11\tGoldenEye\t1995\t"
           "Action Adventure Thriller\n12\tFour Rooms\t1995\tThriller\n")
ML_INTER = ("user_id:token\titem_id:token\trating:float\ttimestamp:float",
            "1\t10\t5\t874965758", "1\t11\t3\t876893171", "2\t10\t4\t878542960",
            "2\t12\t1\t876893119", "3\t11\t4\t889751712", "3\t12\t2\t875071561")
CRITEO_ROW = ["0", *[str(k) for k in range(13)], *["68fd1e64", "80e26c9b"] * 13]

CASES: tuple[ReaderCase, ...] = (
    ReaderCase("lightgcn-train", "train.txt",
               ("0 1 2 3", "1 2 3 4", "2 0 1 5", "3 4 5 6"), " ",
               lambda folder, path: load_interactions_file(folder),
               companions=(("test.txt", "0 4\n1 0\n2 3\n3 1\n"),)),
    ReaderCase("lightgcn-test", "test.txt", ("0 4", "1 0", "2 3", "3 1"), " ",
               lambda folder, path: load_interactions_file(folder),
               companions=(("train.txt", "0 1 2 3\n1 2 3 4\n2 0 1 5\n3 4 5 6\n"),)),
    ReaderCase("u.data", "u.data",
               tuple(f"{u}\t{i}\t{(u + i) % 5 + 1}\t{880000000 + u * 7 + i}"
                     for u in range(1, 5) for i in range(1, 5)), "\t", _own()),
    ReaderCase("ratings.dat", "ratings.dat",
               tuple(f"{u}::{i}::{(u * i) % 5 + 1}::{978300760 + i}"
                     for u in range(1, 5) for i in range(1, 5)), "::", _own(min_rating=2)),
    ReaderCase("recbole-inter", "x.inter", ML_INTER, "\t",
               _own(duplicates="first", test_fraction=0.5)),
    ReaderCase("csv", "x.csv",
               ("user,item,rating,ts", "u1,a,4,100", "u1,b,5,101", "u2,a,3,99", "u2,c,1,98",
                "u3,b,2,97", "u3,c,5,96"), ",",
               _own(rating_col="rating", time_col="ts", duplicates="count",
                    split="leave_last_out")),
    ReaderCase("tsv", "x.tsv",
               ("user\titem", "1\t10", "1\t11", "2\t10", "2\t12", "3\t11", "3\t12"), "\t",
               _own(test_fraction=0.5)),
    ReaderCase("frappe", "frappe.csv",
               (FRAPPE_HEADER,
                *(f"{u}\t{i}\t1\tmorning\tmonday\tweekday\tunknown\tfree\tsunny\tSpain\t{u}"
                  for u in range(3) for i in (u, u + 1))), "\t",
               _encode(lambda path: frappe_batches(path, seed=0))),
    ReaderCase("ml-100k-ctr.inter", "ml-100k.inter", ML_INTER, "\t",
               _encode(lambda path: movielens_batches(path, seed=0)),
               companions=(("ml-100k.user", ML_USER), ("ml-100k.item", ML_ITEM))),
    ReaderCase("ml-100k-ctr.user", "ml-100k.user", tuple(ML_USER.splitlines()), "\t",
               lambda folder, path: _encode(lambda p: movielens_batches(p, seed=0))(
                   folder, folder / "ml-100k.inter"),
               companions=(("ml-100k.inter", "\n".join(ML_INTER) + "\n"),
                           ("ml-100k.item", ML_ITEM))),
    ReaderCase("ml-100k-ctr.item", "ml-100k.item", tuple(ML_ITEM.splitlines()), "\t",
               lambda folder, path: _encode(lambda p: movielens_batches(p, seed=0))(
                   folder, folder / "ml-100k.inter"),
               companions=(("ml-100k.inter", "\n".join(ML_INTER) + "\n"),
                           ("ml-100k.user", ML_USER))),
    ReaderCase("criteo", "criteo_sample.txt",
               (",".join(CRITEO_COLUMNS), ",".join(CRITEO_ROW),
                ",".join(["1", *CRITEO_ROW[1:]]), ",".join(["0", "", *CRITEO_ROW[2:]])), ",",
               _encode(lambda path: criteo_batches(path, chunk_rows=2))),
    ReaderCase("criteo-kaggle", "train.txt",
               ("\t".join(CRITEO_ROW), "\t".join(["1", *CRITEO_ROW[1:]])), "\t",
               _encode(lambda path: criteo_batches(path, chunk_rows=2))),
    ReaderCase("avazu", "avazu_sample.txt",
               ("id,click,hour,C1,banner_pos,site_id", "1,0,14102100,1005,0,1fbe01fe",
                "2,1,14102101,1005,1,fe8cc448", "3,0,14102813,1002,0,d6137915"), ",",
               _encode(lambda path: avazu_batches(path, chunk_rows=2))),
    ReaderCase("checksums.json", "checksums.json",
               ("{", f'  "https://example.org/data.zip": "{"ab" * 32}"', "}"), ",",
               lambda folder, path: _recorded_checksums(folder), gzip=False),
)


def parquet_bytes(frame: object) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)  # type: ignore[attr-defined]
    return buffer.getvalue()


def field_data_bytes() -> bytes:
    """A small valid ``FieldData`` cache file (with a multi-hot field), as bytes."""
    import tempfile

    import polars as pl

    frame = pl.DataFrame({"label": ["1", "0", "1", "0"], "user": ["a", "b", "a", "c"],
                          "price": ["1", "20", "", "3"],
                          "tags": ["x y", "y", "z x", "x"]})
    schema = FieldSchema("label", ("user",), ("price",), (("tags", " "),), user_field="user")
    data = encode_batches("tiny", "tiny.csv", frame_batches(frame), schema, (0.5, 0.25, 0.25))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tiny.npz"
        data.save(path)
        return path.read_bytes()
