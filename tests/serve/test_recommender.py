import csv
import io
import json
import os
import shutil

import numpy as np
import pytest
import torch

from slimrec.cli import main
from slimrec.data.splits import carve_validation
from slimrec.errors import ArtifactError, ConfigError
from slimrec.serve.recommender import Recommender, read_user_ids, recommendations_csv
from slimrec.spine import run
from slimrec.tasks import RetrievalConfig


def train_run(data, out, **settings):
    config = RetrievalConfig(dim=8, epochs=2, batch_size=512, lr=5e-3, eval_every=1,
                             progress=False, out=str(out), **settings)
    return run(config, command="test", data=data)


@pytest.fixture(scope="module")
def data(tiny_data):
    return carve_validation(tiny_data, 0.1, seed=0)


@pytest.fixture(scope="module")
def run_dir(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("mf")
    train_run(data, out)
    return out


def test_recommendations_are_the_masked_top_k(run_dir, data):
    recommender = Recommender.load(run_dir)
    users = ["5", "17", "0"]
    results = recommender.recommend(users, k=10)
    scores = recommender.model.scorer()(torch.tensor([5, 17, 0]), None)
    seen = (data.train + data.val).toarray() > 0
    for result, row, user in zip(results, scores, (5, 17, 0), strict=True):
        assert result.user == str(user) and result.source == "model"
        expected = torch.where(torch.from_numpy(seen[user]), -torch.inf, row).topk(10).indices
        assert result.items == [str(i) for i in expected.tolist()]
        assert not any(seen[user][int(item)] for item in result.items)
        assert result.scores == sorted(result.scores, reverse=True)


def test_tied_scores_follow_the_seeded_item_order_not_ids(data, tmp_path):
    """Ids hashed to one row score identically; the served top K breaks those ties by the
    evaluation's seeded random item order (``tie_order``), never by id."""
    from slimrec.eval.ranking import tie_order

    train_run(data, tmp_path, embedding="hash", budget="10%", seed=3)
    recommender = Recommender.load(tmp_path)
    rank = tie_order(data.num_items, 3).numpy()
    scores = recommender.model.scorer()(torch.tensor([5]), None)[0].numpy()
    seen = (data.train + data.val).toarray()[5] > 0
    unseen = np.flatnonzero(~seen)
    expected = unseen[np.lexsort((rank[unseen], -scores[unseen]))][:15]
    result = recommender.recommend(["5"], k=15)[0]
    assert result.items == [str(item) for item in expected]
    assert len(set(scores[expected])) < 15  # the cutoff really falls inside tied groups
    by_id = unseen[np.lexsort((unseen, -scores[unseen]))][:15]
    assert not np.array_equal(by_id, expected)


def test_stored_item_scoring_matches_the_fp32_copy(data, tmp_path):
    """A quantized item table is scored from its int8 codes, without an fp32 copy, with the
    same answers as scoring from the dequantized matrix."""
    train_run(data, tmp_path, embedding="quantized", budget="30%")
    stored = Recommender.load(tmp_path)
    dense = Recommender.load(tmp_path, item_scoring="fp32")
    assert stored.item_scoring == "stored"
    users = [str(u) for u in range(12)]
    for a, b in zip(stored.recommend(users, k=10), dense.recommend(users, k=10), strict=True):
        assert a.items == b.items
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match="item_scoring must be one of stored, fp32"):
        Recommender.load(tmp_path, item_scoring="int8")


def test_include_seen_and_k_larger_than_catalogue(run_dir, data):
    recommender = Recommender.load(run_dir)
    everything = recommender.recommend(["3"], k=10_000, exclude_seen=False)[0]
    assert len(everything.items) == data.num_items
    unseen = recommender.recommend(["3"], k=10_000)[0]
    seen_count = (data.train + data.val)[3].nnz
    assert len(unseen.items) == data.num_items - seen_count
    assert np.isfinite(unseen.scores).all()


def test_unknown_users_message_or_flagged_fallback(run_dir, data):
    recommender = Recommender.load(run_dir)
    unknown, known = recommender.recommend(["nobody", "4"], k=5)
    assert unknown.source == "unknown" and unknown.items == []
    assert "'nobody' is unknown to this model" in unknown.message
    assert known.source == "model" and len(known.items) == 5
    popular = recommender.recommend(["nobody"], k=5, fallback="popular")[0]
    counts = np.bincount((data.train + data.val).indices, minlength=data.num_items)
    assert popular.source == "popular" and "most popular" in popular.message
    assert popular.scores == sorted(counts, reverse=True)[:5]
    assert [counts[int(item)] for item in popular.items] == popular.scores


