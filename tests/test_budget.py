"""Budgets: one meaning everywhere (a fraction of all the tables, or a total size with a unit)."""

import math
import re

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from slimrec.budget import Budget, BudgetSetting, format_bytes, parse_budget
from slimrec.config import FrozenConfig, parse_config
from slimrec.embeddings import EmbeddingSpec
from slimrec.errors import BudgetError, ConfigError


class BudgetConfig(FrozenConfig):
    budget: BudgetSetting = None


@pytest.mark.parametrize(("value", "expected", "text"), [
    (0.1, Budget(fraction=0.1), "0.1"),
    ("0.1", Budget(fraction=0.1), "0.1"),
    ("10%", Budget(fraction=0.1), "10%"),
    (" 25 % ", Budget(fraction=0.25), "25 %"),
    ("12.5%", Budget(fraction=0.125), "12.5%"),
    ("100%", Budget(fraction=1.0), "100%"),
    (1, Budget(fraction=1.0), "1"),
    (1.0, Budget(fraction=1.0), "1.0"),
    ("1", Budget(fraction=1.0), "1"),
    ("1e-3", Budget(fraction=0.001), "1e-3"),
    (np.float64(0.5), Budget(fraction=0.5), "0.5"),
    ("2MB", Budget(num_bytes=2_000_000), "2MB"),
    ("512KiB", Budget(num_bytes=512 * 1024), "512KiB"),
    ("900000B", Budget(num_bytes=900_000), "900000B"),
    ("4096B", Budget(num_bytes=4096), "4096B"),
    ("1b", Budget(num_bytes=1), "1b"),
    ("1kb", Budget(num_bytes=1000), "1kb"),
    ("3 KB", Budget(num_bytes=3000), "3 KB"),
    ("1.5mb", Budget(num_bytes=1_500_000), "1.5mb"),
    ("2Gb", Budget(num_bytes=2 * 10**9), "2Gb"),
    ("64mib", Budget(num_bytes=64 * 2**20), "64mib"),
    ("1GIB", Budget(num_bytes=2**30), "1GIB"),
])
def test_accepted_forms(value, expected, text):
    budget = parse_budget(value)
    assert budget == expected
    assert budget.text == text and str(budget) == text


def test_a_budget_is_returned_as_is():
    budget = parse_budget("10%")
    assert parse_budget(budget) is budget


def test_text_takes_no_part_in_equality():
    assert parse_budget("10%") == parse_budget(0.1) == parse_budget("0.1")
    assert hash(parse_budget("10%")) == hash(Budget(fraction=0.1))
    assert parse_budget("1KiB") == parse_budget("1024B")


def test_budget_built_in_code_prints_a_default_text():
    assert str(Budget(fraction=0.25)) == "0.25"
    assert str(Budget(num_bytes=4096)) == "4096B"


@pytest.mark.parametrize(("value", "reason"), [
    ("200%", "above 100%"),
    ("100.5%", "above 100%"),
    (1.5, "bare number above 1"),
    (2.5, "bare number above 1"),
    ("2.5", "bare number above 1"),
    (4096, "bare number above 1.*'4096B'"),
    ("4096", "bare number above 1.*'4096B'"),
    (np.int64(4096), "bare number above 1"),
    (0, "not above zero"),
    (0.0, "not above zero"),
    ("0", "not above zero"),
    ("0%", "not above zero"),
    (-0.1, "not above zero"),
    ("-1", "not above zero"),
    ("-5%", "not above zero"),
    ("0B", "at least 1 byte"),
    ("0.5B", "at least 1 byte"),
    ("-2MB", "at least 1 byte"),
    ("10 parsecs", "unknown unit 'parsecs'"),
    ("20TB", "unknown unit 'TB'"),
    ("2M", "unknown unit 'M'"),
    (math.nan, "not a finite number"),
    (math.inf, "not a finite number"),
    (-math.inf, "not a finite number"),
    ("nan", "not a finite number"),
    ("inf", "not a finite number"),
    ("nan%", "not a finite number"),
    ("1e999MB", "not a finite number"),
    (True, "bool"),
    (False, "bool"),
    (np.True_, "bool"),
    ("", "neither a fraction nor a size"),
    ("abc", "neither a fraction nor a size"),
    ("10%%", "neither a fraction nor a size"),
    (None, "expected a number or a string"),
    ([0.1], "expected a number or a string"),
])
def test_rejected_forms_name_the_value_and_list_the_accepted_ones(value, reason):
    with pytest.raises(BudgetError) as caught:
        parse_budget(value)
    message = str(caught.value)
    assert message.startswith(f"invalid budget {value!r}: ")
    assert re.search(reason, message)
    for form in ("0.1", "'10%'", "'2MB'", "'512KiB'", "'900000B'", "KiB, MiB, GiB"):
        assert form in message


@pytest.mark.parametrize("kwargs", [
    {}, {"fraction": 0.1, "num_bytes": 10}, {"fraction": 1.5}, {"fraction": 0.0},
    {"fraction": math.nan}, {"num_bytes": 0}, {"num_bytes": 2.5}, {"fraction": True},
])
def test_budget_rejects_bad_fields(kwargs):
    with pytest.raises(BudgetError):
        Budget(**kwargs)


@given(st.floats(1e-6, 1.0))
def test_fraction_resolves_below_full(fraction):
    assert Budget(fraction=fraction).resolve(10_000) <= 10_000


def test_resolve():
    assert parse_budget("10%").resolve(12_345) == 1234
    assert parse_budget("2MB").resolve(12_345) == 2_000_000


def test_embedding_spec_takes_the_new_forms():
    assert EmbeddingSpec("hash", budget="10%").budget == Budget(fraction=0.1)
    assert EmbeddingSpec("hash", budget="10%").to_dict()["budget"] == "10%"
    with pytest.raises(BudgetError, match="invalid budget 4096"):
        EmbeddingSpec("hash", budget=4096)


@pytest.mark.parametrize("value", [0.1, "0.1", "10%", "2MB", "512KiB", "900000B", 1])
def test_setting_round_trips_as_written(value):
    config = parse_config(BudgetConfig, {"budget": value})
    assert config.budget == parse_budget(value)
    dumped = config.model_dump()
    assert dumped == {"budget": str(value)}
    assert parse_config(BudgetConfig, dumped) == config
    assert parse_config(BudgetConfig, yaml.safe_load(yaml.safe_dump(dumped))) == config
    assert config.model_dump_json() == f'{{"budget":"{value}"}}'


def test_setting_may_be_none_or_a_budget():
    assert parse_config(BudgetConfig, {}).budget is None
    assert parse_config(BudgetConfig, {"budget": None}).model_dump() == {"budget": None}
    budget = parse_budget("25%")
    assert parse_config(BudgetConfig, {"budget": budget}).budget is budget


@pytest.mark.parametrize(("value", "shown"), [
    ("200%", "'200%'"), (4096, "4096"), ("4096", "'4096'"), (2.5, "2.5"), ("1 parsec", "parsec"),
    (True, "True")])
def test_setting_errors_are_readable_config_errors(value, shown):
    with pytest.raises(ConfigError) as caught:
        parse_config(BudgetConfig, {"budget": value})
    message = str(caught.value)
    assert message.startswith("BudgetConfig.budget: ")
    assert "invalid budget" in message and shown in message


@pytest.mark.parametrize(("num_bytes", "text"), [
    (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (19 * 2**20, "19.0 MiB"),
    (3 * 2**30, "3.0 GiB")])
def test_format_bytes(num_bytes, text):
    assert format_bytes(num_bytes) == text
