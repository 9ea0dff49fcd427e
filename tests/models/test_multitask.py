"""Multi-scenario multi-task: the data, LoRA shapes and parameter counts, AutoIFS's flow gates
(pruning, rewind and retrain), metrics, compressed tables, the artifact and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from slimrec.data.multitask import MultiTaskData, load_multitask_data
from slimrec.errors import DataError
from slimrec.models.multitask import AutoIFS, LoRALinear
from slimrec.serve.artifact import load_artifact
from slimrec.spine import build_model, run
from slimrec.tasks import MultiTaskConfig, get_task
from slimrec.tasks.multitask import toy_frame
from slimrec.train.loop import fit

SMALL = {"hidden": [16, 8], "tower": [8]}


@pytest.fixture(scope="module")
def toy() -> MultiTaskData:
    return get_task("multitask").toy_data(seed=0)


def _config(model: str, tmp_path: Path | None = None, **updates: object) -> MultiTaskConfig:
    params = {**SMALL, **({"search_epochs": 1} if model == "autoifs" else {})}
    values = {"model": model, "dim": 8, "seed": 0, "progress": False, "model_params": params,
              "train": {"epochs": 2, "batch_size": 512, "lr": 0.01},
              "out": str(tmp_path / "run") if tmp_path else "runs/latest", **updates}
    return MultiTaskConfig.model_validate(values)


def test_toy_data_shapes(toy: MultiTaskData) -> None:
    assert toy.labels.shape == (3000, 2) and toy.scenarios.shape == (3000,)
    assert toy.task_names == ("click", "like") and toy.scenario_names == ("s0", "s1", "s2")
    assert (toy.labels[:, 1] <= toy.labels[:, 0]).all()  # like implies click here


def test_lora_shapes_and_parameter_counts() -> None:
    torch.manual_seed(0)
    layer = LoRALinear(torch.nn.Linear(10, 6), count=3, rank=2)
    assert layer.down.shape == (3, 2, 10) and layer.up.shape == (3, 6, 2)
    assert sum(p.numel() for p in layer.parameters()) == 10 * 6 + 6 + 3 * 2 * (10 + 6)
    x = torch.randn(4, 10)
    assert torch.equal(layer(x, 1), layer(x))  # adapters start at zero (B = 0)
    with torch.no_grad():
        layer.up.normal_()
    per_row = layer(x, torch.tensor([1, 1, 1, 1]))
    assert per_row.shape == (4, 6) and torch.allclose(per_row, layer(x, 1), atol=1e-6)
    assert not torch.allclose(layer(x, 0), layer(x, 1))


def test_autoifs_counts_its_adapters_and_is_smaller_than_mmoe_and_ple(toy: MultiTaskData
                                                                      ) -> None:
    sizes = {}
    for model in ("shared_bottom", "mmoe", "ple", "autoifs"):
        net = build_model(_config(model), toy)
        sizes[model] = net.structure_report()["parameters"]
    input_dim = 4 * 8  # user, item, city, tags at dim 8
    scenario_adapters = 3 * 2 * ((input_dim + 16) + (16 + 8))
    task_adapters = 2 * 2 * (8 + 8)
    assert sizes["autoifs"]["adapters"] == scenario_adapters + task_adapters
    assert sizes["shared_bottom"]["adapters"] == 0
    assert sizes["autoifs"]["dense"] < min(sizes["mmoe"]["dense"], sizes["ple"]["dense"])


def test_flow_gates_prune_hard_and_keep_a_flow_per_pair(toy: MultiTaskData) -> None:
    net = build_model(_config("autoifs"), toy)
    with torch.no_grad():
        net.gate_logits.fill_(-1.0)
        net.gate_logits[:, :, 0] = 2.0  # shared->shared everywhere
        net.gate_logits[1, 0, 3] = 0.5  # and specific->specific for (s1, click)
        net.gate_logits[2, 1] = torch.tensor([-3.0, -0.2, -2.0, -1.0])  # none open
    decision = net.search_decision()
    flows = torch.tensor(decision["flows"])
    assert flows.shape == (3, 2, 4)
    assert flows[1, 0].tolist() == [1, 0, 0, 1]
    assert flows[2, 1].tolist() == [0, 1, 0, 0]  # the strongest one is kept
    net.apply_search_decision(decision)
    assert not hasattr(net, "gate_logits") and net.pending_search_epochs() == 0
    report = net.structure_report()["flows"]
    assert report["total"] == 24 and report["kept_count"] == int(flows.sum())
    assert report["kept"]["s1/click"] == ["shared->shared", "specific->specific"]


def test_pruned_flows_are_not_computed(toy: MultiTaskData) -> None:
    net = build_model(_config("autoifs"), toy).eval()
    net.apply_search_decision({"flows": [[[1, 1, 0, 0]] * 2] * 3})  # no scenario-specific
    batch = get_task("multitask").batches(toy).tensors.batch(torch.arange(64))
    before = net(batch)
    with torch.no_grad():
        for linear in net.bottom.linears:
            linear.up.normal_()  # scenario adapters: only the pruned flows read them
    assert torch.equal(net(batch), before)


def test_search_rewinds_and_retrains(toy: MultiTaskData) -> None:
    config = _config("autoifs")
    net = build_model(config, toy)
    initial = net.outputs[0].weight.detach().clone()
    result = fit(net, toy, config)
    assert net.pending_search_epochs() == 0 and result.epochs_run == 2
    report = net.structure_report()
    assert report["search"]["epochs"] == 1 and report["flows"]["kept_count"] >= 6
    assert not torch.equal(net.outputs[0].weight, initial)  # trained after the rewind


@pytest.mark.parametrize("model", ["shared_bottom", "mmoe", "ple", "autoifs"])
def test_metrics_and_artifact_round_trip(toy: MultiTaskData, tmp_path: Path, model: str
                                         ) -> None:
    document = run(_config(model, tmp_path), data=toy)
    test = document["metrics"]["test"]
    pairs = [f"auc/{s}/{t}" for s in ("s0", "s1", "s2") for t in ("click", "like")]
    assert set(pairs) <= set(test)
    assert test["auc_mean"] == pytest.approx(np.mean([test[key] for key in pairs]))
    assert document["parameters"]["dense"] > 0
    loaded = load_artifact(tmp_path / "run")
    assert loaded.task == "multitask" and loaded.model.name == model
    again = get_task("multitask").evaluate(loaded.model, toy, "test", _config(model)).metrics
    assert again["auc_mean"] == pytest.approx(test["auc_mean"], abs=1e-9)


@pytest.mark.parametrize("method", ["hash", "quantized", "unified"])
def test_tables_compress_under_the_budget(toy: MultiTaskData, tmp_path: Path, method: str
                                          ) -> None:
    document = run(_config("mmoe", tmp_path, embedding=method, budget="50%",
                           keep_full_rows=0), data=toy)
    memory = document["memory_bytes"]
    assert memory["embeddings"] <= 0.5 * memory["full_fp32_embeddings"]
    assert np.isfinite(document["metrics"]["test"]["auc_mean"])


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    frame = toy_frame(600)
    with pytest.raises(DataError, match="no scenario column 'scenario'"):
        run(_config("mmoe", tmp_path), data=frame.drop("scenario"))
    with pytest.raises(DataError, match="no task column 'like'"):
        run(_config("mmoe", tmp_path), data=frame.drop("like"))
    bad = frame.with_columns(pl.when(pl.int_range(pl.len()) == 7).then(2)
                             .otherwise(pl.col("like")).alias("like"))
    with pytest.raises(DataError, match=r"line 9: task label 'like' is 2; task labels must be "
                                        r"0 or 1"):
        run(_config("mmoe", tmp_path), data=bad)
    renamed = frame.rename({"scenario": "age_group"})
    document = run(_config("shared_bottom", tmp_path, scenario_column="age_group"),
                   data=renamed)
    assert "auc/s0/click" in document["metrics"]["test"]


def test_cli_error_for_a_missing_scenario_column(tmp_path: Path, capsys) -> None:
    from slimrec.cli import main

    code = main(["train", "--task", "multitask", "--dataset", "ml-1m", "--data-dir",
                 str(tmp_path), "--no-progress", "--out", str(tmp_path / "run")])
    assert code == 2 and "no ratings.dat" in capsys.readouterr().err


def test_ml1m_scenarios_and_tasks(shared_data: Path) -> None:
    data = load_multitask_data("ml-1m", shared_data)
    stats = data.stats()
    assert stats["rows"] == 1_000_209
    assert (stats["train"], stats["val"], stats["test"]) == (800_167, 100_021, 100_021)
    assert stats["scenarios"] == {"young": 210_747, "middle": 594_559, "senior": 194_903}
    assert list(stats["fields"]) == ["user", "movie", "gender", "age", "occupation", "zip",
                                     "genres"]
    assert data.labels[:, 0].mean() == pytest.approx(0.5752, abs=1e-4)  # rating > 3
    assert data.labels[:, 1].mean() == pytest.approx(0.2263, abs=1e-4)  # rating > 4


def test_autoifs_is_registered() -> None:
    assert AutoIFS.task == "multitask"
