import pytest
from hypothesis import given
from hypothesis import strategies as st

from slimrec.budget import Budget, parse_budget
from slimrec.config import layered_config, parse_config
from slimrec.errors import BudgetError, ConfigError
from slimrec.io import atomic_write_text
from slimrec.tasks import RetrievalConfig


@pytest.mark.parametrize(("text", "expected"), [
    (0.1, Budget(fraction=0.1)), ("0.25", Budget(fraction=0.25)), ("25%", Budget(fraction=0.25)),
    ("20MB", Budget(num_bytes=20_000_000)), ("64MiB", Budget(num_bytes=64 * 2**20)),
    ("4096B", Budget(num_bytes=4096)),
    ("1kb", Budget(num_bytes=1000)),
])
def test_parse_budget(text, expected):
    assert parse_budget(text) == expected


@pytest.mark.parametrize("bad", ["abc", "-1", "10 parsecs", 0, 1.5, "0%", True])
def test_bad_budget(bad):
    with pytest.raises(BudgetError):
        parse_budget(bad)


@given(st.floats(1e-6, 1.0))
def test_fraction_resolves_below_full(fraction):
    assert Budget(fraction=fraction).resolve(10_000) <= 10_000


def test_config_rejects_unknown_key_with_suggestion():
    # Training keys are accepted flat (lifted into ``train``) or nested: a typo of either
    # is suggested the training key.
    with pytest.raises(ConfigError, match=r"unknown key 'epoch'.*Did you mean 'epochs'"):
        parse_config(RetrievalConfig, {"epoch": 3})
    with pytest.raises(ConfigError, match=r"unknown key 'train.epoch'.*Did you mean 'epochs'"):
        parse_config(RetrievalConfig, {"train": {"epoch": 3}})


def test_config_coerces_yaml_strings(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: '5e-4'\nepochs: 3\n")
    config = layered_config(RetrievalConfig, path, {"epochs": 7, "dim": None})
    assert config.train.lr == 5e-4 and config.train.epochs == 7 and config.dim == 64


def test_config_names_the_constraint():
    with pytest.raises(ConfigError,
                       match=r"RetrievalConfig.dim .*greater than or equal to 1; got 0"):
        parse_config(RetrievalConfig, {"dim": 0})
    with pytest.raises(ConfigError,
                       match=r"RetrievalConfig.train.lr .*greater than 0; got 0"):
        parse_config(RetrievalConfig, {"lr": 0})


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    atomic_write_text(path, "old")

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", explode)
    with pytest.raises(OSError):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
