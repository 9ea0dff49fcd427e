import json

import pytest
import torch
import yaml

from slimrec.bench import sweep
from slimrec.bench.report import (
    Point,
    load_documents,
    markdown,
    pareto_front,
    summarize,
    write_report,
)
from slimrec.bench.sweep import BenchConfig, Only, cells, finished_documents, run_bench
from slimrec.cli import main
from slimrec.errors import ConfigError, SlimRecError
from slimrec.io import file_lock

SETTINGS = {"dim": 8, "epochs": 2, "batch_size": 4096, "lr": 5e-3, "eval_every": 2,
            "ks": [20]}


def bench_config(out, **changes):
    values = {"out": str(out), "models": ["mf"], "methods": ["full", "hash"],
              "budgets": [1.0, "25%"], "seeds": [0], "settings": SETTINGS, "progress": False}
    return BenchConfig(**{**values, **changes})


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    config = bench_config(out)
    return config, run_bench(config, command="test")


def test_one_document_per_cell(finished):
    config, documents = finished
    names = sorted(path.stem for path in (config.runs_path().parent / "cells").glob("*.json"))
    assert names == ["synthetic_mf_full_100pct_s0", "synthetic_mf_full_25pct_s0",
                     "synthetic_mf_hash_100pct_s0", "synthetic_mf_hash_25pct_s0"]
    by_name = {doc["bench"]["cell"]: doc for doc in documents}
    infeasible = by_name["synthetic_mf_full_25pct_s0"]
    assert infeasible["status"] == "infeasible" and "too small for method 'full'" in \
        infeasible["error"]
    done = by_name["synthetic_mf_hash_25pct_s0"]
    for key in ("dataset", "model", "embedding", "memory_bytes", "metrics", "timing",
                "environment", "peak_rss_bytes"):
        assert key in done
    assert done["memory_bytes"]["embeddings"] <= 0.25 * done["memory_bytes"]["full_fp32_embeddings"]
    run = config.runs_path() / "synthetic_mf_hash_25pct_s0"
    assert (run / "model.safetensors").is_file() and not (run / "checkpoint.pt").exists()


def test_finished_cells_are_skipped(finished, monkeypatch):
    config, documents = finished
    cell = config.runs_path().parent / "cells" / "synthetic_mf_hash_100pct_s0.json"
    cell.unlink()
    ran = []
    original = sweep.run_cell
    monkeypatch.setattr(sweep, "run_cell", lambda cell, *a: ran.append(cell.name)
                        or original(cell, *a))
    again = run_bench(config, command="test")
    assert ran == ["synthetic_mf_hash_100pct_s0"]
    assert [d["bench"]["cell"] for d in again] == [d["bench"]["cell"] for d in documents]


def test_only_methods_runs_a_subset_and_reports_every_finished_cell(tmp_path):
    config = bench_config(tmp_path, budgets=[1.0])
    documents = run_bench(config, command="test", only=Only(methods=["hash"]))
    assert [d["bench"]["cell"] for d in documents] == ["synthetic_mf_hash_100pct_s0"]
    documents = run_bench(config, command="test", only=Only(methods=["full"]))
    assert [d["bench"]["cell"] for d in documents] == ["synthetic_mf_full_100pct_s0",
                                                       "synthetic_mf_hash_100pct_s0"]
    with pytest.raises(ConfigError, match="--methods: qr not in the sweep's methods"):
        run_bench(config, command="test", only=Only(methods=["qr"]))


def test_only_seeds_runs_every_method_at_those_seeds_first(tmp_path):
    config = bench_config(tmp_path, budgets=[1.0], seeds=[0, 1])
    documents = run_bench(config, command="test", only=Only(seeds=[1]))
    assert [d["bench"]["cell"] for d in documents] == ["synthetic_mf_full_100pct_s1",
                                                       "synthetic_mf_hash_100pct_s1"]
    assert len(finished_documents(config, Only(seeds=[0]))) == 0
    with pytest.raises(ConfigError, match="--seeds: 2 not in the sweep's seeds \\(0, 1\\)"):
        run_bench(config, command="test", only=Only(seeds=[2]))


