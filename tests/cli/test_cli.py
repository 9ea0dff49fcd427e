import json

import pytest
import torch

from slimrec.cli import main
from slimrec.errors import ArtifactError
from slimrec.serve.artifact import load_artifact

FAST = ["--dataset", "synthetic", "--dim", "8", "--epochs", "2", "--eval-every", "1",
        "--batch-size", "2048", "--no-progress"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", *FAST, "--out", str(out)]) == 0
    return out


def test_train_writes_results_in_design_shape(run_dir):
    document = json.loads((run_dir / "results.json").read_text())
    for key in ("slimrec_version", "created", "command", "dataset", "task", "model", "dim",
                "seed", "embedding", "memory_bytes", "metrics", "timing", "environment"):
        assert key in document
    assert document["dataset"]["users"] == 2000
    assert document["memory_bytes"]["embeddings"] == (2000 + 1500) * 8 * 4
    assert 0 <= document["metrics"]["test"]["recall@20"] <= 1
    assert "recall@20" in document["metrics"]["val"]
    assert (run_dir / "config.yaml").is_file()


def test_artifact_round_trip(run_dir):
    artifact = load_artifact(run_dir)
    assert len(artifact.vocab["users"]) == 2000 and len(artifact.vocab["items"]) == 1500
    scores = artifact.model.scorer()(torch.arange(3), None)
    assert scores.shape == (3, 1500)
    assert artifact.manifest["task"] == "retrieval"
    assert artifact.manifest["memory_bytes"]["model_total"] == (2000 + 1500) * 8 * 4


def test_corrupt_artifact_fails_loudly(run_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (copy / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        load_artifact(copy)
    with pytest.raises(ArtifactError, match="not a SlimRec model folder"):
        load_artifact(tmp_path)


def test_config_file_with_flag_override(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("dataset: synthetic\ndim: 4\ntrain:\n  epochs: 1\nprogress: false\n")
    assert main(["train", "--config", str(config), "--dim", "6", "--out", str(tmp_path / "r")]) == 0
    document = json.loads((tmp_path / "r" / "results.json").read_text())
    assert document["dim"] == 6 and document["timing"]["epochs"] == 1


@pytest.mark.parametrize(("args", "message"), [
    (["--dataset", "nope"], "unknown dataset 'nope'"),
    (["--embedding", "ful"], "Did you mean 'full'"),
    (["--budget", "0.5"], "too small for method 'full'"),
    (["--budget", "lots"], "invalid budget 'lots'"),
    (["--lr", "-1"], "lr"),
    (["--dataset", "gowalla", "--data-dir", "/nonexistent"], "no such folder"),
])
def test_user_errors_print_one_message(args, message, capsys, tmp_path):
    code = main(["train", *FAST, *args, "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_results_not_overwritten_by_failed_run(run_dir, capsys):
    before = (run_dir / "results.json").read_bytes()
    assert main(["train", *FAST, "--budget", "0.01", "--out", str(run_dir)]) == 2
    assert (run_dir / "results.json").read_bytes() == before


def test_datasets_commands(capsys):
    assert main(["datasets", "list"]) == 0
    listing = capsys.readouterr().out
    assert "gowalla" in listing and "ml-100k" in listing
    assert main(["datasets", "info", "synthetic"]) == 0
    assert '"users": 2000' in capsys.readouterr().out


def test_bad_data_file_exit_code(tmp_path, capsys):
    folder = tmp_path / "gowalla"
    folder.mkdir()
    (folder / "train.txt").write_text("0 1 2\n1 x\n")
    (folder / "test.txt").write_text("0 3\n")
    code = main(["train", *FAST, "--dataset", "gowalla", "--data-dir", str(tmp_path),
                 "--out", str(tmp_path / "o")])
    assert code == 2
    assert "train.txt line 2: item id 'x' is not an integer" in capsys.readouterr().err
