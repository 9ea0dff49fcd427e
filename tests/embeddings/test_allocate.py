"""One allocator splits one budget over any set of tables (user/item, or one per field)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from slimrec.budget import Budget
from slimrec.embeddings import (
    Allocation,
    EmbeddingSpec,
    TableRequest,
    TableStats,
    allocate,
    build_embedding,
)
from slimrec.embeddings.allocate import split_budget
from slimrec.errors import BudgetError, ConfigError

DIM = 16


def fp32(num_embeddings: int) -> int:
    return num_embeddings * DIM * 4


def user_item(num_users: int = 300, num_items: int = 700) -> dict[str, TableRequest]:
    return {"user": TableRequest(num_users, TableStats("user"), seed=0),
            "item": TableRequest(num_items, TableStats("item"), seed=1)}


SEVERAL = {"user": TableRequest(400), "item": TableRequest(900, seed=1),
           "city": TableRequest(120, seed=2), "device": TableRequest(250, seed=3),
           "hour": TableRequest(24, seed=4)}


def methods(allocation: Allocation) -> dict[str, str]:
    return {name: table.config.method for name, table in allocation.tables.items()}


@pytest.mark.parametrize("method", ["hash", "lowrank", "quantized", "qr"])
def test_user_item_tables_share_one_budget(method: str) -> None:
    allocation = allocate(EmbeddingSpec(method, budget="25%"), user_item(), DIM)
    assert list(allocation.tables) == ["user", "item"]
    assert allocation.full_bytes == fp32(1000)
    assert allocation.budget_bytes == int(0.25 * fp32(1000))
    assert allocation.memory_bytes() == sum(t.memory_bytes() for t in allocation.tables.values())
    assert allocation.memory_bytes() <= allocation.budget_bytes
    assert methods(allocation) == {"user": method, "item": method}
    assert allocation.notes == {}
    assert allocation.tables["user"].num_embeddings == 300
    assert allocation.tables["item"].num_embeddings == 700


def test_shares_are_proportional_to_full_bytes() -> None:
    """Each table gets ``budget · full_t / Σ full`` bytes, as ``split_budget`` says."""
    requests = user_item()
    allocation = allocate(EmbeddingSpec("hash", budget=0.1), requests, DIM)
    budget_bytes = int(0.1 * fp32(1000))
    plan = split_budget(budget_bytes, {"user": fp32(300), "item": fp32(700)}, lambda n, s: True)
    for name, request in requests.items():
        alone = build_embedding(EmbeddingSpec("hash", budget=Budget(num_bytes=plan[name])),
                                request.num_embeddings, DIM, request.stats, request.seed)
        assert allocation.tables[name].memory_bytes() == alone.memory_bytes()
        assert allocation.tables[name].config == alone.config


@pytest.mark.parametrize(("method", "budget"), [
    ("hash", 0.1), ("lowrank", "10%"), ("quantized", 0.3), ("qr", "50%"), ("tt", 0.25),
    ("hash", "8KiB"), ("lowrank", "30000B")])
def test_several_tables_fit_the_total_budget(method: str, budget: float | str) -> None:
    spec = EmbeddingSpec(method, budget=budget)
    allocation = allocate(spec, SEVERAL, DIM)
    full = sum(fp32(r.num_embeddings) for r in SEVERAL.values())
    assert allocation.full_bytes == full
    assert allocation.budget_bytes == spec.budget.resolve(full)
    assert allocation.memory_bytes() <= allocation.budget_bytes
    assert list(allocation.tables) == list(SEVERAL)
    assert methods(allocation)["item"] == method  # the largest table is compressed
    for name, request in SEVERAL.items():
        assert allocation.tables[name].num_embeddings == request.num_embeddings
        assert allocation.tables[name].embedding_dim == DIM


def test_a_fraction_and_the_same_bytes_give_the_same_tables() -> None:
    full = sum(fp32(r.num_embeddings) for r in SEVERAL.values())
    as_fraction = allocate(EmbeddingSpec("lowrank", budget="10%"), SEVERAL, DIM)
    as_bytes = allocate(EmbeddingSpec("lowrank", budget=f"{full // 10}B"), SEVERAL, DIM)
    assert as_fraction.budget_bytes == as_bytes.budget_bytes == full // 10
    assert {n: t.config for n, t in as_fraction.tables.items()} == \
        {n: t.config for n, t in as_bytes.tables.items()}


def test_a_size_is_for_all_the_tables_not_each() -> None:
    """``"20KB"`` bounds the sum: the tables together stay within it, whatever their count."""
    one = allocate(EmbeddingSpec("hash", budget="20KB"), {"item": TableRequest(1000)}, DIM)
    two = allocate(EmbeddingSpec("hash", budget="20KB"), user_item(1000, 1000), DIM)
    assert one.budget_bytes == two.budget_bytes == 20_000
    assert one.memory_bytes() <= 20_000 and two.memory_bytes() <= 20_000
    assert two.tables["item"].memory_bytes() < one.tables["item"].memory_bytes()


def test_keep_full_tables_stay_full_within_the_budget() -> None:
    requests = {**SEVERAL, "hour": TableRequest(24, seed=4, keep_full=True),
                "city": TableRequest(120, seed=2, keep_full=True)}
    allocation = allocate(EmbeddingSpec("hash", budget=0.1), requests, DIM)
    assert methods(allocation) == {"user": "hash", "item": "hash", "city": "full",
                                   "device": "hash", "hour": "full"}
    assert allocation.tables["hour"].memory_bytes() == fp32(24)
    assert allocation.memory_bytes() <= allocation.budget_bytes
    assert allocation.notes == {}


def test_keep_full_without_a_budget() -> None:
    requests = {"user": TableRequest(300), "hour": TableRequest(24, keep_full=True)}
    allocation = allocate(EmbeddingSpec("hash", {"num_buckets": 8}), requests, DIM)
    assert methods(allocation) == {"user": "hash", "hour": "full"}


def test_without_a_budget_every_table_is_built_with_the_spec_as_is() -> None:
    allocation = allocate(EmbeddingSpec("hash", {"num_buckets": 8}), SEVERAL, DIM)
    assert allocation.budget_bytes is None
    assert allocation.full_bytes == sum(fp32(r.num_embeddings) for r in SEVERAL.values())
    assert {t.config.num_buckets for t in allocation.tables.values()} == {8}
    assert methods(allocation) == dict.fromkeys(SEVERAL, "hash")


@pytest.mark.parametrize("budget", [None, 1.0, "100%"])
def test_a_full_spec_keeps_its_parameters_at_any_budget(budget) -> None:
    """A sweep's full table at budget 100% once fell back to the default full table, dropping
    the fixed init_std and sparse_grad it was given."""
    spec = EmbeddingSpec("full", {"init_std": 0.01, "sparse_grad": True}, budget)
    tables = allocate(spec, user_item(), DIM).tables
    for table in tables.values():
        assert (table.config.init_std, table.config.sparse_grad) == (0.01, True)
        assert table.sparse_parameters()
    assert tables["user"].weight.std().item() == pytest.approx(0.01, rel=0.1)


def test_seeds_are_per_request() -> None:
    same = {"a": TableRequest(50, seed=7), "b": TableRequest(50, seed=7),
            "c": TableRequest(50, seed=8)}
    tables = allocate(EmbeddingSpec("full"), same, DIM).tables
    assert np.array_equal(tables["a"].weight.detach(), tables["b"].weight.detach())
    assert not np.array_equal(tables["a"].weight.detach(), tables["c"].weight.detach())


def test_a_too_small_budget_names_the_method() -> None:
    with pytest.raises(BudgetError, match=r"too small for method 'qr': tables .*Raise the budget"):
        allocate(EmbeddingSpec("qr", budget="100B"), SEVERAL, DIM)
    with pytest.raises(BudgetError, match="too small for method 'full'"):
        allocate(EmbeddingSpec("full", budget=0.5), user_item(), DIM)


def test_keep_full_tables_alone_over_the_budget_raise() -> None:
    requests = {"big": TableRequest(1000), "small": TableRequest(100, keep_full=True)}
    with pytest.raises(BudgetError, match=r"tables small alone need 6400 bytes"):
        allocate(EmbeddingSpec("hash", budget="5000B"), requests, DIM)


@pytest.mark.parametrize("budget", ["200%", 1.5, 4096, "4096"])
def test_a_budget_above_100_percent_or_bare_bytes_is_rejected_at_parse_time(budget) -> None:
    with pytest.raises(BudgetError, match=rf"invalid budget {budget!r}"):
        EmbeddingSpec("hash", budget=budget)


def test_tables_a_method_cannot_serve_are_kept_full_with_a_note(tmp_path) -> None:
    rng = np.random.default_rng(0)
    users, items = 60, 80
    rows = rng.integers(0, users, 1500)
    cols = (rows + rng.integers(0, 5, 1500)) % items
    graph = sp.csr_matrix((np.ones(1500, dtype=np.float32), (rows, cols)), shape=(users, items))
    graph.data[:] = 1.0
    requests = {
        "user": TableRequest(users, TableStats("user", interactions=graph, cache_dir=tmp_path)),
        "item": TableRequest(items, TableStats("item", interactions=graph, cache_dir=tmp_path)),
        "city": TableRequest(30, TableStats("city", interactions=graph))}
    allocation = allocate(EmbeddingSpec("graph", budget=0.5), requests, DIM)
    assert methods(allocation) == {"user": "graph", "item": "graph", "city": "full"}
    assert set(allocation.notes) == {"city"}
    assert allocation.notes["city"].startswith("kept full: ") and "city" in allocation.notes["city"]
    assert allocation.memory_bytes() <= allocation.budget_bytes


def test_a_method_that_serves_no_table_raises_its_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown key 'num_bucket'"):
        allocate(EmbeddingSpec("hash", {"num_bucket": 4}), SEVERAL, DIM)
    with pytest.raises(ConfigError, match="clusters the training graph"):
        allocate(EmbeddingSpec("graph"), SEVERAL, DIM)


def test_a_budget_error_says_which_tables_the_method_could_not_serve() -> None:
    """Under a budget the walk may stop (tables kept full exceed it) before it tries every
    table; the error then names the tables the method could not serve, and why."""
    with pytest.raises(BudgetError, match=r"too small for method 'hash'.*Method 'hash' cannot "
                                          r"serve tables hour, .*unknown key 'num_bucket'"):
        allocate(EmbeddingSpec("hash", {"num_bucket": 4}, 0.25), SEVERAL, DIM)


def test_no_requests_is_an_error() -> None:
    with pytest.raises(ConfigError, match="at least one table"):
        allocate(EmbeddingSpec("hash", budget=0.1), {}, DIM)


def test_the_search_keeps_one_build_per_table_alive(monkeypatch) -> None:
    """Trials that are not the plan are dropped as the search goes: a method whose table holds
    one fp32 row per id (quantized's QAT weights) would otherwise hold one per trial."""
    import gc
    import importlib
    import weakref

    allocate_module = importlib.import_module("slimrec.embeddings.allocate")
    alive: list[weakref.ref] = []
    most = 0

    def counting_build(spec, num_embeddings, *args, **kwargs):
        nonlocal most
        # The user table needs 40% of its fp32 bytes: it settles after the smaller tables
        # fitted their first shares, so they are tried again at smaller ones.
        if num_embeddings == 400 and spec.budget.num_bytes < 0.4 * fp32(400):
            raise BudgetError("user needs 40%")
        table = build_embedding(spec, num_embeddings, *args, **kwargs)
        gc.collect()
        alive.append(weakref.ref(table))
        most = max(most, sum(ref() is not None for ref in alive))
        return table

    monkeypatch.setattr(allocate_module, "build_embedding", counting_build)
    allocation = allocate(EmbeddingSpec("hash", budget=0.3), SEVERAL, DIM)
    assert len(alive) > len(SEVERAL)  # the search built more tables than it kept
    assert most <= len(SEVERAL)
    assert allocation.memory_bytes() <= allocation.budget_bytes
    assert allocation.tables["user"].memory_bytes() >= 0.4 * fp32(400)
