"""The sequential task on the one spine: CLI train, results document, artifact round trip,
serving a given history, every loss, and clear errors for bad input."""

import json

import numpy as np
import pytest
import torch

from slimrec.cli import main
from slimrec.data.sequences import make_synthetic_sequences
from slimrec.errors import BudgetError, ConfigError, DataError
from slimrec.serve.artifact import load_artifact
from slimrec.serve.sequential import SequentialRecommender
from slimrec.spine import load_config, run
from slimrec.tasks import get_task
from slimrec.tasks.sequential import LOSSES

FAST = ["--task", "sequential", "--dim", "8", "--epochs", "2", "--eval-every", "1",
        "--max-len", "12", "--no-progress", "--threads", "1"]


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    """An S3-Rec style file: 60 users, items 1..30, each walking +1 (mod 30)."""
    rng = np.random.default_rng(0)
    lines = []
    for user in range(1, 61):
        start, length = rng.integers(1, 31), rng.integers(4, 15)
        lines.append(" ".join(map(str, [user, *((start + np.arange(length)) % 30 + 1)])))
    path = tmp_path_factory.mktemp("data") / "walks.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def run_dir(tiny_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    # The issue's own command line: --attention is --model-param attention=...
    assert main(["train", *FAST, "--dataset", str(tiny_file), "--model", "sasrec",
                 "--attention", "blossom", "--model-param", "num_heads=2",
                 "--embedding", "graph_popularity", "--budget", "50%", "--out", str(out)]) == 0
    return out


def test_train_writes_the_results_document(run_dir):
    document = json.loads((run_dir / "results.json").read_text())
    assert document["task"] == "sequential" and document["model"] == "sasrec"
    assert document["eval"] == "full" and document["exclude_seen"] is False
    assert document["model_params"]["attention"] == "blossom"
    assert document["dataset"]["users"] == 60 and document["dataset"]["items"] == 30
    assert {"ndcg@10", "recall@10", "hit@20", "ndcg@20", "mrr"} <= set(document["metrics"]["test"])
    assert "ndcg@10" in document["metrics"]["val"]
    ties = document["evaluation"]["test"]
    assert ties["users"] == 60 and set(ties["users_tied_at_cutoff"]) == {"10", "20"}
    table = document["embedding"]["tables"][0]
    assert table["method"] == "graph_popularity" and table["num_embeddings"] == 31
    assert document["memory_bytes"]["embeddings"] <= 31 * 8 * 4 // 2


def test_artifact_round_trip_and_serving(run_dir):
    artifact = load_artifact(run_dir)
    assert artifact.task == "sequential" and artifact.vocab["items"][0] == "1"
    config = load_config(overrides=artifact.manifest["run_config"])
    task = get_task("sequential")
    data = task.load(config)
    reloaded = task.evaluate(artifact.model, data, "test", config).metrics
    assert reloaded == pytest.approx(artifact.manifest["metrics"])
    recommender = SequentialRecommender.load(run_dir)
    top = recommender.recommend(["3", "4", "5"], k=5)
    assert len(top.items) == 5 and top.scores == sorted(top.scores, reverse=True)
    unseen = recommender.recommend(["3", "4", "5"], k=30, exclude_seen=True)
    assert len(unseen.items) == 27 and not {"3", "4", "5"} & set(unseen.items)
    with pytest.raises(DataError, match="history is empty"):
        recommender.recommend([])
    with pytest.raises(DataError, match="item '99' is not in this model's vocabulary"):
        recommender.recommend(["3", "99"])


def test_public_recommender_loads_a_sequential_run(run_dir, tmp_path, capsys):
    import slimrec

    recommender = slimrec.Recommender.load(run_dir)
    assert isinstance(recommender, SequentialRecommender)
    expected = SequentialRecommender.load(run_dir).recommend(["3", "4", "5"], k=5)
    assert recommender.recommend(history=["3", "4", "5"], k=5) == expected
    out = tmp_path / "next.csv"
    assert main(["recommend", "--model", str(run_dir), "--history", "3,4,5", "-k", "5",
                 "--include-seen", "--out", str(out)]) == 0
    rows = out.read_text().splitlines()[1:]
    assert [row.split(",")[2] for row in rows] == expected.items
    assert main(["recommend", "--model", str(run_dir), "--users", "1"]) != 0
    assert "give --history" in capsys.readouterr().err


def test_attention_flag_is_checked(tiny_file, capsys):
    assert main(["train", "--attention", "blossom", "--dataset", str(tiny_file)]) != 0
    assert "--attention applies to sequential runs" in capsys.readouterr().err
    assert main(["train", *FAST, "--dataset", str(tiny_file), "--attention", "blossom",
                 "--model-param", "attention=dense"]) != 0
    assert "contradicts --model-param attention=dense" in capsys.readouterr().err


