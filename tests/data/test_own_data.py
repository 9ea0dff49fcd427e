"""Users' own data: files (CSV, TSV, Parquet, .inter, MovieLens, LightGCN folders), in-memory
frames, the duplicates policy and the path route of ``load_dataset``."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from slimrec.data.own_data import (
    file_format,
    interactions_from_frame,
    load_interactions_file,
    looks_like_path,
)
from slimrec.data.registry import load_dataset
from slimrec.data.splits import carve_validation
from slimrec.errors import ConfigError, DataError

ROWS = [("u1", "a", 5, 10), ("u1", "b", 3, 11), ("u1", "c", 4, 12), ("u2", "a", 2, 13),
        ("u2", "c", 5, 14), ("u3", "b", 1, 15), ("u3", "c", 4, 16), ("u3", "d", 5, 17)]


def table(separator: str = ",", header: str = "user,item,rating,ts", rows=ROWS) -> str:
    lines = [header.replace(",", separator)]
    lines += [separator.join(str(value) for value in row) for row in rows]
    return "\n".join(lines) + "\n"


def pairs(data) -> set[tuple[str, str]]:
    matrix = (data.train + data.test).tocoo()
    return {(data.user_ids[u], data.item_ids[i]) for u, i in zip(matrix.row, matrix.col,
                                                                   strict=True)}


# ---------------------------------------------------------------- file formats
@pytest.mark.parametrize(("name", "separator"), [("x.csv", ","), ("x.tsv", "\t"),
                                                 ("x.csv.gz", ","), ("x.TSV", "\t")])
def test_text_tables(tmp_path: Path, name: str, separator: str) -> None:
    path = tmp_path / name
    text = table(separator).encode()
    path.write_bytes(gzip.compress(text) if name.endswith(".gz") else text)
    data = load_interactions_file(path, rating_col="rating", time_col="ts", test_fraction=0.3)
    assert data.name == "x"
    assert pairs(data) == {(u, i) for u, i, _, _ in ROWS}


def test_separator_and_column_options(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text(table(";", "uid,iid,stars,when"))
    data = load_interactions_file(path, user_col="uid", item_col="iid", rating_col="stars",
                                  min_rating=4, separator=";", test_fraction=0.3)
    assert pairs(data) == {(u, i) for u, i, r, _ in ROWS if r >= 4}


def test_parquet_keeps_types(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    pl.DataFrame({"user": [1, 1, 2, 2], "item": [10.0, 11.0, 10.0, 12.0],
                  "rating": [5, 4, 3, 2]}).write_parquet(path)
    data = load_interactions_file(path, rating_col="rating", test_fraction=0.5)
    assert data.item_ids.tolist() == ["10", "11", "12"]  # whole floats become integer ids


def test_recbole_inter(tmp_path: Path) -> None:
    path = tmp_path / "mine.inter"
    path.write_text(table("\t", "user_id:token,item_id:token,rating:float,timestamp:float"))
    data = load_interactions_file(path, split="leave_last_out")
    assert data.name == "mine"
    assert data.item_ids[data.test[data.user_index("u3")].indices].tolist() == ["d"]


def test_movielens_files(tmp_path: Path) -> None:
    path = tmp_path / "ratings.dat"
    path.write_text("".join(f"{u}::{i}::5::{i}\n" for u in (1, 2) for i in (1, 2, 3)))
    assert load_interactions_file(path).num_items == 3


def test_lightgcn_and_inter_folders(tmp_path: Path) -> None:
    (tmp_path / "lg").mkdir()
    (tmp_path / "lg" / "train.txt").write_text("0 1 2\n1 0 2\n")
    (tmp_path / "lg" / "test.txt").write_text("0 0\n1 1\n")
    data = load_interactions_file(tmp_path / "lg")
    assert (data.name, data.train.nnz, data.test.nnz) == ("lg", 4, 2)
    with pytest.raises(ConfigError, match="holds a given train/test split"):
        load_interactions_file(tmp_path / "lg", split="holdout")
    (tmp_path / "atomic").mkdir()
    (tmp_path / "atomic" / "x.inter").write_text(table("\t", "user_id:token,item_id:token,"
                                                             "rating:float,timestamp:float"))
    assert load_interactions_file(tmp_path / "atomic", test_fraction=0.3).name == "atomic"
    with pytest.raises(DataError, match="expected train.txt and test.txt .* or exactly one "
                                        r"\.inter file"):
        load_interactions_file(tmp_path)


@pytest.mark.parametrize("name", ["x.json", "x.parquet.gz", "x", "x.gz"])
def test_unknown_suffix(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("user,item\n1,2\n")
    with pytest.raises(DataError, match=r"cannot tell the format .* expected a \.csv, \.tsv"):
        load_interactions_file(tmp_path / name)


def test_file_format_and_path_detection() -> None:
    assert file_format("a/b.inter.gz") == "inter"
    assert file_format("u.data.gz") == "movielens"
    assert looks_like_path("data/x") and looks_like_path("x.csv") and looks_like_path("x.gz")
    assert not looks_like_path("gowalla")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        load_interactions_file(tmp_path / "nope.csv")


# ---------------------------------------------------------------- duplicates
def duplicated(tmp_path: Path) -> Path:
    path = tmp_path / "d.csv"
    path.write_text("user,item,ts\n1,a,1\n1,b,2\n1,a,3\n1,c,4\n2,a,5\n2,b,6\n2,b,7\n2,b,8\n"
                    "2,c,9\n")
    return path


def test_duplicates_error_names_both_lines(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"d\.csv line 4: duplicate interaction \(user '1', item "
                                        r"'a'\) already on line 2.*duplicates='first'"):
        load_interactions_file(duplicated(tmp_path))


def test_duplicates_first_keeps_the_first_occurrence(tmp_path: Path) -> None:
    data = load_interactions_file(duplicated(tmp_path), duplicates="first", time_col="ts",
                                  split="leave_last_out")
    assert data.train.nnz + data.test.nnz == 6 and data.counts is None
    # user 2's last distinct item by first occurrence is c (line 10, ts 9)
    assert data.item_ids[data.test[data.user_index("2")].indices].tolist() == ["c"]
    # user 1: pair (1, a) keeps ts 1 (its first line), so c (ts 4) is the last
    assert data.item_ids[data.test[data.user_index("1")].indices].tolist() == ["c"]


def test_duplicates_count_stores_the_counts(tmp_path: Path) -> None:
    data = load_interactions_file(duplicated(tmp_path), duplicates="count", test_fraction=0.3)
    assert set(np.unique(data.train.data)) == {1.0}  # training sees each pair once
    counts = {(data.user_ids[u], data.item_ids[i]): c for u, i, c in zip(
        *data.counts.nonzero(), data.counts.data, strict=True)}
    assert counts == {("1", "a"): 2, ("1", "b"): 1, ("1", "c"): 1, ("2", "a"): 1,
                      ("2", "b"): 3, ("2", "c"): 1}
    assert (data.counts > 0).sum() == data.train.nnz + data.test.nnz
    assert carve_validation(data, 0.5, seed=0).counts is data.counts


def test_unknown_duplicates_policy(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="duplicates must be one of error, first, count"):
        load_interactions_file(duplicated(tmp_path), duplicates="sum")


# ---------------------------------------------------------------- in-memory frames
def test_polars_frame() -> None:
    frame = pl.DataFrame({"user": ["u1", "u1", "u2", "u2"], "item": [1, 2, 1, 3],
                          "when": pl.Series([1, 2, 3, 4]).cast(pl.Datetime("ms"))})
    data = interactions_from_frame(frame.with_columns(pl.col("user").cast(pl.Categorical)),
                                   time_col="when", split="leave_last_out")
    assert data.name == "frame" and data.item_ids.tolist() == ["1", "2", "3"]
    assert data.test.nnz == 2


def test_dict_and_tuple_of_arrays() -> None:
    users, items = np.array([0, 0, 1, 1, 1]), np.array(["x", "y", "x", "y", "z"])
    ratings = np.array([5.0, 1.0, 4.0, 5.0, 3.0])
    by_name = interactions_from_frame({"u": users, "i": items, "r": ratings}, user_col="u",
                                      item_col="i", rating_col="r", min_rating=3,
                                      test_fraction=0.5)
    by_position = interactions_from_frame((users, items, ratings), min_rating=3,
                                          test_fraction=0.5)
    assert pairs(by_name) == pairs(by_position) == {("0", "x"), ("1", "x"), ("1", "y"),
                                                    ("1", "z")}


def test_object_column_of_strings_is_accepted() -> None:
    users = np.array(["a", "a", "b", "b"], dtype=object)
    assert interactions_from_frame((users, [1, 2, 1, 2]), test_fraction=0.5).num_users == 2


@pytest.mark.parametrize(("frame", "message"), [
    ({"user": np.array([1.0, np.nan]), "item": [1, 2]},
     r"dict row 1: column 'user' \(user\) has value nan; expected integer or string ids"),
    ({"user": np.array(["a", None], dtype=object), "item": [1, 2]},
     r"dict row 1: column 'user' \(user\) has NoneType value None"),
    ({"user": [1, 2]}, r"dict: missing item column 'item'; found columns \['user'\]"),
    ({"user": [1, 2], "item": [1]}, r"columns have different lengths"),
    ({"user": np.zeros((2, 2)), "item": [1, 2]}, r"has shape \(2, 2\); expected a 1-d array"),
    ({"user": [True, False], "item": [1, 2]}, r"column 'user' \(user\) has dtype bool"),
    ((np.array([1, 2]), np.array([1.5, 2.0])), r"tuple row 0: column 'items' \(item\) has value "
                                              r"1\.5"),
    ((np.array([1, 2]), np.array([1, 2]), np.array(["4", "5"])),
     r"column 'ratings' \(rating\) has dtype <U1; expected finite numbers"),
    ((np.array([1, 2]), np.array([1, 2]), np.array([4.0, np.inf])),
     r"tuple row 1: column 'ratings' \(rating\) has value inf"),
    (pl.DataFrame({"user": [1, None], "item": [1, 2]}),
     r"DataFrame row 1: column 'user' \(user\) is null"),
    (pl.DataFrame({"user": [[1], [2]], "item": [1, 2]}),
     r"column 'user' \(user\) has type List\(Int64\)"),
    ({"user": [], "item": []}, r"dict: has no rows"),
    ("user,item\n1,2\n", r"expected a pandas or polars DataFrame.*got str"),
    (None, r"got NoneType"),
    ((np.array([1]),), r"a tuple of arrays must be \(users, items"),
])
def test_bad_frames_name_column_and_row(frame, message: str) -> None:
    with pytest.raises(DataError, match=message):
        interactions_from_frame(frame, rating_col="rating" if isinstance(frame, dict) and
                                "rating" in frame else None)


class FakePandasFrame:
    """Just the pandas surface the reader uses: ``columns``, ``frame[col]`` with ``isna`` and
    ``to_numpy`` (pandas itself is not a dependency)."""

    class Series:
        def __init__(self, values: list) -> None:
            self.values = values

        def isna(self) -> np.ndarray:
            return np.array([v is None or v != v for v in self.values])

        def to_numpy(self) -> np.ndarray:
            array = np.empty(len(self.values), dtype=object)
            array[:] = self.values
            return array

    def __init__(self, **columns: list) -> None:
        self._columns = columns
        self.columns = list(columns)

    def __getitem__(self, name: str) -> FakePandasFrame.Series:
        return FakePandasFrame.Series(self._columns[name])


def test_pandas_like_frame() -> None:
    frame = FakePandasFrame(user=["a", "a", "b", "b"], item=[1, 2, 1, 2])
    assert interactions_from_frame(frame, test_fraction=0.5).num_items == 2
    with pytest.raises(DataError, match=r"FakePandasFrame row 1: column 'user' \(user\) is "
                                        r"missing \(NaN/None\)"):
        interactions_from_frame(FakePandasFrame(user=["a", float("nan")], item=[1, 2]))


def test_real_pandas_frame() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"user": ["a", "a", "b", "b"], "item": [1, 2, 1, 2],
                          "rating": [1.0, 2.0, None, 4.0]})
    assert interactions_from_frame(frame, test_fraction=0.5).num_users == 2
    with pytest.raises(DataError, match=r"row 2: column 'rating' \(rating\) is missing"):
        interactions_from_frame(frame, rating_col="rating")


# ---------------------------------------------------------------- load_dataset routes paths
def test_load_dataset_reads_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "mine.csv"
    path.write_text(table(",", "u,i,rating,ts"))
    data = load_dataset(str(path), user_col="u", item_col="i", test_fraction=0.3)
    assert data.name == "mine" and len(pairs(data)) == len(ROWS)
    assert load_dataset(path, user_col="u", item_col="i", test_fraction=0.3).num_users == 3
    monkeypatch.chdir(tmp_path)
    assert load_dataset("mine.csv", user_col="u", item_col="i", test_fraction=0.3).num_items == 4
    with pytest.raises(DataError, match=r"elsewhere\.csv: file not found"):
        load_dataset("elsewhere.csv")


def test_registered_name_wins_over_a_same_named_folder(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "synthetic").mkdir()
    assert load_dataset("synthetic").name == "synthetic"


def test_column_options_are_for_own_files_only() -> None:
    with pytest.raises(ConfigError, match="user_col apply to your own files; 'synthetic' is a "
                                          "registered dataset"):
        load_dataset("synthetic", user_col="uid")
    with pytest.raises(ConfigError, match="min_rating needs ratings"):
        load_dataset("synthetic", min_rating=4)
