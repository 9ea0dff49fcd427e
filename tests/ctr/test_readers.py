"""CTR dataset readers: Frappe (regenerated CTR version), MovieLens-100K, Criteo, Avazu."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from slimrec.data.ctr_readers import (
    CRITEO_COLUMNS,
    FRAPPE_CONTEXT,
    avazu_batches,
    criteo_batches,
    ctr_dataset,
    load_field_data,
    sample_unused_items,
)
from slimrec.data.fields import encode_batches
from slimrec.errors import ConfigError, DataError


def test_sampled_items_were_never_used_by_the_user() -> None:
    rng = np.random.default_rng(0)
    users = rng.integers(0, 20, 500)
    items = rng.integers(0, 30, 500)
    draws = sample_unused_items(users, items, 30, 2, np.random.default_rng(1))
    used = set(zip(users.tolist(), items.tolist(), strict=True))
    assert draws.shape == (500, 2)
    assert not any((u, i) in used for u, row in zip(users, draws, strict=True) for i in row)
    again = sample_unused_items(users, items, 30, 2, np.random.default_rng(1))
    assert (draws == again).all()


def test_a_user_who_used_every_item_cannot_get_negatives() -> None:
    with pytest.raises(DataError, match="used all 3 items"):
        sample_unused_items(np.zeros(3, dtype=int), np.arange(3), 3, 1,
                            np.random.default_rng(0))


def test_unknown_dataset() -> None:
    with pytest.raises(ConfigError, match="unknown CTR dataset 'frapp'"):
        ctr_dataset("frapp")


def test_missing_file_says_to_pass_data_dir(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--data-dir"):
        load_field_data("frappe", tmp_path)


def test_criteo_sample(shared_data: Path) -> None:
    data = load_field_data("criteo-sample", shared_data, cache=False)
    assert data.num_rows == 200 and int(data.labels.sum()) == 49
    assert data.field_names == [*CRITEO_COLUMNS[14:], *CRITEO_COLUMNS[1:14]]
    assert data.ids.shape == (200, 39)


def test_avazu_sample(shared_data: Path) -> None:
    data = load_field_data("avazu-sample", shared_data, cache=False)
    assert data.num_rows == 100 and int(data.labels.sum()) == 20
    assert "id" not in data.field_names and "click" not in data.field_names
    assert {"hour_of_day", "weekday"} <= set(data.field_names)
    assert len(data.field_names) == 23  # 21 categorical columns + hour_of_day + weekday


def test_headerless_criteo_tsv(tmp_path: Path) -> None:
    """The Kaggle train.txt has no header and tabs; the reader names the 40 columns itself."""
    row = ["1", *["5"] * 13, *["abc"] * 26]
    path = tmp_path / "train.txt"
    path.write_text("\t".join(row) + "\n" + "\t".join(["0", *row[1:]]) + "\n")
    schema, batches = criteo_batches(path, chunk_rows=1)
    data = encode_batches("criteo", str(path), batches, schema, fractions=(1.0, 0.0, 0.0))
    assert data.labels.tolist() == [1, 0] and data.ids.shape == (2, 39)


def test_avazu_bad_hour_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("id,click,hour,C1\n1,0,14102100,5\n2,1,1410210,5\n")
    schema, batches = avazu_batches(path, chunk_rows=10)
    with pytest.raises(DataError, match="line 3: hour '1410210' is not of the form YYMMDDHH"):
        encode_batches("avazu", str(path), batches, schema)


def test_cache_is_reused(shared_data: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SLIMREC_CACHE_DIR", str(tmp_path))
    first = load_field_data("avazu-sample", shared_data)
    cached = list((tmp_path / "datasets" / "ctr").glob("avazu-sample-*.npz"))
    assert len(cached) == 1
    second = load_field_data("avazu-sample", shared_data)
    assert (first.ids == second.ids).all()
    other_seed = load_field_data("avazu-sample", shared_data, seed=1)
    assert not (first.split == other_seed.split).all()


@pytest.mark.real_data
def test_frappe_ctr_version(shared_data: Path) -> None:
    data = load_field_data("frappe", shared_data, cache=False)
    assert data.num_rows == 288_609
    assert data.stats()["train"] == 202_026 and data.stats()["val"] == 57_722
    assert data.field_names == ["user", "item", *FRAPPE_CONTEXT]
    assert int(data.labels.sum()) == 96_203  # every log row is a positive, 2 negatives each
    assert data.field("user").num_embeddings == 958  # 957 users + OOV
    log = pl.read_csv(shared_data / "frappe" / "frappe.csv.gz", separator="\t",
                      infer_schema=False)
    used = set(zip(log["user"], log["item"], strict=True))
    users = data.field("user").vocabulary[data.ids[:, 0]]
    items = data.field("item").vocabulary[data.ids[:, 1]]
    negative = data.labels == 0
    known = items[negative] != "<OOV>"
    pairs = zip(users[negative][known], items[negative][known], strict=True)
    assert not any(pair in used for pair in pairs)


@pytest.mark.real_data
def test_movielens_100k_ctr(shared_data: Path) -> None:
    data = load_field_data("ml-100k", shared_data, cache=False)
    assert data.num_rows == 100_000
    assert data.field_names == ["user", "item", "age", "gender", "occupation", "zip", "genres"]
    assert data.labels.sum() == 55_375  # ratings 4 and 5
    genres = data.field("genres")
    assert genres.multi_hot and {"Action", "Comedy", "Drama"} <= set(genres.vocabulary)
    offsets, _ = data.bags["genres"]
    assert np.diff(offsets).max() > 1  # some movies have several genres


def _write_ml1m(folder: Path, ratings: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.dat").write_text(ratings, encoding="latin-1")
    (folder / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n",
                                      encoding="latin-1")
    (folder / "movies.dat").write_text("10::Toy Story (1995)::Animation|Children's|Comedy\n"
                                       "20::Jumanji (1995)::Adventure\n", encoding="latin-1")


def test_movielens_1m_ctr_from_the_original_files(tmp_path: Path) -> None:
    _write_ml1m(tmp_path / "ml-1m", "1::10::5::978300760\n1::20::3::978302109\n"
                "2::10::4::978301968\n2::20::1::978300275\n")
    data = load_field_data("ml-1m", tmp_path, cache=False, fractions=(0.5, 0.25, 0.25))
    assert data.num_rows == 4 and int(data.labels.sum()) == 2  # ratings >= 4
    assert data.field_names == ["user", "item", "age", "gender", "occupation", "zip", "genres"]
    genres = data.field("genres")  # vocabularies come from the train rows only
    assert genres.multi_hot
    assert set(genres.vocabulary) - {"<OOV>"} <= {"Animation", "Children's", "Comedy",
                                                   "Adventure"}
    assert set(data.field("zip").vocabulary) - {"<OOV>"} <= {"480", "700"}


def test_movielens_1m_ctr_bad_lines_are_named(tmp_path: Path) -> None:
    _write_ml1m(tmp_path / "ml-1m", "1::10::5::978300760\n1::20::x::978302109\n")
    with pytest.raises(DataError, match=r"ratings.dat line 2: rating 'x' is not an integer"):
        load_field_data("ml-1m", tmp_path, cache=False)
    _write_ml1m(tmp_path / "ml-1m", "1::10::5::978300760\n3::20::4::978302109\n")
    with pytest.raises(DataError, match="line 2: user 3 or movie 20 has no row"):
        load_field_data("ml-1m", tmp_path, cache=False)


@pytest.mark.real_data
def test_movielens_1m_ctr(shared_data: Path) -> None:
    data = load_field_data("ml-1m", shared_data, cache=False)
    assert data.num_rows == 1_000_209
    assert data.labels.sum() == 575_281  # ratings 4 and 5
    assert data.field("user").vocabulary.__len__() >= 6_040