def test_dense_learns_the_walk(tiny_file, tmp_path):
    document = run({"task": "sequential", "dataset": str(tiny_file), "dim": 16,
                    "max_len": 12, "train": {"epochs": 30, "eval_every": 10, "lr": 1e-2},
                    "progress": False, "threads": 1, "out": str(tmp_path),
                    "model_params": {"dropout": 0.0}})
    assert document["metrics"]["test"]["hit@10"] > 0.6  # random would give 1/3


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_every_loss_trains(loss):
    task = get_task("sequential")
    config = load_config(overrides={"task": "sequential", "dim": 8, "loss": loss,
                                    "num_negatives": 7, "max_len": 10})
    data = task.toy_data()
    model = task.build(config, data)
    batch = next(task.batches(data).epoch(32, np.random.default_rng(0)))
    value = task.loss(model, batch, l2=1e-3)
    value.backward()
    assert torch.isfinite(value) and model.item_table.weight.grad.abs().sum() > 0


def test_own_frame_through_run(tmp_path):
    frame = {"user": ["a"] * 5 + ["b"] * 4, "item": list("xyzxw") + list("wzyx"),
             "t": [5, 1, 2, 3, 4, 1, 2, 3, 4]}
    document = run({"task": "sequential", "dim": 4, "time_col": "t", "max_len": 4,
                    "train": {"epochs": 1}, "progress": False, "out": str(tmp_path)},
                   data=frame)
    assert document["dataset"]["interactions"] == 9
    vocab = json.loads((tmp_path / "vocab.json").read_text())
    assert vocab == {"items": ["w", "x", "y", "z"], "padding": 0}


def test_bad_input(tiny_file, tmp_path, capsys):
    assert main(["train", *FAST, "--dataset", str(tiny_file), "--max-len", "0"]) == 2
    assert "max_len" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="max_len"):
        load_config(overrides={"task": "sequential", "max_len": 0})
    with pytest.raises(BudgetError, match="too small"):
        run({"task": "sequential", "dataset": str(tiny_file), "embedding": "qr",
             "budget": "16B", "progress": False, "out": str(tmp_path)})
    assert main(["train", *FAST, "--dataset", str(tiny_file), "--embedding", "hash",
                 "--budget", "16B", "--out", str(tmp_path)]) == 2
    assert "budget" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="sequential metric"):
        load_config(overrides={"task": "sequential", "val_metric": "auc"})
    with pytest.raises(ConfigError, match="attention"):
        load_config(overrides={"task": "sequential", "model_params": {"attention": "sparse"}})
    with pytest.raises(DataError, match="no training sequence has 2 items"):
        run({"task": "sequential", "progress": False, "out": str(tmp_path)},
            data={"user": ["a", "a", "a"], "item": ["x", "y", "z"]})
    model = get_task("sequential").build(load_config(overrides={"task": "sequential",
                                                                "max_len": 5}),
                                         make_synthetic_sequences(num_users=5, num_items=9))
    with pytest.raises(DataError, match="out of range"):
        model.encode(torch.tensor([[3, 10]]), torch.tensor([2]))


def test_http_recommend_takes_the_history_as_input(run_dir):
    """``slimrec serve`` on a sequential run: /recommend reads a history (no fold-in), with the
    same answers as the Python recommender; user ids and bad items get 422 with a message."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from slimrec.serve.app import create_app

    direct = SequentialRecommender.load(run_dir)
    with TestClient(create_app(run_dir), raise_server_exceptions=False) as http:
        body = http.post("/recommend", json={"history": ["3", 4, "5"], "k": 6,
                                             "exclude_seen": False}).json()
        expected = direct.recommend(["3", "4", "5"], k=6)
        assert body["results"][0]["items"] == expected.items
        assert np.allclose(body["results"][0]["scores"], expected.scores, rtol=1e-5)
        filtered = http.post("/recommend", json={
            "history": ["3", "4", "5"], "k": 30, "exclude_items": ["6", "nope"],
            "include_items": ["6", "7", "8", "3"]}).json()["results"][0]["items"]
        assert sorted(filtered) == ["7", "8"]  # 3 is in the history (exclude_seen by default)
        info = http.get("/model").json()
        assert info["task"] == "sequential" and info["serving"]["items"] == 30
        for request, message in (({"users": ["1"]}, "recommends from a history"),
                                 ({"history": ["3", "99"]}, "'99' is not in this model"),
                                 ({"history": ["3"], "k": 31}, "at most the number of items"),
                                 ({"history": ["3"], "include_items": ["x"]}, "unknown")):
            response = http.post("/recommend", json=request)
            assert response.status_code == 422 and message in response.json()["error"]
        assert http.post("/predict", json={"rows": [{"a": 1}]}).status_code == 409
