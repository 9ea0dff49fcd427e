"""Feature-interaction selection (OptFeature, AutoFIS baseline) for DeepFM, DLRM and DCN-V2:
gate shapes, search -> rewind -> retrain with the selected pairs only, FLOP counts, the
artifact round trip and the CLI setting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from slimrec.cli import main
from slimrec.config import parse_config
from slimrec.data.fields import FieldData
from slimrec.errors import ConfigError
from slimrec.eval.ctr import evaluate_ctr
from slimrec.models.ctr import FieldTensors
from slimrec.models.ctr.dcnv2 import BlockCrossLayer, CrossLayer, DCNv2Config
from slimrec.models.ctr.selection import InteractionSelection, InteractionSelectionConfig
from slimrec.serve.artifact import load_artifact
from slimrec.spine import build_model, run
from slimrec.tasks import CTRConfig
from slimrec.train.loop import fit

SELECTING = ("deepfm", "dlrm", "dcnv2")
DECISION = {"kept_pairs": [[0, 1], [1, 3], [2, 3]], "value_pairs": [[1, 3]]}


def _config(model: str, method: str = "optfeature", tmp_path: Path | None = None,
            **selection: object) -> CTRConfig:
    return CTRConfig(model=model, dim=8, seed=0, progress=False,
                     out=str(tmp_path / "run") if tmp_path else "runs/latest",
                     model_params={"hidden": [16], "interaction_selection":
                                   {"method": method, "search_epochs": 1, **selection}},
                     train={"epochs": 2, "batch_size": 512, "lr": 0.01})


def test_gate_shapes_before_and_after_the_decision() -> None:
    torch.manual_seed(0)
    embedded = torch.randn(5, 4, 8)
    optfeature = InteractionSelection(4, 8, InteractionSelectionConfig(method="optfeature"))
    assert optfeature.num_pairs == 6
    gates = optfeature.gates(embedded)
    assert gates.shape == (5, 6) and ((gates > 0) & (gates < 1)).all()
    autofis = InteractionSelection(4, 8, InteractionSelectionConfig(method="autofis"))
    assert autofis.gates(embedded).shape == (1, 6)

    kept = optfeature.apply(DECISION)
    assert kept.tolist() == [0, 4, 5]  # positions among the triu-ordered pairs
    gates = optfeature.gates(embedded)
    assert gates.shape == (5, 3)
    assert (gates[:, [0, 2]] == 1).all()  # field-grained pairs are simply on
    assert set(gates[:, 1].tolist()) <= {0.0, 1.0}  # the value-grained pair: a hard gate
    assert optfeature.value_weight.shape == (2, 8)  # only fields 1 and 3 are scored
    assert optfeature.penalty() is None and not hasattr(optfeature, "field_logits")
    autofis.apply({"kept_pairs": DECISION["kept_pairs"]})
    assert autofis.gates(embedded) is None


def test_decision_keeps_the_strongest_fraction() -> None:
    selection = InteractionSelection(4, 8, InteractionSelectionConfig(method="autofis",
                                                                      keep=0.5))
    with torch.no_grad():
        selection.field_logits.copy_(torch.tensor([0.1, -3.0, 0.2, 2.0, 0.0, 0.05]))
    assert selection.decide()["kept_pairs"] == [[0, 2], [0, 3], [1, 2]]


def test_setting_from_a_name_or_a_flow_mapping() -> None:
    assert InteractionSelectionConfig.model_validate("optfeature").method == "optfeature"
    parsed = InteractionSelectionConfig.model_validate("{method: autofis, keep: 0.3}")
    assert (parsed.method, parsed.keep) == ("autofis", 0.3)
    with pytest.raises(ConfigError, match="method"):
        parse_config(DCNv2Config, {"interaction_selection": "optfeatures"})
    with pytest.raises(ConfigError, match="keep"):
        parse_config(DCNv2Config, {"interaction_selection": {"method": "autofis", "keep": 0}})


@pytest.mark.parametrize("model", SELECTING)
@pytest.mark.parametrize("method", ["optfeature", "autofis"])
def test_search_then_retrain_computes_only_the_kept_pairs(tiny_fields: FieldData, model: str,
                                                          method: str) -> None:
    config = _config(model, method, keep=0.5)
    net = build_model(config, tiny_fields)
    fields, dim = net.embeddings.num_fields, net.embeddings.embedding_dim
    result = fit(net, tiny_fields, config)
    assert net.pending_search_epochs() == 0 and result.epochs_run == 2
    report = net.structure_report()["interactions"]
    assert report["field_pairs"] == 6 and report["kept_pairs"] == 3
    kept = [[int(r), int(c)] for r, c in zip(net.selection.pair_rows, net.selection.pair_cols,
                                             strict=True)]
    assert kept == report["kept"] and report["search"]["epochs"] == 1
    assert not any("field_logits" in key for key in net.state_dict())
    if model == "dlrm":
        assert net.top[0].in_features == 3 + fields * dim
    if model == "dcnv2":
        assert all(layer.weight.shape == (fields + 2 * 3, dim, dim) for layer in net.cross)
    metrics, _ = evaluate_ctr(net, tiny_fields, "test")
    assert 0 <= metrics["auc"] <= 1


def test_rewind_restarts_the_kept_weights_from_their_initial_values(tiny_fields: FieldData
                                                                    ) -> None:
    config = _config("dlrm", "autofis")
    net = build_model(config, tiny_fields)
    initial = net.top[0].weight.detach().clone()
    net.apply_search_decision(DECISION)
    dims = net.embeddings.num_fields * net.embeddings.embedding_dim
    assert torch.equal(net.top[0].weight, initial[:, [0, 4, 5, *range(6, 6 + dims)]])


def test_block_cross_equals_the_dense_layer_and_drops_whole_blocks() -> None:
    torch.manual_seed(0)
    fields, dim = 3, 4
    dense = CrossLayer(fields * dim)
    blocks = BlockCrossLayer(dense, fields, dim)
    x0, x = torch.randn(6, fields * dim), torch.randn(6, fields * dim)
    assert torch.allclose(blocks(x0, x, None), dense(x0, x), atol=1e-5)
    keep = torch.tensor([0, 1, 3, 4, 8])  # blocks (0,0) (0,1) (1,0) (1,1) (2,2)
    blocks.keep_blocks(keep)
    with torch.no_grad():
        for i, j in [(0, 2), (1, 2), (2, 0), (2, 1)]:
            dense.linear.weight[i * dim:(i + 1) * dim, j * dim:(j + 1) * dim] = 0
    assert torch.allclose(blocks(x0, x, None), dense(x0, x), atol=1e-5)


def test_interaction_flops_and_parameters(tiny_fields: FieldData) -> None:
    """4 fields of dim 8, 6 pairs, 3 kept (one value-grained)."""
    expected = {  # (full flops, full params, kept flops, kept params) without the gates
        "deepfm": (6 * 16, 0, 3 * 16, 0),
        "dlrm": (6 * (16 + 32), 6 * 16, 3 * (16 + 32), 3 * 16),
        "dcnv2": (3 * (16 * 128 + 96), 3 * (16 * 64 + 32), 3 * (10 * 128 + 96),
                  3 * (10 * 64 + 32)),
    }
    for model, (full_flops, full_params, flops, params) in expected.items():
        net = build_model(_config(model), tiny_fields)
        report = net.structure_report()["interactions"]
        assert (report["flops_per_row"], report["params"]) == (full_flops, full_params)
        net.apply_search_decision(DECISION)
        report = net.structure_report()["interactions"]
        gate_flops, gate_params = 2 * 8 * 2 + 3, 8 * 2 + 1  # fields 1 and 3, one pair
        assert report["gate_flops_per_row"] == gate_flops
        assert report["flops_per_row"] == flops + gate_flops
        assert report["params"] == params + gate_params
        assert report["full_flops_per_row"] == full_flops
        assert report["flops_removed_fraction"] == pytest.approx(
            1 - (flops + gate_flops) / full_flops)


@pytest.mark.parametrize("model", SELECTING)
def test_artifact_round_trip(tiny_fields: FieldData, tmp_path: Path, model: str) -> None:
    document = run(_config(model, tmp_path=tmp_path), data=tiny_fields)
    assert document["model_params"]["interaction_selection"]["method"] == "optfeature"
    assert document["interactions"]["kept_pairs"] == 3
    artifact = load_artifact(tmp_path / "run")
    assert artifact.manifest["model_info"]["search_decision"]["kept_pairs"] == \
        document["interactions"]["kept"]
    loaded = artifact.model
    assert loaded.pending_search_epochs() == 0
    assert loaded.memory_bytes() == document["memory_bytes"]["model_total"]
    metrics, _ = evaluate_ctr(loaded, tiny_fields, "test")
    assert metrics["auc"] == pytest.approx(document["metrics"]["test"]["auc"], abs=1e-9)
    batch = FieldTensors(tiny_fields).batch(torch.arange(32))
    assert loaded.structure_report()["interactions"]["kept"] == document["interactions"]["kept"]
    assert torch.isfinite(loaded(batch)).all()


def test_cli_setting(criteo_like_dir: Path, tmp_path: Path, capsys) -> None:
    out, settings = tmp_path / "run", tmp_path / "small.yaml"
    settings.write_text("model_params: {hidden: [8]}\n")
    base = ["train", "--task", "ctr", "--config", str(settings), "--model", "deepfm",
            "--dataset", "criteo-sample", "--data-dir", str(criteo_like_dir), "--dim", "4",
            "--epochs", "1", "--batch-size", "512", "--keep-full-rows", "0",
            "--out", str(out), "--no-progress"]
    assert main([*base, "--model-param", "interaction_selection=optfeature"]) == 0
    document = json.loads((out / "results.json").read_text())
    assert document["interactions"]["method"] == "optfeature"
    assert document["interactions"]["kept_pairs"] == 39 * 38 // 2 // 2
    assert main([*base, "--model-param",
                 "interaction_selection={method: autofis, keep: 0.25, search_epochs: 1}"]) == 0
    document = json.loads((out / "results.json").read_text())
    assert document["interactions"]["kept_pairs"] == int(0.25 * 741)
    capsys.readouterr()
    assert main([*base, "--model-param", "interaction_selection=fis"]) == 2
    assert "interaction_selection" in capsys.readouterr().err
