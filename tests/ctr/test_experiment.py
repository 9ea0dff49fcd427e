"""End to end: `slimrec train --task ctr`, the results document, the artifact, compress."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slimrec.cli import main
from slimrec.compress import compress_run
from slimrec.errors import ArtifactError
from slimrec.eval.ctr import evaluate_ctr, predict
from slimrec.models.ctr import FieldTensors
from slimrec.serve.artifact import load_artifact
from slimrec.spine import prepare
from slimrec.tasks import CTRConfig


def _train(data_dir: Path, out: Path, *flags: str) -> dict:
    config = out.parent / "small.yaml"
    config.write_text("model_params: {hidden: [32]}\ndim: 8\nbatch_size: 256\nlr: 0.01\n"
                      "keep_full_rows: 0\n")
    code = main(["train", "--task", "ctr", "--config", str(config), "--dataset",
                 "criteo-sample", "--data-dir", str(data_dir), "--epochs", "3",
                 "--out", str(out), "--no-progress", *flags])
    assert code == 0
    return json.loads((out / "results.json").read_text())


def test_train_writes_results_in_the_design_shape(criteo_like_dir: Path, tmp_path: Path,
                                                  capsys) -> None:
    out = tmp_path / "run"
    document = _train(criteo_like_dir, out, "--model", "dcnv2", "--embedding", "hash",
                      "--budget", "0.25")
    assert "test  auc=" in capsys.readouterr().out
    assert document["task"] == "ctr" and document["model"] == "dcnv2"
    assert set(document["metrics"]["test"]) == {"auc", "logloss"}
    assert set(document["metrics"]["val"]) == {"auc", "logloss"}
    assert document["metrics"]["test"]["auc"] > 0.7  # clicks follow C1
    memory = document["memory_bytes"]
    assert memory["embeddings"] <= 0.25 * memory["full_fp32_embeddings"]
    assert memory["model_total"] == memory["embeddings"] + memory["dense"]
    assert document["dataset"]["rows"] == 1200 and len(document["dataset"]["fields"]) == 39
    assert document["embedding"]["budget"] == "0.25"
    assert {"epochs", "epoch_seconds_median", "eval_seconds"} <= set(document["timing"])
    assert {"python", "torch", "threads"} <= set(document["environment"])
    assert (out / "config.yaml").is_file() and load_artifact(out).task == "ctr"


def test_artifact_round_trip(criteo_like_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    document = _train(criteo_like_dir, out, "--model", "deepfm", "--embedding", "quantized",
                      "--budget", "0.3")
    artifact = load_artifact(out)
    model, manifest = artifact.model, artifact.manifest
    assert manifest["task"] == "ctr" and manifest["model"] == "deepfm"
    assert manifest["memory_bytes"]["embeddings"] == document["memory_bytes"]["embeddings"]
    assert manifest["memory_bytes"]["model_total"] == document["memory_bytes"]["model_total"]
    data = prepare(CTRConfig.model_validate({**manifest["run_config"], "progress": False}))
    metrics, _ = evaluate_ctr(model, data, "test")
    assert metrics["auc"] == pytest.approx(document["metrics"]["test"]["auc"])
    assert metrics["logloss"] == pytest.approx(document["metrics"]["test"]["logloss"], rel=1e-5)
    vocab = json.loads((out / "vocab.json").read_text())["fields"]
    assert vocab["C1"][0] == "<OOV>" and len(vocab) == 39
    assert artifact.vocab["fields"] == vocab
    (out / "model.safetensors").write_bytes(b"corrupt")
    with pytest.raises(ArtifactError, match="checksum"):
        load_artifact(out)


def test_compress_dense_rank_from_the_cli(criteo_like_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _train(criteo_like_dir, out, "--model", "dcnv2")
    assert main(["compress", "--model", str(out), "--dense-rank", "4x", "--no-progress"]) == 0
    compressed = json.loads((tmp_path / "run-dense4x" / "results.json").read_text())
    block = compressed["compression"]
    assert block["dense_rank"] == "4x" and block["dense_method"] == "output"
    assert set(block["dense_layers"]) == {"cross.0.linear", "cross.1.linear", "cross.2.linear",
                                          "deep.0"}  # not "output": Linear(.., 1)
    before = block["before"]["memory_bytes"]
    after = compressed["memory_bytes"]
    assert after["dense"] < 0.5 * before["dense"]
    assert after["embeddings"] == before["embeddings"]
    assert after["model_total"] == after["embeddings"] + after["dense"]
    manifest = load_artifact(tmp_path / "run-dense4x").manifest
    assert manifest["model_info"]["dense_low_rank"] == block["dense_layers"]
    assert manifest["memory_bytes"]["dense"] == after["dense"]
    assert compressed["metrics"]["test"]["auc"] > 0.6


def test_compress_with_fine_tuning_and_svd(criteo_like_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _train(criteo_like_dir, out, "--model", "widedeep")
    document = compress_run(out, dense_rank="4", dense_method="svd", finetune_epochs=1,
                            out=tmp_path / "small", overrides={"progress": False})
    assert document["timing"]["epochs"] == 1
    assert document["compression"]["dense_layers"] == {"deep.0": 4}
    assert "test_before_finetune" in document["compression"]


def test_compress_needs_something_to_do(criteo_like_dir: Path, tmp_path: Path,
                                        capsys) -> None:
    out = tmp_path / "run"
    _train(criteo_like_dir, out, "--model", "deepfm")
    assert main(["compress", "--model", str(out)]) == 2
    assert "nothing to compress" in capsys.readouterr().err


def test_user_errors_exit_with_a_message(criteo_like_dir: Path, tmp_path: Path,
                                         capsys) -> None:
    common = ["train", "--task", "ctr", "--dataset", "criteo-sample", "--data-dir",
              str(criteo_like_dir), "--out", str(tmp_path / "x"), "--no-progress"]
    assert main([*common, "--model", "fm"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'fm'" in err and "ctr models: dcnv2, deepfm, dlrm, widedeep" in err
    assert main([*common, "--embedding", "qr", "--budget", "0.001"]) == 2
    assert "too small for method 'qr'" in capsys.readouterr().err
    # A retrieval-only setting is refused by name for a CTR run, by flag or in a file.
    assert main([*common, "--val-fraction", "0.2"]) == 2
    assert "--val-fraction applies to retrieval runs, not ctr" in capsys.readouterr().err
    config = tmp_path / "retrieval_key.yaml"
    config.write_text("val_fraction: 0.2\n")
    assert main([*common, "--config", str(config)]) == 2
    assert "unknown key 'val_fraction'" in capsys.readouterr().err


def test_predictions_are_probabilities(criteo_like_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _train(criteo_like_dir, out, "--model", "dlrm", "--embedding", "unified", "--budget", "0.2")
    artifact = load_artifact(out)
    model, manifest = artifact.model, artifact.manifest
    assert list(manifest["tables"]) == ["embeddings.tables.shared"]
    data = prepare(CTRConfig.model_validate(manifest["run_config"]))
    probabilities = predict(model, FieldTensors(data), data.rows("test"))
    assert probabilities.shape == (data.rows("test").size,)
    assert ((probabilities > 0) & (probabilities < 1)).all()


def test_compress_tables_post_training(criteo_like_dir: Path, tmp_path: Path) -> None:
    """`slimrec compress --method quantized` on a CTR run compresses every field table."""
    out = tmp_path / "run"
    trained = _train(criteo_like_dir, out, "--model", "deepfm")
    assert main(["compress", "--model", str(out), "--method", "quantized", "--budget", "0.3",
                 "--no-progress"]) == 0
    document = json.loads((tmp_path / "run-quantized-0.3" / "results.json").read_text())
    memory = document["memory_bytes"]
    assert memory["embeddings"] <= 0.3 * memory["full_fp32_embeddings"]
    assert memory["dense"] == trained["memory_bytes"]["dense"]
    assert {row["method"] for row in document["embedding"]["tables"]} == {"quantized"}
    block = document["compression"]
    assert block["method"] == "quantized" and block["budget"] == "0.3"
    # The budget is a total over all the field tables: 0.3 of their fp32 bytes together.
    assert block["budget_bytes"] == int(0.3 * memory["full_fp32_embeddings"])
    assert memory["embeddings"] <= block["budget_bytes"]
    assert abs(document["metrics"]["test"]["auc"] - trained["metrics"]["test"]["auc"]) < 0.05
    model = load_artifact(tmp_path / "run-quantized-0.3").model
    assert model.embedding_bytes() == memory["embeddings"]