def test_batches_give_the_same_answers(run_dir):
    recommender = Recommender.load(run_dir)
    users = [str(u) for u in range(40)]
    assert recommender.recommend(users, batch_size=7) == recommender.recommend(users)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"k": 0}, "k must be an int >= 1"),
    ({"fallback": "random"}, "fallback must be one of"),
])
def test_bad_arguments(run_dir, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Recommender.load(run_dir).recommend(["1"], **kwargs)


def test_footprint_disk_close_to_memory(run_dir, data):
    sizes = Recommender.load(run_dir).footprint()
    memory = (data.num_users + data.num_items) * 8 * 4
    assert sizes["model_memory_bytes"] == memory
    # safetensors adds only a JSON header to the tensor bytes
    assert memory < sizes["model.safetensors_disk_bytes"] < memory + 1024
    seen = data.train + data.val
    # int16 item ids (200 items) and int16 row pointers (nnz < 32768)
    assert sizes["seen_items_memory_bytes"] == 2 * (seen.nnz + data.num_users + 1)
    results = json.loads((run_dir / "results.json").read_text())
    assert (results["memory_bytes"]["extra_files"]["seen.safetensors"]
            == sizes["seen_items_memory_bytes"])
    assert results["memory_bytes"]["inference"] == memory


def test_corrupt_or_foreign_folder_fails_clearly(run_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    blob = bytearray((copy / "seen.safetensors").read_bytes())
    blob[-1] ^= 0xFF
    (copy / "seen.safetensors").write_bytes(bytes(blob))
    with pytest.raises(ArtifactError, match=r"seen\.safetensors: checksum mismatch"):
        Recommender.load(copy)
    shutil.copy(run_dir / "seen.safetensors", copy / "seen.safetensors")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps({**manifest, "model": "deepfm",
                                                    "task": "ctr"}))
    with pytest.raises(ArtifactError,
                       match=r"holds a ctr model \(deepfm\); this needs a retrieval or "
                             r"sequential model"):
        Recommender.load(copy)
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "manifest.json").write_text('{"format": "other/2"}')
    with pytest.raises(ArtifactError, match="not a SlimRec manifest"):
        Recommender.load(tmp_path / "foreign")


def test_lightgcn_run_serves_propagated_vectors(data, tmp_path):
    document = train_run(data, tmp_path, model="lightgcn", model_params={"num_layers": 2})
    recommender = Recommender.load(tmp_path)
    assert recommender.manifest["trained_model"] == "lightgcn"
    assert (document["memory_bytes"]["inference"]
            == recommender.manifest["memory_bytes"]["model_total"])
    assert len(recommender.recommend(["1"], k=3)[0].items) == 3


def test_csv_and_users_file(tmp_path):
    from slimrec.serve.recommender import Recommendation

    text = recommendations_csv([Recommendation("u1", ["a", "b"], [2.0, 1.5]),
                                Recommendation("u2", source="unknown", message="x")])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["user"], r["rank"], r["item"]) for r in rows] == [("u1", "1", "a"),
                                                                   ("u1", "2", "b")]
    users = tmp_path / "users.txt"
    users.write_text("u1\n\n u2 \n")
    assert read_user_ids(users) == ["u1", "u2"]
    with pytest.raises(ConfigError, match="not found"):
        read_user_ids(tmp_path / "missing.txt")


def test_cli_recommend(run_dir, tmp_path, capsys):
    out = tmp_path / "recs.csv"
    assert main(["recommend", "--model", str(run_dir), "--users", "1,2,ghost", "-k", "4",
                 "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "warning: user 'ghost' is unknown" in captured.err
    assert "wrote" in captured.out and "1 unknown" in captured.out
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 8 and {r["user"] for r in rows} == {"1", "2"}
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]

    users = tmp_path / "users.txt"
    users.write_text("3\nghost\n")
    assert main(["recommend", "--model", str(run_dir), "--users-file", str(users),
                 "--fallback", "popular"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {r["source"] for r in rows} == {"model", "popular"} and len(rows) == 40


def test_cli_recommend_for_a_history_folds_in_a_new_user(run_dir, capsys):
    history = Recommender.load(run_dir).item_ids[:3].tolist()
    expected = Recommender.load(run_dir).recommend_history(history, k=5)
    assert main(["recommend", "--model", str(run_dir), "--history", ",".join(history),
                 "-k", "5"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [row["item"] for row in rows] == expected.items
    assert not set(history) & {row["item"] for row in rows}


@pytest.mark.parametrize(("args", "message"), [
    (["--users", "1"], "no manifest.json; not a SlimRec model folder"),
    (["--users-file", "/nonexistent/users.txt"], "users file /nonexistent/users.txt not found"),
    (["--users", " , "], "--users is empty"),
])
def test_cli_recommend_errors(args, message, tmp_path, run_dir, capsys):
    model = tmp_path if args[0] == "--users" and args[1] == "1" else run_dir
    assert main(["recommend", "--model", str(model), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
