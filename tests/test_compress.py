"""`slimrec compress`: trained tables compressed post-training into a new evaluated run."""

import json

import pytest
import torch

from slimrec.cli import main
from slimrec.compress import compress_run
from slimrec.errors import ConfigError
from slimrec.serve.artifact import load_artifact

FAST = ["--dataset", "synthetic", "--dim", "8", "--epochs", "2", "--eval-every", "1",
        "--batch-size", "2048", "--no-progress"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    assert main(["train", *FAST, "--out", str(out)]) == 0
    return out


def test_compress_writes_an_evaluated_run_within_budget(run_dir, tmp_path, capsys):
    out = tmp_path / "svd"
    assert main(["compress", "--model", str(run_dir), "--method", "svd", "--budget", "0.5",
                 "--out", str(out), "--no-progress"]) == 0
    assert f"wrote {out}/results.json" in capsys.readouterr().out
    source = json.loads((run_dir / "results.json").read_text())
    document = json.loads((out / "results.json").read_text())
    assert set(source) <= set(document)
    assert document["embedding"]["method"] == "svd" and document["embedding"]["budget"] == "0.5"
    # Rank 3 of 8 per table: 3 * (n + 8) * 4 bytes, the most within half of both full
    # tables together (the budget is a total, shared in proportion to their sizes).
    assert document["memory_bytes"]["embeddings"] == 3 * (2000 + 8) * 4 + 3 * (1500 + 8) * 4
    assert document["dataset"] == source["dataset"]  # the same split was recreated
    assert 0 < document["metrics"]["test"]["recall@20"] <= 1
    assert document["compression"]["source_run"] == str(run_dir)
    assert document["timing"]["epochs"] == 0


def test_compressed_run_is_a_loadable_artifact_matching_the_svd(run_dir, tmp_path):
    compress_run(run_dir, "svd", params={"rank": 8}, out=tmp_path / "exact",
                 overrides={"progress": False})
    source = load_artifact(run_dir).model
    artifact = load_artifact(tmp_path / "exact")
    compressed, manifest = artifact.model, artifact.manifest
    assert manifest["tables"]["item_table"]["method"] == "svd"
    # Full rank reproduces the trained table.
    assert torch.allclose(compressed.item_table.full_weight(), source.item_table.full_weight(),
                          atol=1e-5)


def test_finetuning_trains_the_compressed_tables(run_dir, tmp_path):
    document = compress_run(run_dir, "svd", budget="0.25", out=tmp_path / "tuned",
                            finetune_epochs=1, overrides={"progress": False})
    assert document["timing"]["epochs"] == 1
    assert document["compression"]["finetune_epochs"] == 1


def test_methods_without_from_trained_are_a_clear_error(run_dir, tmp_path, capsys):
    assert main(["compress", "--model", str(run_dir), "--method", "hash", "--budget", "0.1",
                 "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    assert "cannot compress a trained table" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="finetune_epochs must be an int >= 0"):
        compress_run(run_dir, "svd", budget="0.1", finetune_epochs=-1)