def test_only_budgets_selects_by_budget_however_written(tmp_path):
    config = bench_config(tmp_path, budgets=["25%"], seeds=[0, 1],
                          method_budgets={"full": [1.0]})
    documents = run_bench(config, command="test", only=Only(budgets=["0.25"], seeds=[1]))
    assert [d["bench"]["cell"] for d in documents] == ["synthetic_mf_hash_25pct_s1"]
    documents = run_bench(config, command="test", only=Only(budgets=["100%"], seeds=[1]))
    assert [d["bench"]["cell"] for d in documents] == ["synthetic_mf_hash_25pct_s1",
                                                       "synthetic_mf_full_100pct_s1"]
    with pytest.raises(ConfigError, match="--budgets: 5pct not in the sweep's budgets "
                       "\\(25pct, 100pct\\)"):
        run_bench(config, command="test", only=Only(budgets=[0.05]))


def test_report_files(finished):
    config, documents = finished
    paths = write_report(config.out, documents, "recall@20", "full", title="synthetic")
    report = paths["report"].read_text()
    assert "| mf | hash | 25pct |" in report and "## Pareto-optimal set" in report
    assert "synthetic_mf_full_25pct_s0: global budget of" in report
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    front = json.loads(paths["pareto"].read_text())["pareto_optimal"]
    assert front and front[0]["method"] == "hash"
    assert len(load_documents(config.out)) == 4


def test_pareto_front_and_seed_means():
    def point(method, nbytes, value):
        return Point("mf", method, "b", nbytes, 1000, nbytes, value, 0.0, 1, None, 1.0, 1)

    points = [point("a", 100, 0.10), point("b", 200, 0.08), point("c", 300, 0.12),
              point("d", 300, 0.11), point("e", 1000, 0.12)]
    assert [p.method for p in pareto_front(points)] == ["a", "c"]
    base = {"model": "mf", "embedding": {"method": "hash", "budget": "0.1"},
            "memory_bytes": {"embeddings": 10, "full_fp32_embeddings": 100, "model_total": 10},
            "timing": {"train_seconds": 1.0, "epochs": 2}}
    documents = [{**base, "seed": seed,
                  "metrics": {"test": {"recall@20": value, "ndcg@20": value / 2}}}
                 for seed, value in enumerate((0.1, 0.3))]
    (summary,), infeasible = summarize(documents, "recall@20")
    assert summary.value == pytest.approx(0.2) and summary.seeds == 2 and not infeasible
    assert summary.secondary == pytest.approx(0.1)
    assert summary.secondary_std == pytest.approx(0.070711, abs=1e-6)
    # Sample std 0.1414; 95% interval of the mean: t(0.975, 1 df) = 12.706 x 0.1414 / sqrt(2).
    assert summary.value_std == pytest.approx(0.141421, abs=1e-6)
    assert summary.ci95 == pytest.approx(1.27062, abs=1e-4)
    table = markdown([summary], [summary], [], "recall@20", "t", {}, "ndcg@20")
    assert "| 0.2000 ± 1.2706 | 0.1414 |" in table and "95% confidence interval" in table
    with pytest.raises(ConfigError, match="metric 'auc' is not in the results"):
        summarize(documents, "auc")
    # A post-training variant labelled in "bench" is its own point, not a repeat of the method.
    variant = {**documents[0], "bench": {"method": "hash-finetune", "budget": "0.1"}}
    points, _ = summarize([*documents, variant], "recall@20")
    assert [p.method for p in points] == ["hash", "hash-finetune"]


def test_report_flags_capped_runs_shows_ties_and_the_share_of_the_reference():
    def document(method, seed, value, best, tied):
        return {"model": "mf", "seed": seed, "metrics": {"test": {"recall@20": value}},
                "embedding": {"method": method, "budget": None if method == "full" else "0.1"},
                "memory_bytes": {"embeddings": 10, "full_fp32_embeddings": 100,
                                 "model_total": 10},
                "timing": {"train_seconds": 1.0, "epochs": 20, "best_epoch": best,
                           "epoch_cap": 20},
                "evaluation": {"test": {"users": 200, "users_tied_at_cutoff": {"20": tied}}}}

    documents = [document("full", 0, 0.20, 15, 0), document("full", 1, 0.20, 10, 0),
                 document("graph", 0, 0.10, 20, 50), document("graph", 1, 0.14, 5, 30)]
    full, graph = summarize(documents, "recall@20")[0]
    assert (full.best_epoch, full.capped, full.tied_share) == (12.5, 0, 0.0)
    # One seed of graph kept the cap's last epoch: it was still improving when stopped.
    assert (graph.best_epoch, graph.capped, graph.tied_share) == (12.5, 1, 0.2)
    table = markdown([full, graph], [], [], "recall@20", "t", {}, "ndcg@20")
    assert "| 0.2000 ± 0.0000 | 0.0000 | 100% |" in table and "| 20 (12) | 0.0% |" in table
    assert "| 60% |" in table and "| 20 (12) ↑ | 20.0% |" in table


