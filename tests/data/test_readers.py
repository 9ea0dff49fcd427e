import gzip
from pathlib import Path

import numpy as np
import pytest

from slimrec.data.build import interactions_from_log, interactions_from_split_logs
from slimrec.data.own_data import read_interactions_file
from slimrec.data.readers import read_atomic_inter, read_lightgcn_file, read_movielens_ratings
from slimrec.errors import DataError


def write(path: Path, text: str) -> Path:
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def lightgcn(tmp_path, train: str, test: str = "0 3\n1 0\n"):
    train_log = read_lightgcn_file(write(tmp_path / "train.txt", train), require_items=True)
    test_log = read_lightgcn_file(write(tmp_path / "test.txt", test), require_items=False)
    return interactions_from_split_logs("t", train_log, test_log)


def test_lightgcn_reads_plain_and_gzip(tmp_path):
    write(tmp_path / "train.txt.gz", "0 1 2\n1 2\n")
    log = read_lightgcn_file(tmp_path / "train.txt.gz", require_items=True)
    assert log.users.tolist() == ["0", "0", "1"]
    assert log.items.tolist() == ["1", "2", "2"]
    assert log.lines.tolist() == [1, 1, 2]


def test_lightgcn_builds_interactions(tmp_path):
    data = lightgcn(tmp_path, "0 1 2\n1 2 3\n")
    assert (data.num_users, data.num_items) == (2, 4)
    assert data.train.nnz == 4 and data.test.nnz == 2
    assert data.train[0].indices.tolist() == [1, 2]
    assert data.test[0].indices.tolist() == [3]


def test_numeric_ids_keep_numeric_order(tmp_path):
    lines = "".join(f"{u} {u + 1}\n" for u in range(12))
    data = lightgcn(tmp_path, lines, "0 0\n")
    assert data.user_ids.tolist() == [str(u) for u in range(12)]


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ("0 1 x\n", "line 1: item id 'x' is not an integer"),
        ("0 1\nu 2\n", "line 2: user id 'u' is not an integer"),
        ("0 1 1\n", "line 1: duplicate interaction"),
        ("0 1\n1\n", "line 2: user 1 has no train items"),
        ("0 1\n0 2\n", "line 2: user 0 already has a line"),
        ("", "file is empty"),
        ("0 -1\n", "item id -1 is negative"),
    ],
)
def test_lightgcn_bad_input_names_file_and_line(tmp_path, train, message):
    with pytest.raises(DataError, match=message) as error:
        lightgcn(tmp_path, train)
    assert "train.txt" in str(error.value)


def test_test_user_without_train_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"test.txt line 1: user '7' has no train items"):
        lightgcn(tmp_path, "0 1\n1 2\n", "7 1\n")


def test_train_test_overlap_is_an_error(tmp_path):
    with pytest.raises(DataError, match="also in"):
        lightgcn(tmp_path, "0 1\n1 2\n", "0 1\n")


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_lightgcn_file(tmp_path / "nope.txt", require_items=True)


def test_atomic_inter(tmp_path):
    header = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    path = write(tmp_path / "x.inter", header +
                 "1\t10\t4\t100\n1\t11\t3\t101\n2\t10\t5\t99\n")
    log = read_atomic_inter(path)
    assert log.users.tolist() == ["1", "1", "2"]
    assert log.ratings.tolist() == [4.0, 3.0, 5.0]
    assert log.timestamps.tolist() == [100.0, 101.0, 99.0]


def test_csv_missing_column(tmp_path):
    path = write(tmp_path / "x.csv", "uid,iid\n1,2\n")
    with pytest.raises(DataError, match=r"missing user column 'user'.*\['uid', 'iid'\]"):
        read_interactions_file(path)


def test_csv_ragged_row_names_line(tmp_path):
    path = write(tmp_path / "x.csv", "user,item\n1,2\n3,4,5\n")
    with pytest.raises(DataError, match=r"x\.csv line 3: expected 2 fields"):
        read_interactions_file(path)


def test_csv_empty_field_and_nan_rating(tmp_path):
    path = write(tmp_path / "x.csv", "user,item,rating\n1,2,4\n,3,4\n")
    with pytest.raises(DataError, match=r"line 3: field 'user' \(user id\) is empty"):
        read_interactions_file(path, rating_col="rating")
    path = write(tmp_path / "y.csv", "user,item,rating\n1,2,4\n2,3,nan\n")
    with pytest.raises(DataError, match="line 3: field 'rating' has value 'nan'"):
        read_interactions_file(path, rating_col="rating")


def test_csv_empty_file(tmp_path):
    with pytest.raises(DataError, match="empty"):
        read_interactions_file(write(tmp_path / "x.csv", ""))
    with pytest.raises(DataError, match="no rows"):
        read_interactions_file(write(tmp_path / "y.csv", "user,item\n"))


def test_parquet(tmp_path):
    import polars as pl

    pl.DataFrame({"u": [1, 2], "i": [3, 4]}).write_parquet(tmp_path / "x.parquet")
    log = read_interactions_file(tmp_path / "x.parquet", user_col="u", item_col="i")
    assert log.items.tolist() == ["3", "4"]


def test_duplicates_in_log_name_both_lines(tmp_path):
    path = write(tmp_path / "x.csv", "user,item\n1,2\n1,3\n1,2\n2,2\n")
    with pytest.raises(DataError, match=r"x.csv line 4: duplicate interaction .* line 2"):
        interactions_from_log("x", read_interactions_file(path))


def test_movielens_udata(tmp_path):
    rows = "".join(f"{u}\t{i}\t{(u + i) % 5 + 1}\t{1000 + i}\n"
                   for u in range(1, 4) for i in range(1, 8))
    log = read_movielens_ratings(write(tmp_path / "u.data", rows))
    data = interactions_from_log("ml", log, "holdout", 0.2, seed=0)
    assert data.num_users == 3 and data.num_items == 7
    assert data.train.nnz + data.test.nnz == 21


def test_movielens_bad_line(tmp_path):
    with pytest.raises(DataError, match=r"u\.data line 2: expected 4 fields"):
        read_movielens_ratings(write(tmp_path / "u.data", "1\t2\t3\t4\n1\t2\n"))


def test_leave_last_out_uses_timestamps(tmp_path):
    path = write(tmp_path / "x.csv", "user,item,t\n1,a,5\n1,b,9\n1,c,1\n2,a,3\n2,c,4\n")
    log = read_interactions_file(path, time_col="t")
    data = interactions_from_log("x", log, "leave_last_out")
    items = data.item_ids
    assert items[data.test[0].indices].tolist() == ["b"]
    assert items[data.test[1].indices].tolist() == ["c"]


def test_min_rating_filters(tmp_path):
    path = write(tmp_path / "x.csv", "user,item,r\n1,a,5\n1,b,1\n1,c,4\n2,a,4\n2,b,5\n")
    log = read_interactions_file(path, rating_col="r")
    data = interactions_from_log("x", log, test_fraction=0.5, min_rating=4)
    assert data.train.nnz + data.test.nnz == 4
    assert np.isin(["a", "b", "c"], data.item_ids).all()
