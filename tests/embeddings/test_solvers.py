"""Budget solvers of the hashing, QR, low-rank and TT families, checked on their analytic sizes.

For any (n, d, budget) a solver either returns a config that fits and that one more unit of its
free parameter would overflow (or that is already at the useful maximum), or raises a
``BudgetError`` whose smallest size is exactly reachable and above the budget. Sizes come from
``table_bytes``, so huge tables are checked without allocating them; small ones are built to
check ``table_bytes`` against ``memory_bytes()``.
"""

import re

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from slimrec.embeddings import METHODS, EmbeddingSpec, TableStats, build_embedding, resolve_config
from slimrec.errors import BudgetError, ConfigError

# method -> (the field the solver sets, the largest value it may usefully take for (config, n, d))
FREE = {
    "hash": ("num_buckets", lambda config, n, d: n),
    "double_hash": ("num_buckets", lambda config, n, d: n),
    "frequency_hash": ("num_rows", lambda config, n, d: n),
    "double_frequency": ("num_rows", lambda config, n, d: n),
    "qr": ("num_buckets", lambda config, n, d: n),
    "lowrank": ("rank", lambda config, n, d: min(n, d)),
    "svd": ("rank", lambda config, n, d: min(n, d)),
    "tt": ("rank", lambda config, n, d: config.max_useful_rank(n, d)),
}
# Fixed choices that change the byte formula, per method.
CASES = [
    ("hash", {}), ("hash", {"hash_kind": "modulo"}),
    ("double_hash", {}), ("double_hash", {"shared_table": True}),
    ("frequency_hash", {}), ("frequency_hash", {"head_fraction": 0.0}),
    ("frequency_hash", {"head_fraction": 1.0}), ("double_frequency", {"head_fraction": 0.8}),
    ("qr", {}), ("qr", {"combiner": "add"}), ("qr", {"combiner": "concat"}),
    ("lowrank", {}), ("svd", {}),
    ("tt", {}), ("tt", {"num_cores": 2}), ("tt", {"num_cores": 4}),
]
IDS = [f"{method}-{'-'.join(f'{k}={v}' for k, v in params.items()) or 'default'}"
       for method, params in CASES]


def smallest_in(error: BudgetError) -> int:
    return int(re.search(r"smallest reachable table takes (\d+) bytes", str(error)).group(1))


def check_solver(method: str, params: dict, n: int, d: int, budget: int) -> None:
    config_cls = METHODS[method]
    field, largest = FREE[method]
    try:
        config = config_cls.for_budget(budget, n, d, None, params)
    except BudgetError as error:
        smallest = smallest_in(error)
        assert smallest > budget
        reached = config_cls.for_budget(smallest, n, d, None, params)
        assert reached.table_bytes(n, d) == smallest
        return
    assert config.table_bytes(n, d) <= budget
    value = getattr(config, field)
    assert 1 <= value <= largest(config, n, d)
    if value < largest(config, n, d):
        bigger = config.model_copy(update={field: value + 1})
        assert bigger.table_bytes(n, d) > budget, f"{field}={value} leaves room for one more"


@pytest.mark.parametrize(("method", "params"), CASES, ids=IDS)
@settings(max_examples=40, deadline=None)
@given(n=st.one_of(st.integers(1, 500), st.integers(1, 10**13)), d=st.integers(2, 256),
       fraction=st.floats(1e-5, 1.5))
@example(n=1, d=2, fraction=1.0)
@example(n=1, d=2, fraction=1.5)
@example(n=10**12, d=64, fraction=0.05)
def test_solver_fits_and_is_tight(method, params, n, d, fraction):
    check_solver(method, params, n, d, max(1, int(fraction * n * d * 4)))


@pytest.mark.parametrize(("method", "params"), CASES, ids=IDS)
@pytest.mark.parametrize(("n", "d"), [(1, 4), (7, 3), (40981, 64), (10**10, 128)])
def test_budget_just_above_the_minimum(method, params, n, d):
    with pytest.raises(BudgetError) as error:
        METHODS[method].for_budget(1, n, d, None, params)
    smallest = smallest_in(error.value)
    config = METHODS[method].for_budget(smallest, n, d, None, params)
    assert config.table_bytes(n, d) == smallest
    with pytest.raises(BudgetError):
        METHODS[method].for_budget(smallest - 1, n, d, None, params)
    check_solver(method, params, n, d, smallest + 1)


@pytest.mark.parametrize(("method", "params"), CASES, ids=IDS)
@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 300), d=st.integers(2, 12), fraction=st.floats(0.05, 1.2),
       seed=st.integers(0, 3))
def test_built_table_takes_exactly_the_solved_bytes(method, params, n, d, fraction, seed):
    frequencies = np.random.default_rng(seed).zipf(1.7, n)
    stats = TableStats(frequencies=frequencies)
    spec = EmbeddingSpec(method, params, budget=f"{max(1, int(fraction * n * d * 4))}B")
    try:
        config = resolve_config(spec, n, d, stats)
    except BudgetError:
        return
    table = build_embedding(spec, n, d, stats, seed=seed)
    assert table.memory_bytes() == config.table_bytes(n, d)


@pytest.mark.parametrize("method", sorted(FREE))
def test_solved_field_cannot_also_be_fixed(method):
    field, _ = FREE[method]
    with pytest.raises(ConfigError, match=f"{field} is solved from the budget"):
        METHODS[method].for_budget(10_000, 100, 8, None, {field: 3})


@pytest.mark.parametrize("method", sorted(FREE))
def test_fixed_choices_are_validated_before_solving(method):
    with pytest.raises(ConfigError, match="unknown key 'bogus'"):
        METHODS[method].for_budget(10_000, 100, 8, None, {"bogus": 1})