def test_absolute_budget_is_a_total_over_both_tables(tmp_path, capsys):
    """A size is a total over the user and item tables, resolved the same by a bench cell,
    `slimrec train` and `slimrec fit` (the sweep no longer converts it per table)."""
    budget = "20000B"  # of 112,000 B full fp32 (3,500 ids x dim 8): neither table alone
    config = bench_config(tmp_path / "bench", methods=["hash"], budgets=[budget],
                          settings={**SETTINGS, "epochs": 1, "eval_every": 1})
    (cell,) = cells(config)
    assert str(cell.config.budget) == budget and cell.config.budget.num_bytes == 20_000
    (bench_doc,) = run_bench(config, command="test")
    flags = ["--dim", "8", "--epochs", "1", "--eval-every", "1", "--batch-size", "4096",
             "--ks", "20", "--lr", "5e-3", "--no-progress", "--budget", budget]
    assert main(["train", *flags, "--embedding", "hash", "--out", str(tmp_path / "train")]) == 0
    assert main(["fit", *flags, "--methods", "hash", "--search-epochs", "1",
                 "--out", str(tmp_path / "fit")]) == 0
    capsys.readouterr()
    train_doc = json.loads((tmp_path / "train" / "results.json").read_text())
    fit_doc = json.loads((tmp_path / "fit" / "results.json").read_text())
    for document in (bench_doc, train_doc, fit_doc):
        assert document["embedding"]["budget"] == budget
        assert document["embedding"]["budget_bytes"] == 20_000
        assert document["memory_bytes"]["full_fp32_embeddings"] == 112_000
        memory = document["memory_bytes"]["embeddings"]
        assert memory == sum(row["memory_bytes"] for row in document["embedding"]["tables"])
        assert memory <= 20_000
    # The same settings build the same tables, however the run was started.
    assert (bench_doc["embedding"]["tables"] == train_doc["embedding"]["tables"]
            == fit_doc["embedding"]["tables"])
    # The total is split over both tables, in proportion to their full sizes.
    user, item = (row["memory_bytes"] for row in train_doc["embedding"]["tables"])
    assert user > 8 * 4 * 100 and item > 8 * 4 * 100
    assert json.loads((tmp_path / "fit" / "fit.json").read_text())["budget_bytes"] == 20_000


@pytest.mark.parametrize(("changes", "message"), [
    ({"models": ["mff"]}, "unknown model 'mff'. Did you mean 'mf'"),
    ({"models": ["deepfm"]}, "model 'deepfm' is a ctr model, not a retrieval model"),
    ({"methods": ["hsh"]}, "Did you mean 'hash'"),
    ({"settings": {"budget": "0.1"}}, "budget are set per cell"),
    ({"settings": {"epoch": 3}}, "Did you mean 'epochs'"),
    ({"budgets": ["lots"]}, "invalid budget 'lots'"),
    ({"budgets": [4096]}, "a bare number above 1"),
])
def test_config_errors_before_anything_runs(tmp_path, changes, message):
    with pytest.raises(SlimRecError, match=message):
        cells(bench_config(tmp_path, **changes))


