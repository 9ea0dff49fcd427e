"""Regression tests for the bugs the two parallel stacks caused (issue 11, items 3 and 6-12).

The CTR items (1-4) are in tests/ctr/test_spine_ctr.py, the dataset registry (5) in
tests/data/test_registry.py.
"""

import json
import os
import stat

import pytest
import yaml

from slimrec.bench.fit import fit_under_budget
from slimrec.bench.sweep import BenchConfig, run_bench
from slimrec.cli import build_parser, main
from slimrec.config import parse_config
from slimrec.errors import ConfigError
from slimrec.models import MODELS, model_class
from slimrec.spine import load_config
from slimrec.tasks import RetrievalConfig, RunConfig
from slimrec.train.config import TrainConfig

FAST = ["--dataset", "synthetic", "--dim", "8", "--epochs", "1", "--eval-every", "1",
        "--batch-size", "4096", "--no-progress"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("spine") / "run"
    assert main(["train", *FAST, "--out", str(out)]) == 0
    return out


def test_item3_retrieval_manifest_has_task_and_bytes_dict(trained):
    manifest = json.loads((trained / "manifest.json").read_text())
    assert manifest["task"] == "retrieval"
    assert set(manifest["memory_bytes"]) == {"embeddings", "dense", "model_total"}
    document = json.loads((trained / "results.json").read_text())
    assert document["task"] == "retrieval"
    assert document["memory_bytes"]["model_total"] == manifest["memory_bytes"]["model_total"]


def test_item6_one_model_registry_with_one_key_style():
    assert {"mf", "lightgcn", "neumf", "dlrm", "dcnv2", "deepfm", "widedeep"} <= set(MODELS)
    assert all(cls.name == key == key.lower() for key, cls in MODELS.items())
    assert {"retrieval", "ctr"} <= {cls.task for cls in MODELS.values()}
    with pytest.raises(ConfigError, match="is a ctr model, not a retrieval model"):
        model_class("deepfm", "retrieval")
    with pytest.raises(ConfigError, match="Did you mean 'lightgcn'"):
        model_class("lightgnc")


def test_item7_a_size_budget_means_the_same_total_under_train_fit_and_bench(tmp_path, capsys):
    budget = "20KB"
    assert main(["train", *FAST, "--embedding", "hash", "--budget", budget,
                 "--out", str(tmp_path / "train")]) == 0
    printed = capsys.readouterr().out
    assert "budget 20KB (20,000 B of 112,000 B full fp32)" in printed
    trained = json.loads((tmp_path / "train" / "results.json").read_text())
    base = load_config(overrides={"dataset": "synthetic", "dim": 8, "budget": budget,
                                  "progress": False, "out": str(tmp_path / "fit"),
                                  "train": {"epochs": 1}})
    fitted = fit_under_budget(base, ["hash"], search_epochs=1)["document"]
    bench = BenchConfig(dataset="synthetic", out=str(tmp_path / "bench"), methods=["hash"],
                        budgets=[budget], settings={"dim": 8, "train": {"epochs": 1}},
                        progress=False)
    [swept] = run_bench(bench)
    for document in (trained, fitted, swept):
        assert document["embedding"]["budget"] == budget
        assert document["embedding"]["budget_bytes"] == 20_000
        assert document["memory_bytes"]["embeddings"] <= 20_000
    assert (trained["memory_bytes"]["embeddings"] == fitted["memory_bytes"]["embeddings"]
            == swept["memory_bytes"]["embeddings"])


@pytest.mark.parametrize(("budget", "reason"), [
    ("200%", "above 100%"), ("1.5", "above 1"), ("2.5", "above 1"), ("0", ""), ("-5%", ""),
    ("3 parsecs", ""), ("4096", "above 1")])
def test_item8_out_of_range_budgets_fail_by_value(budget, reason, tmp_path, capsys):
    assert main(["train", *FAST, "--embedding", "double_hash", f"--budget={budget}",
                 "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert f"invalid budget {budget!r}" in err and reason in err
    assert "Traceback" not in err and not (tmp_path / "x").exists()


def test_item9_a_typo_fails_before_any_data_loads(tmp_path, capsys):
    # The data folder does not exist: the typo must be what is reported, not the folder.
    assert main(["train", "--dataset", "gowalla", "--data-dir", str(tmp_path / "nowhere"),
                 "--embedding", "graph_populraity", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "Did you mean 'graph_popularity'" in err and "nowhere" not in err
    assert main(["train", "--dataset", "gowalla", "--data-dir", str(tmp_path / "nowhere"),
                 "--embedding-param", "num_bukets=3", "--embedding", "qr",
                 "--out", str(tmp_path / "x")]) == 2
    assert "Did you mean 'num_buckets'" in capsys.readouterr().err


def test_item10_flags_merge_into_yaml_dicts_key_by_key(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"model": "lightgcn",
                                    "model_params": {"keep_graph": True, "num_layers": 3},
                                    "train": {"epochs": 7, "lr": 0.01}}))
    args = build_parser().parse_args(["train", "--config", str(path), "--model-param",
                                      "num_layers=2", "--epochs", "2"])
    from slimrec.cli.flags import run_config

    config = run_config(args)
    assert config.model_params == {"keep_graph": True, "num_layers": 2}
    assert config.train.epochs == 2 and config.train.lr == 0.01


def test_item11_training_settings_declared_once_with_flags_and_defaults(tmp_path):
    train_keys = set(TrainConfig.model_fields)
    assert not train_keys & set(RunConfig.model_fields)  # nested, never repeated flat
    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for key in train_keys:
        assert f"--{key.replace('_', '-')}" in help_text
    assert "(default 3 (retrieval), 2 (ctr)" in help_text  # patience, per task
    # The validation metric is a setting, checked against the task's metrics.
    config = RetrievalConfig(train={"val_metric": "ndcg@10", "epochs": 2, "eval_every": 1},
                             dim=8, progress=False, out=str(tmp_path / "r"))
    from slimrec.spine import run

    document = run(config)
    assert "val_ndcg@10" in document["history"][-1]
    with pytest.raises(ConfigError, match="retrieval metric must look like"):
        parse_config(RetrievalConfig, {"train": {"val_metric": "auc"}})


def test_item12_written_files_follow_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        assert main(["train", *FAST, "--out", str(tmp_path / "r")]) == 0
    finally:
        os.umask(previous)
    for name in ("results.json", "config.yaml", "model.safetensors", "manifest.json"):
        assert stat.S_IMODE((tmp_path / "r" / name).stat().st_mode) == 0o644, name


def test_item5_one_dataset_registry_lists_and_describes_every_kind(capsys):
    assert main(["datasets", "list"]) == 0
    listing = capsys.readouterr().out
    for name in ("gowalla", "frappe", "criteo-sample", "avazu"):
        assert name in listing
    assert "fields" in listing and "interactions" in listing
    assert main(["datasets", "info", "frappe"]) == 0
    assert '"kind": "fields"' in capsys.readouterr().out
    assert main(["datasets", "info", "frapé"]) == 2
    assert "Did you mean 'frappe'" in capsys.readouterr().err


def _own_log(tmp_path, duplicate: bool = False):
    lines = ["uid,iid,ts"] + [f"u{u},i{(u * 7 + k) % 40},{k}" for u in range(60)
                              for k in range(8)]
    if duplicate:
        lines.append("u0,i0,99")
    path = tmp_path / "log.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_own_file_trains_and_compresses_through_the_cli(tmp_path, capsys):
    path = _own_log(tmp_path)
    run = tmp_path / "own"
    assert main(["train", "--dataset", str(path), "--user-col", "uid", "--item-col", "iid",
                 "--time-col", "ts", "--test-split", "leave_last_out", "--dim", "8",
                 "--epochs", "2", "--no-progress", "--out", str(run)]) == 0
    document = json.loads((run / "results.json").read_text())
    assert document["dataset"]["users"] == 60 and document["dataset"]["items"] == 40
    assert main(["compress", "--model", str(run), "--method", "quantized", "--budget", "50%",
                 "--out", str(tmp_path / "small")]) == 0
    compressed = json.loads((tmp_path / "small" / "results.json").read_text())
    assert compressed["embedding"]["method"] == "quantized"
    assert compressed["memory_bytes"]["embeddings"] <= document["memory_bytes"]["embeddings"] / 2


def test_own_file_duplicates_error_by_default_or_follow_the_policy(tmp_path, capsys):
    path = _own_log(tmp_path, duplicate=True)
    common = ["train", "--dataset", str(path), "--user-col", "uid", "--item-col", "iid",
              "--dim", "8", "--epochs", "1", "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "log.csv line 482" in err and "Traceback" not in err
    assert main([*common, "--duplicates", "first", "--out", str(tmp_path / "b")]) == 0


def test_python_one_call_entry_takes_frames_and_rejects_bad_ones(tmp_path):
    import numpy as np
    import polars as pl

    import slimrec
    from slimrec.errors import DataError

    rng = np.random.default_rng(0)
    frame = pl.DataFrame({"user": rng.integers(0, 50, 2000),
                          "item": rng.integers(0, 80, 2000)}).unique()
    settings = {"dim": 8, "train": {"epochs": 1}, "progress": False, "out": str(tmp_path / "f")}
    document = slimrec.run(settings, data=frame)
    assert document["dataset"]["users"] == 50
    with pytest.raises(DataError, match="column 'user'"):
        slimrec.run(settings, data=pl.DataFrame({"user": [1.5, None], "item": [1, 2]}))
    with pytest.raises(DataError):
        slimrec.run(settings, data=[1, 2, 3])
