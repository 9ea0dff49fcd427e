import json

import pytest

from slimrec.bench.fit import FIT_FILE, fit_under_budget
from slimrec.cli import main
from slimrec.data.splits import carve_validation
from slimrec.errors import BudgetError, ConfigError
from slimrec.tasks import RetrievalConfig

BASE = {"dim": 8, "epochs": 3, "batch_size": 4096, "lr": 5e-3, "eval_every": 3, "ks": [20],
        "progress": False}


@pytest.fixture(scope="module")
def data(tiny_data):
    return carve_validation(tiny_data, 0.1, seed=0)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("fit")
    config = RetrievalConfig(budget="25%", out=str(out), **BASE)
    return out, fit_under_budget(config, ["full", "hash", "qr"], search_epochs=1, command="t",
                                 data=data)


def test_best_validation_candidate_is_trained_and_written(fitted):
    out, fit = fitted
    scored = [c for c in fit["candidates"] if c["val"] is not None]
    assert {c["method"] for c in scored} == {"hash", "qr"}
    best = max(scored, key=lambda c: c["val"])
    assert fit["choice"]["method"] == best["method"]
    assert "best validation recall@20" in fit["choice"]["why"]
    unfit = next(c for c in fit["candidates"] if c["method"] == "full")
    assert unfit["val"] is None and "too small" in unfit["reason"]
    document = json.loads((out / "results.json").read_text())
    assert document["embedding"]["method"] == best["method"]
    assert document["timing"]["epochs"] == 3
    assert json.loads((out / FIT_FILE).read_text())["choice"]["method"] == best["method"]
    assert (out / "model.safetensors").is_file()
    assert "| 1 |" in fit["table"] and "| - | full |" in fit["table"]


def test_absolute_budget_bounds_both_tables_together(tmp_path, data):
    config = RetrievalConfig(budget="4KB", out=str(tmp_path), **BASE)
    fit = fit_under_budget(config, ["hash"], dims=[8, 16], search_epochs=1, data=data)
    assert {c["dim"] for c in fit["candidates"]} == {8, 16}
    assert fit["budget_bytes"] == fit["document"]["embedding"]["budget_bytes"] == 4_000
    assert fit["document"]["memory_bytes"]["embeddings"] <= 4_000
    assert all(c["embedding_bytes"] <= 4_000 for c in fit["candidates"])


def test_nothing_fits_or_bad_requests(tmp_path, data, tiny_data):
    config = RetrievalConfig(budget="25%", out=str(tmp_path), **BASE)
    with pytest.raises(BudgetError, match="no candidate fits"):
        fit_under_budget(config, ["full"], search_epochs=1, data=data)
    with pytest.raises(ConfigError, match="fit needs a budget"):
        fit_under_budget(config.model_copy(update={"budget": None}), ["hash"], data=data)
    with pytest.raises(ConfigError, match="unknown method"):
        fit_under_budget(config, ["hsh"], data=data)
    with pytest.raises(ConfigError, match="validation split"):
        fit_under_budget(config, ["hash"], data=tiny_data)


def test_cli_fit(tmp_path, capsys):
    args = ["fit", "--dim", "8", "--epochs", "2", "--eval-every", "2", "--batch-size", "4096",
            "--no-progress", "--out", str(tmp_path)]
    assert main([*args, "--budget", "0.25", "--methods", "hash,qr", "--search-epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "chose " in out and "val recall@20" in out and "wrote" in out
    for extra, message in ((["--methods", "hash"], "fit needs a budget"),
                           (["--budget", "0.25", "--dims", "8,x"], "--dims expects"),
                           (["--budget", "0.25", "--ensemble-sizes", "1,x"],
                            "--ensemble-sizes expects")):
        assert main([*args, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    # fit chooses the method itself: it has no --embedding flag (argparse refuses it).
    with pytest.raises(SystemExit) as refused:
        main([*args, "--budget", "0.25", "--embedding", "hash"])
    err = capsys.readouterr().err
    assert refused.value.code == 2
    assert "unrecognized arguments: --embedding hash" in err and "Traceback" not in err


def test_ensembles_compete_on_validation_and_win_as_one_artifact(tmp_path, data):
    """With ensemble sizes 1 and 2, each method is tried alone and as 2 models at half the
    budget; the best on validation is written. Offering only K = 2 forces the ensemble path."""
    from slimrec.serve.recommender import Recommender

    config = RetrievalConfig(budget="25%", out=str(tmp_path / "both"), **BASE)
    fit = fit_under_budget(config, ["hash"], search_epochs=1, data=data,
                           ensemble_sizes=[2, 1])
    assert [c["k"] for c in fit["candidates"]] == [1, 2]
    best = max(fit["candidates"], key=lambda c: c["val"])
    assert fit["choice"]["k"] == best["k"]
    assert all(c["embedding_bytes"] <= fit["budget_bytes"] for c in fit["candidates"])

    out = tmp_path / "pair"
    config = RetrievalConfig(budget="25%", out=str(out), **BASE)
    fit = fit_under_budget(config, ["hash"], search_epochs=1, data=data, ensemble_sizes=[2])
    assert fit["choice"]["k"] == 2 and "ensemble of 2" in fit["choice"]["why"]
    document = json.loads((out / "results.json").read_text())
    assert document["ensemble"]["k"] == 2 and document["model"] == "ensemble"
    assert document["memory_bytes"]["embeddings"] <= fit["budget_bytes"]
    assert json.loads((out / FIT_FILE).read_text())["choice"]["k"] == 2
    assert len(Recommender.load(out).recommend(["3"], k=5)[0].items) == 5
    with pytest.raises(ConfigError, match="ensemble sizes must be ints >= 1"):
        fit_under_budget(config, ["hash"], data=data, ensemble_sizes=[0, 2])
