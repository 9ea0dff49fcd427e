"""Chunked synthetic generation and the out-of-core CSR ingest."""

import json

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from slimrec.cli import main
from slimrec.data.scale import SynthSpec, generate_synthetic, ingest
from slimrec.errors import DataError
from slimrec.tasks import RetrievalConfig
from slimrec.tasks.retrieval import RetrievalTask
from slimrec.train.loop import fit

SPEC = SynthSpec(users=600, items=400, interactions=9000, communities=6, seed=4,
                 chunk_rows=2500, row_group_rows=1000)


@pytest.fixture(scope="module")
def chunks(tmp_path_factory):
    out = tmp_path_factory.mktemp("chunks")
    return out, generate_synthetic(out, SPEC)


def all_pairs(folder, meta):
    frames = [pl.read_parquet(folder / entry["name"]) for entry in meta["files"]]
    frame = pl.concat(frames)
    return frame["user"].to_numpy().astype(np.int64), frame["item"].to_numpy().astype(np.int64)


def test_generation_is_seeded_chunked_and_shaped(chunks, tmp_path):
    folder, meta = chunks
    assert len(meta["files"]) >= 3 and meta["interactions"] == sum(
        f["rows"] for f in meta["files"]) > 0.6 * SPEC.interactions
    users, items = all_pairs(folder, meta)
    assert len(np.unique(users * SPEC.items + items)) == len(users)  # each pair once
    assert users.max() < SPEC.users and items.max() < SPEC.items
    popularity = np.sort(np.bincount(items, minlength=SPEC.items))[::-1]
    assert popularity[:40].sum() > 0.3 * popularity.sum()  # a power-law head (uniform: 10%)
    again = generate_synthetic(tmp_path, SPEC)
    assert all_pairs(tmp_path, again)[1].tolist() == items.tolist()


def test_ingest_builds_the_splits_of_every_pair_and_maps_them_on_the_next_run(chunks):
    folder, meta = chunks
    data, report = ingest(folder, val_fraction=0.1, test_fraction=0.2, seed=1)
    assert not report["cached"]
    users, items = all_pairs(folder, meta)
    union = (data.train + data.val + data.test).tocoo()
    expected = sp.csr_matrix((np.ones(len(users)), (users, items)), shape=data.train.shape)
    assert (sp.csr_matrix(union) != expected).nnz == 0
    assert data.train.nnz + data.val.nnz + data.test.nnz == len(users)
    assert 0.15 < data.test.nnz / len(users) < 0.25 and data.val.nnz > 0
    for matrix in (data.train, data.val, data.test):
        assert matrix.has_sorted_indices
        assert (matrix.multiply(data.train if matrix is not data.train else data.test)).nnz == 0
    cached, again = ingest(folder, val_fraction=0.1, test_fraction=0.2, seed=1)
    # Mapped read-only from the cache, not copied (a copy would be writeable).
    assert again["cached"] and not cached.train.indices.flags.writeable
    assert (cached.train != data.train).nnz == 0
    other, _ = ingest(folder, val_fraction=0.1, test_fraction=0.2, seed=2)
    assert (other.test != data.test).nnz > 0  # the split seed matters


def test_training_reads_the_mapped_csr(chunks):
    folder, _ = chunks
    data, _ = ingest(folder, val_fraction=0.1, test_fraction=0.2, seed=1)
    config = RetrievalConfig(dim=8, embedding="hash", budget="25%", progress=False,
                             train={"epochs": 1, "batch_size": 1024, "eval_every": 1})
    model = RetrievalTask().build(config, data)
    result = fit(model, data, config)
    assert result.epochs_run == 1 and result.best_score is not None


def write_bad_chunk(folder, frame, meta):
    meta = {**meta, "files": [{"name": "part-00000.parquet", "rows": frame.height}]}
    frame.write_parquet(folder / "part-00000.parquet", row_group_size=meta["row_group_rows"])
    (folder / "meta.json").write_text(json.dumps(meta))


def test_a_chunk_with_a_wrong_schema_names_the_file(chunks, tmp_path):
    _, meta = chunks
    frame = pl.DataFrame({"user": [1, 2], "item": ["a", "b"]})
    write_bad_chunk(tmp_path, frame, meta)
    with pytest.raises(DataError, match=r"part-00000.parquet .*column 'item' must hold "
                                        r"integer ids; the file has user: Int64, item: String"):
        ingest(tmp_path)


@pytest.mark.parametrize(("bad_item", "message"), [
    (None, "item id is missing"), (-3, "item id -3 is outside"), (400, "item id 400 is outside")])
def test_a_bad_row_names_the_file_and_row_group(chunks, tmp_path, bad_item, message):
    _, meta = chunks
    items = [5] * 2500
    items[2100] = bad_item
    write_bad_chunk(tmp_path, pl.DataFrame({"user": list(range(2500)), "item": items},
                                           schema={"user": pl.Int64, "item": pl.Int64}),
                    {**meta, "users": 2500})
    with pytest.raises(DataError, match=r"part-00000.parquet, row group 2 \(rows "
                                        r"2,000-2,999\), row 2100: " + message):
        ingest(tmp_path)


def test_cli_synth_and_ingest_print_time_and_memory(tmp_path, capsys):
    out = tmp_path / "synth"
    assert main(["datasets", "synth", "--users", "2k", "--items", "500", "--interactions",
                 "20k", "--chunk-rows", "8k", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "chunk 1/" in printed and "peak RSS" in printed and " in 3 chunks " in printed
    assert main(["datasets", "ingest", str(out)]) == 0
    assert "built" in capsys.readouterr().out
    assert main(["datasets", "ingest", str(out)]) == 0
    assert "memory-mapped from the cache" in capsys.readouterr().out
    assert main(["datasets", "synth", "--users", "2k", "--out", str(out)]) == 2
    assert "needs --items, --interactions" in capsys.readouterr().err