def test_cli_bench_and_errors(finished, tmp_path, capsys):
    config, _ = finished
    file = tmp_path / "bench.yaml"
    file.write_text(yaml.safe_dump(config.model_dump()))
    assert main(["bench", "--config", str(file), "--report-only"]) == 0
    assert "Pareto-optimal set" in capsys.readouterr().out
    file.write_text("methods: [full]\nmodel: mf\n")
    assert main(["bench", "--config", str(file)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'model'. Did you mean 'models'" in err and "Traceback" not in err


def test_a_folder_shared_with_another_sweep_is_named_before_its_report_is_overwritten(
        finished, tmp_path, capsys):
    config, _ = finished
    file = tmp_path / "bench.yaml"
    file.write_text(yaml.safe_dump(config.model_dump()))
    assert main(["bench", "--config", str(file), "--report-only"]) == 0
    assert "warning" not in capsys.readouterr().err
    narrower = {**config.model_dump(), "methods": ["hash"], "budgets": ["25%"]}
    file.write_text(yaml.safe_dump(narrower))
    assert main(["bench", "--config", str(file), "--report-only"]) == 0
    err = capsys.readouterr().err
    assert "holds 3 result(s) that are not cells of this sweep" in err
    assert "synthetic_mf_full_100pct_s0" in err and "its own 'out'" in err
    extra = str(config.runs_path().parent / "cells" / "*_100pct_s0.json")
    assert main(["bench", "--config", str(file), "--report-only", "--extra", extra]) == 0
    assert "holds 1 result(s)" in capsys.readouterr().err  # --extra reported the other two
    file.write_text(yaml.safe_dump(config.model_dump()))  # the whole report again, for the
    assert main(["bench", "--config", str(file), "--report-only"]) == 0  # other tests


def test_grid_order_and_method_budgets(tmp_path):
    config = bench_config(tmp_path, methods=["full", "hash", "qr"], budgets=["25%", 0.1],
                          method_budgets={"full": [1.0]})
    names = [cell.name for cell in cells(config)]
    assert names == ["synthetic_mf_hash_25pct_s0", "synthetic_mf_qr_25pct_s0",
                     "synthetic_mf_hash_10pct_s0", "synthetic_mf_qr_10pct_s0",
                     "synthetic_mf_full_100pct_s0"]


def test_cli_report_merges_extra_results_once(finished, tmp_path, capsys):
    config, documents = finished
    file = tmp_path / "bench.yaml"
    file.write_text(yaml.safe_dump(config.model_dump()))
    done = next(d for d in documents if d["bench"]["cell"] == "synthetic_mf_hash_25pct_s0")
    duplicate = {key: value for key, value in done.items() if key != "bench"}
    other = {**duplicate, "model": "lightgcn"}
    (tmp_path / "r_dup.json").write_text(json.dumps(duplicate))
    (tmp_path / "r_other.json").write_text(json.dumps(other))
    assert main(["bench", "--config", str(file), "--report-only",
                 "--extra", str(tmp_path / "r_*.json")]) == 0
    report = capsys.readouterr().out
    assert report.count("| mf | hash | 25pct |") == 1 and "| lightgcn | hash | 25pct |" in report
    assert main(["bench", "--config", str(file), "--report-only", "--extra", "/nope/*.json"]) == 2
    assert "matches no file" in capsys.readouterr().err


@pytest.mark.real_data
def test_ctr_sweep_reports_auc(shared_data, tmp_path):
    config = BenchConfig(task="ctr", dataset="criteo-sample", data_dir=str(shared_data),
                         out=str(tmp_path), models=["deepfm"], methods=["full", "hash"],
                         budgets=[0.25], method_budgets={"full": [1.0]},
                         settings={"dim": 4, "epochs": 1}, progress=False)
    documents = run_bench(config, command="test")
    assert sorted(d["embedding"]["method"] for d in documents) == ["full", "hash"]
    assert all(d["task"] == "ctr" and "auc" in d["metrics"]["test"] for d in documents)
    paths = write_report(config.out, documents, config.report_metric(), "full", title="ctr")
    assert "| auc |" in paths["report"].read_text()


def test_held_lock_excludes_others(tmp_path):
    import fcntl

    lock = tmp_path / "bench.lock"
    with file_lock(str(lock)), open(lock) as other, pytest.raises(BlockingIOError):
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(lock, "a") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released after the block
    with file_lock(None):
        pass


def test_cells_train_with_the_configured_threads(tmp_path, monkeypatch):
    threads = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    config = bench_config(tmp_path, methods=["full"], budgets=[1.0],
                          settings={**SETTINGS, "threads": 1})
    run_bench(config, command="test")
    assert threads == [1]
