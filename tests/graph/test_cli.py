"""``slimrec cluster`` and ``slimrec train --embedding graph`` end to end on the synthetic data."""

import json

import numpy as np
import pytest
import torch

from slimrec.cli import main
from slimrec.serve.artifact import load_artifact


def test_cluster_prints_statistics_and_writes_the_map(tmp_path, capsys):
    out = tmp_path / "map.npz"
    assert main(["cluster", "--budget", "0.1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for text in ("resolution", "clusters", "modularity", "edges inside clusters", "p90"):
        assert text in printed
    with np.load(out) as stored:
        assert stored["user_row"].shape == (2000,) and stored["item_row"].shape == (1500,)
        assert stored["user_cluster"].shape == (2000,)
        # Rows fit the 10% budget of a dim-64 table (int16 map: 2 bytes an id).
        rows = stored["item_row"].max() + 1
        assert rows * 64 * 4 + 1500 * 2 <= 0.1 * 1500 * 64 * 4
        assert float(stored["resolution"]) > 0
    assert main(["cluster", "--resolution", "2", "--out", str(tmp_path / "r.npz")]) == 0


@pytest.mark.parametrize("flags", [[], ["--budget", "0.1", "--resolution", "3"]])
def test_cluster_needs_budget_or_resolution(tmp_path, capsys, flags):
    assert main(["cluster", *flags, "--out", str(tmp_path / "x.npz")]) == 2
    assert "exactly one of --budget" in capsys.readouterr().err


def test_train_with_graph_tables_and_reload(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "synthetic", "--dim", "8", "--epochs", "1",
                 "--embedding", "graph", "--budget", "0.1", "--no-progress",
                 "--out", str(out)]) == 0
    document = json.loads((out / "results.json").read_text())
    assert document["memory_bytes"]["embeddings"] <= 0.1 * (2000 + 1500) * 8 * 4
    params = document["embedding"]["params"]
    assert params["user_table"]["resolution"] == params["item_table"]["resolution"]
    artifact = load_artifact(out)
    model, manifest = artifact.model, artifact.manifest
    assert manifest["memory_bytes"]["model_total"] == document["memory_bytes"]["model_total"]
    scores = model.scorer()(torch.arange(5), None)
    assert scores.shape == (5, 1500) and torch.isfinite(scores).all()
