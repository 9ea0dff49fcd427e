"""Sequences: leave-one-out splits, time order with ties in file order, readers, bad input."""

import gzip

import numpy as np
import pytest

from slimrec.data.readers import InteractionLog
from slimrec.data.registry import dataset_info
from slimrec.data.sequences import (
    Sequences,
    load_sequences,
    pad_windows,
    sequences_from_lists,
    sequences_from_log,
)
from slimrec.errors import ConfigError, DataError


def test_leave_one_out():
    data = sequences_from_lists([["a", "b", "c", "d", "b"], ["c", "a"], ["d", "d", "a"]],
                                user_ids=["u1", "u2", "u3"])
    assert data.item_ids.tolist() == ["a", "b", "c", "d"] and data.vocab_size == 5
    assert data.history(0).tolist() == [1, 2, 3, 4, 2]  # repeats kept, 0 is padding
    test, val = data.holdout("test"), data.holdout("val")
    assert test.users.tolist() == [0, 2] and val.users.tolist() == [0, 2]  # u2 has 2 items
    assert test.targets.tolist() == [2, 1] and val.targets.tolist() == [4, 4]
    assert [data.items[s:e].tolist() for s, e in zip(test.starts, test.ends, strict=True)] == \
        [[1, 2, 3, 4], [4, 4]]
    assert [data.items[s:e].tolist() for s, e in zip(val.starts, val.ends, strict=True)] == \
        [[1, 2, 3], [4]]
    # training: all but the last two items; users with < 3 items train on everything
    assert (data.train_ends - data.indptr[:-1]).tolist() == [3, 2, 1]
    assert data.item_frequencies().tolist() == [0, 2, 1, 2, 1]
    graph = data.train_graph()
    assert graph.shape == (3, 5) and graph[0].indices.tolist() == [1, 2, 3]
    assert graph[2].indices.tolist() == [4]


def test_time_order_with_ties_in_file_order():
    users = np.array(["2", "1", "1", "1", "2", "1"])
    items = np.array(["x", "y", "z", "w", "y", "x"])
    stamps = np.array([5.0, 3.0, 1.0, 3.0, 1.0, 2.0])
    log = InteractionLog("log", users, items, np.arange(6), timestamps=stamps)
    data = sequences_from_log("log", log)
    named = [[data.item_ids[i - 1] for i in data.history(u)] for u in range(2)]
    assert data.user_ids.tolist() == ["1", "2"]
    assert named == [["z", "x", "y", "w"], ["y", "x"]]  # y and w tie at 3: file order


def test_pad_windows():
    items = np.array([5, 6, 7, 8, 9])
    inputs, lengths = pad_windows(items, np.array([0, 3]), np.array([3, 4]))
    assert inputs.tolist() == [[5, 6, 7], [8, 0, 0]] and lengths.tolist() == [3, 1]


def test_readers(tmp_path):
    s3rec = tmp_path / "mine.txt.gz"
    s3rec.write_bytes(gzip.compress(b"1 3 1 2\n2 2 3 3 1\n"))
    data = load_sequences(s3rec)
    assert data.history(1).tolist() == [2, 3, 3, 1] and data.num_items == 3
    ratings = tmp_path / "ratings.dat"
    ratings.write_text("1::20::5::300\n1::10::4::100\n1::30::3::300\n2::10::5::1\n")
    data = load_sequences(ratings)
    assert [data.item_ids[i - 1] for i in data.history(0)] == ["10", "20", "30"]
    own = tmp_path / "log.csv"
    own.write_text("uid,iid,ts\nu,b,2\nu,a,1\nv,a,7\n")
    data = load_sequences(str(own), user_col="uid", item_col="iid", time_col="ts")
    assert [data.item_ids[i - 1] for i in data.history(0)] == ["a", "b"]


def test_registered():
    assert dataset_info("beauty", "sequences").files == ("s3rec/Beauty.txt",)
    assert dataset_info("ml-1m", "sequences").format == "movielens"
    assert load_sequences("synthetic-seq").num_users == 1000


def test_bad_input(tmp_path):
    with pytest.raises(DataError, match="history of user 'b' is empty"):
        sequences_from_lists([["x"], []], user_ids=["a", "b"])
    with pytest.raises(DataError, match="item id 3 at position 1 is out of range"):
        Sequences("s", np.array(["u"]), np.array(["a", "b"]), np.array([0, 2]),
                  np.array([1, 3]))
    with pytest.raises(DataError, match="item id 0 at position 0 is out of range"):
        Sequences("s", np.array(["u"]), np.array(["a"]), np.array([0, 1]), np.array([0]))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(DataError, match="file is empty"):
        load_sequences(empty)
    lonely = tmp_path / "lonely.txt"
    lonely.write_text("1 2\n7\n")
    with pytest.raises(DataError, match="line 2: user '7' has no items"):
        load_sequences(lonely)
    with pytest.raises(ConfigError, match="time_col apply to your own files"):
        load_sequences("beauty", time_col="t")
    with pytest.raises(DataError, match=r"no s3rec/Beauty\.txt"):
        load_sequences("beauty", tmp_path)


def test_real_beauty(shared_data):
    beauty = load_sequences("beauty", shared_data)
    assert (beauty.num_users, beauty.num_items, len(beauty.items)) == (22363, 12101, 198502)
    assert len(beauty.holdout("test")) == 22363  # every user has >= 5 items
