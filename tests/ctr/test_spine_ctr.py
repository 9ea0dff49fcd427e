"""Regression tests for the CTR side of the bugs the two parallel stacks caused (issue 11,
items 1-4): CTR runs go through the one loop, artifact, compress path and report."""

import json

import pytest

from slimrec.bench.report import write_report
from slimrec.bench.sweep import BenchConfig, run_bench
from slimrec.cli import main
from slimrec.serve.artifact import load_artifact

CTR = ["--task", "ctr", "--dataset", "criteo-sample", "--model", "deepfm", "--dim", "16",
       "--epochs", "1", "--no-progress"]


@pytest.fixture(scope="module")
def ctr_run(tmp_path_factory):
    from tests.ctr.conftest import _write_criteo_like

    folder = tmp_path_factory.mktemp("ctrdata")
    _write_criteo_like(folder)
    out = folder / "run"
    assert main([*["train", *CTR], "--data-dir", str(folder), "--out", str(out)]) == 0
    return folder, out


def test_item1_sparse_gradients_train_under_ctr(ctr_run, tmp_path, capsys):
    folder, _ = ctr_run
    assert main(["train", *CTR, "--data-dir", str(folder), "--embedding-param",
                 "sparse_grad=true", "--out", str(tmp_path / "sparse")]) == 0
    document = json.loads((tmp_path / "sparse" / "results.json").read_text())
    assert 0 <= document["metrics"]["test"]["auc"] <= 1
    assert "Traceback" not in capsys.readouterr().err


def test_item2_compressed_ctr_run_reports_its_method_and_budget(ctr_run, capsys):
    folder, run = ctr_run
    out = run.parent / "quantized"
    assert main(["compress", "--model", str(run), "--method", "quantized", "--budget", "0.25",
                 "--data-dir", str(folder), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "embedding quantized  budget 0.25" in printed
    document = json.loads((out / "results.json").read_text())
    assert document["embedding"]["method"] == "quantized"
    assert document["embedding"]["budget"] == "0.25"
    full = document["memory_bytes"]["full_fp32_embeddings"]
    assert document["embedding"]["budget_bytes"] == int(0.25 * full)
    assert document["memory_bytes"]["embeddings"] <= 0.25 * full
    assert document["compression"]["method"] == "quantized"


def test_item3_ctr_manifest_has_the_same_shape_as_retrieval(ctr_run):
    _, run = ctr_run
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["task"] == "ctr" and manifest["format"] == "slimrec-artifact/2"
    assert set(manifest["memory_bytes"]) == {"embeddings", "dense", "model_total"}
    artifact = load_artifact(run)
    assert artifact.model.name == "deepfm" and "fields" in artifact.vocab


def test_item4_ctr_report_names_its_metrics(criteo_like_dir, tmp_path):
    bench = BenchConfig(task="ctr", dataset="criteo-sample", data_dir=str(criteo_like_dir),
                        out=str(tmp_path / "bench"), models=["deepfm"], methods=["full"],
                        settings={"dim": 4, "train": {"epochs": 1}}, progress=False)
    documents = run_bench(bench)
    report = write_report(bench.out, documents, bench.report_metric(),
                          title="criteo (ctr)")["report"].read_text()
    assert "auc: auc" not in report and "- auc: P(score of a random positive" in report
    assert "| logloss |" in report and "ndcg" not in report
    assert "serving bytes" in report
    header = next(line for line in report.splitlines() if line.startswith("| model |"))
    row = next(line for line in report.splitlines() if line.startswith("| deepfm | full"))
    cells = dict(zip(header.split("|"), row.split("|"), strict=True))
    # Every metric column filled, logloss included; "-" only where a column does not apply
    # (no spread for one seed, no ranking cutoff for tied users in CTR).
    assert {name.strip() for name, value in cells.items() if value.strip() == "-"} == {
        "sd", "tied users"}
