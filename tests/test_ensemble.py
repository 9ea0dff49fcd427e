"""Ensembles under one budget: the budget split (checked exactly), a one-model ensemble equals
the single model, CTR and retrieval fusion, one artifact, the CLI and a too-large K."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from slimrec.cli import main
from slimrec.ensemble import EnsembleModel, build_members, train_ensemble
from slimrec.errors import BudgetError, ConfigError
from slimrec.eval.ctr import predict
from slimrec.models.ctr import FieldTensors
from slimrec.serve.artifact import load_artifact
from slimrec.spine import run
from slimrec.tasks import CTRConfig, RetrievalConfig, get_task


@pytest.fixture(scope="module")
def clicks():
    return get_task("ctr").toy_data(seed=0)


def _ctr(tmp_path: Path, name: str = "run", **updates: object) -> CTRConfig:
    values = {"model": "deepfm", "dim": 8, "seed": 0, "progress": False, "keep_full_rows": 0,
              "model_params": {"hidden": [16]}, "embedding": "hash", "budget": "50%",
              "train": {"epochs": 2, "batch_size": 512, "lr": 0.01},
              "out": str(tmp_path / name), **updates}
    return CTRConfig.model_validate(values)


def test_budget_is_split_in_k_equal_shares_and_checked(clicks, tmp_path: Path) -> None:
    configs, models, total = build_members(_ctr(tmp_path), clicks, 4, ["deepfm", "dcnv2",
                                                                          "dlrm", "deepfm"])
    full = models[0].full_embedding_bytes()
    assert total == int(0.5 * full)
    assert [c.budget.num_bytes for c in configs] == [total // 4] * 4
    assert [c.seed for c in configs] == [0, 1, 2, 3]
    seed_one, _, _ = build_members(_ctr(tmp_path, seed=1), clicks, 4, ["deepfm"])
    assert [c.seed for c in seed_one] == [4, 5, 6, 7]  # no member shared with seed 0
    assert [m.name for m in models] == ["deepfm", "dcnv2", "dlrm", "deepfm"]
    assert all(m.embedding_bytes() <= total // 4 for m in models)
    assert sum(m.embedding_bytes() for m in models) <= total
    with pytest.raises(ConfigError, match="names 2 models for k=3"):
        build_members(_ctr(tmp_path), clicks, 3, ["deepfm", "dlrm"])
    with pytest.raises(ConfigError, match="needs a budget"):
        build_members(_ctr(tmp_path, budget=None), clicks, 2, None)


def test_k_larger_than_the_budget_allows_names_the_smallest_member(clicks, tmp_path: Path
                                                                    ) -> None:
    with pytest.raises(BudgetError, match=r"k=200 members get .* the smallest deepfm member "
                                          r"with hash tables needs [\d,]+ bytes"):
        build_members(_ctr(tmp_path), clicks, 200, None)


def test_one_model_ensemble_equals_the_single_model(clicks, tmp_path: Path) -> None:
    single = run(_ctr(tmp_path, "single"), data=clicks)
    ensemble = train_ensemble(_ctr(tmp_path, "ensemble"), 1, data=clicks)
    assert ensemble["metrics"]["test"] == single["metrics"]["test"]
    assert ensemble["memory_bytes"]["embeddings"] == single["memory_bytes"]["embeddings"]
    rows = clicks.rows("test")
    tensors = FieldTensors(clicks)
    one = load_artifact(tmp_path / "single").model
    both = load_artifact(tmp_path / "ensemble").model
    assert isinstance(both, EnsembleModel)
    assert (predict(one, tensors, rows) == predict(both, tensors, rows)).all()


def test_ctr_ensemble_averages_probabilities_and_round_trips(clicks, tmp_path: Path) -> None:
    document = train_ensemble(_ctr(tmp_path), 2, ["deepfm", "dlrm"], data=clicks)
    assert document["model"] == "ensemble" and document["ensemble"]["k"] == 2
    assert [m["model"] for m in document["ensemble"]["members"]] == ["deepfm", "dlrm"]
    assert document["memory_bytes"]["embeddings"] <= document["ensemble"]["budget_bytes"]
    assert document["embedding"]["budget_bytes"] == document["ensemble"]["budget_bytes"]
    loaded = load_artifact(tmp_path / "run")
    model = loaded.model
    assert loaded.task == "ctr" and model.task == "ctr" and len(model.members) == 2
    batch = FieldTensors(clicks).batch(torch.arange(20))
    mean = torch.stack([torch.sigmoid(m(batch)) for m in model.members]).mean(0)
    assert torch.allclose(torch.sigmoid(model(batch)), mean, atol=1e-6)
    metrics = get_task("ctr").evaluate(model, clicks, "test", _ctr(tmp_path)).metrics
    assert metrics["auc"] == pytest.approx(document["metrics"]["test"]["auc"], abs=1e-9)


def test_retrieval_ensemble_fuses_standardised_scores(tiny_data, tmp_path: Path) -> None:
    config = RetrievalConfig(model="mf", dim=8, seed=0, progress=False, budget="50%",
                             embedding="hash", train={"epochs": 2, "batch_size": 512},
                             out=str(tmp_path / "mf"))
    document = train_ensemble(config, 2, data=tiny_data)
    assert 0 <= document["metrics"]["test"]["recall@20"] <= 1
    model = load_artifact(tmp_path / "mf").model
    users = torch.arange(5)
    fused = model.scorer()(users, None)
    parts = [m.scorer()(users, None) for m in model.members]
    expected = sum((p - p.mean(1, keepdim=True)) / p.std(1, keepdim=True) for p in parts) / 2
    assert torch.allclose(fused, expected, atol=1e-5)
    buffer = torch.full_like(expected, float("nan"))  # the evaluator's reused buffer
    assert model.scorer()(users, buffer) is buffer
    assert torch.allclose(buffer, expected, atol=1e-5)


def test_cli(tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli"
    code = main(["ensemble", "--task", "retrieval", "--k", "2", "--budget", "25%",
                 "--embedding", "hash", "--dim", "8", "--epochs", "1", "--no-progress",
                 "--out", str(out)])
    assert code == 0 and "ensemble of 2" in capsys.readouterr().out
    document = json.loads((out / "results.json").read_text())
    assert document["ensemble"]["k"] == 2 and document["model"] == "ensemble"
    assert main(["ensemble", "--task", "retrieval", "--k", "100000", "--budget", "1%",
                 "--embedding", "hash", "--no-progress", "--out", str(out)]) == 2
    assert "members get" in capsys.readouterr().err
