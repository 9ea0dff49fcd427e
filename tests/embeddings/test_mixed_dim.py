import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from slimrec.data.splits import carve_validation
from slimrec.embeddings import EmbeddingSpec, TableStats, build_embedding
from slimrec.embeddings.mixed_dim import (
    MixedDimTable,
    MixedDimTableConfig,
    bucket_popularity,
    bucket_sizes,
    mixed_dim_bytes,
    power_law_dims,
    solve_head_dim,
)
from slimrec.errors import BudgetError, ConfigError, DataError
from slimrec.models import MF
from slimrec.tasks import RetrievalConfig
from slimrec.testing import check_embedding_table
from slimrec.train.config import TrainConfig
from slimrec.train.loop import fit


def zipf_stats(n, seed=0):
    rng = np.random.default_rng(seed)
    return TableStats(frequencies=rng.zipf(1.5, n).clip(max=10_000))


@pytest.mark.parametrize(("n", "d", "budget"), [(300, 16, 0.5), (1, 4, "40B"), (50, 8, 0.9)])
def test_conformance(n, d, budget):
    check_embedding_table(EmbeddingSpec("mixed_dim", {"num_buckets": 4}, budget), n, d,
                          zipf_stats(n))


def test_frequent_ids_get_the_widest_rows():
    frequencies = np.array([5, 100, 0, 7, 50, 1, 1, 3])
    config = MixedDimTableConfig(num_buckets=4, dims=(8, 4, 2, 1))
    table = config.build(8, 8, TableStats(frequencies=frequencies), seed=0)
    # Frequency order: 1, 4, 3, 0, 7, 5, 6, 2 (ties by id); buckets of two.
    assert table.positions.tolist() == [3, 0, 7, 2, 1, 5, 6, 4]
    assert [table.get_parameter(f"weight_{k}").shape for k in range(4)] == [
        (2, 8), (2, 4), (2, 2), (2, 1)]
    assert not hasattr(table, "projection_0")  # a full-width bucket needs no projection
    ids = torch.tensor([1, 2])
    expected = torch.stack([table.weight_0[0], table.weight_3[1] @ table.projection_3])
    assert torch.allclose(table(ids), expected)


def test_memory_bytes_by_hand():
    table = MixedDimTableConfig(num_buckets=3, dims=(6, 3, 1)).build(
        10, 6, zipf_stats(10), seed=0)
    # Rows 4*6 + 3*3 + 3*1 floats, projections 3*6 + 1*6 floats, int8 positions, 4 int64 offsets.
    expected = 4 * (24 + 9 + 3) + 4 * (18 + 6) + 10 * 1 + 4 * 8
    assert table.memory_bytes() == expected == table.config.table_bytes(10, 6)
    assert mixed_dim_bytes([4, 3, 3], [6, 3, 1], 6) == expected


def test_gradients_reach_rows_and_projections():
    table = MixedDimTableConfig(num_buckets=2, dims=(4, 2)).build(6, 4, zipf_stats(6), seed=0)
    table(torch.arange(6)).square().sum().backward()
    for name, parameter in table.named_parameters():
        assert parameter.grad.abs().sum() > 0, name


def test_power_law_dims():
    assert power_law_dims([99, 99], 16, 0.5) == [16, 16]
    assert power_law_dims([99, 24, 0], 16, 0.5) == [16, 8, 2]
    assert power_law_dims([99, 0], 16, 0.0) == [16, 16]
    assert power_law_dims([1e6, 0], 16, 1.0) == [16, 1]


def test_bucket_helpers():
    assert bucket_sizes(10, 3) == [4, 3, 3]
    assert bucket_sizes(2, 8) == [1, 1]
    assert bucket_popularity(np.array([1, 9, 3, 5]), [2, 2]).tolist() == [7.0, 2.0]


def test_rebuilds_from_saved_state_without_frequencies():
    table = build_embedding(EmbeddingSpec("mixed_dim", budget=0.5), 200, 16, zipf_stats(200))
    state = table.inference_state()
    rebuilt = MixedDimTable.from_state(table.config, 200, 16, state)
    ids = torch.arange(200)
    assert torch.equal(rebuilt(ids), table(ids))


def test_needs_frequencies_of_the_right_shape():
    with pytest.raises(ConfigError, match="needs id frequencies"):
        build_embedding(EmbeddingSpec("mixed_dim", budget=0.5), 10, 4)
    with pytest.raises(DataError, match=r"must have shape \(10,\)"):
        build_embedding(EmbeddingSpec("mixed_dim", budget=0.5), 10, 4, zipf_stats(9))


def test_bad_dims_are_clear_errors():
    with pytest.raises(ConfigError, match="dims must be <= embedding_dim"):
        build_embedding(EmbeddingSpec("mixed_dim", {"dims": [8, 2]}), 10, 4, zipf_stats(10))
    with pytest.raises(ConfigError, match="at most 2 buckets"):
        build_embedding(EmbeddingSpec("mixed_dim", {"dims": [2, 2, 1]}), 2, 4, zipf_stats(2))
    with pytest.raises(ConfigError, match="dims is solved from the budget"):
        build_embedding(EmbeddingSpec("mixed_dim", {"dims": [2]}, 0.5), 10, 4, zipf_stats(10))


def test_budget_below_the_smallest_table():
    # With 100 ids in 8 buckets, all-1 dims (8 projections of 1 x 16) is the smallest table.
    smallest = mixed_dim_bytes(bucket_sizes(100, 8), [1] * 8, 16)
    with pytest.raises(BudgetError, match=f"smallest reachable table takes {smallest} bytes"):
        build_embedding(EmbeddingSpec("mixed_dim", budget=f"{smallest - 1}B"), 100, 16,
                        zipf_stats(100))
    table = build_embedding(EmbeddingSpec("mixed_dim", budget=f"{smallest}B"), 100, 16,
                            zipf_stats(100))
    assert table.memory_bytes() == smallest


@settings(max_examples=200, deadline=None)
@given(n=st.one_of(st.just(1), st.integers(1, 10_000), st.integers(10**9, 10**13)),
       d=st.integers(1, 256), num_buckets=st.integers(1, 12), alpha=st.floats(0, 1),
       fraction=st.floats(1e-3, 1.5), seed=st.integers(0, 100))
def test_solver_fits_the_budget_with_the_widest_head(n, d, num_buckets, alpha, fraction, seed):
    sizes = bucket_sizes(n, num_buckets)
    rng = np.random.default_rng(seed)
    popularity = np.sort(rng.pareto(1.0, len(sizes)) * 100)[::-1]
    budget = int(fraction * n * d * 4)
    dims = solve_head_dim(sizes, popularity, d, alpha, budget)
    if dims is None:
        for head in range(1, d + 1):
            assert mixed_dim_bytes(sizes, power_law_dims(popularity, head, alpha), d) > budget
        return
    assert mixed_dim_bytes(sizes, dims, d) <= budget
    assert all(1 <= dim <= d for dim in dims)
    for wider in range(dims[0] + 1, d + 1):
        assert mixed_dim_bytes(sizes, power_law_dims(popularity, wider, alpha), d) > budget


def test_training_decreases_loss(tiny_data):
    data = carve_validation(tiny_data, 0.1, seed=0)
    spec = EmbeddingSpec("mixed_dim", {"num_buckets": 4}, budget=0.25)
    model = MF(
        build_embedding(spec, data.num_users, 16, TableStats(frequencies=data.user_frequencies())),
        build_embedding(spec, data.num_items, 16, TableStats(frequencies=data.item_frequencies()),
                        seed=1))
    config = RetrievalConfig(train=TrainConfig(epochs=6, batch_size=256, lr=5e-3, eval_every=3,
                                               patience=2), seed=0, progress=False)
    losses = [record["loss"] for record in fit(model, data, config).history]
    assert losses[-1] < losses[0]
    assert model.embedding_bytes() <= 0.25 * model.full_embedding_bytes()


def test_smallest_table_may_be_the_full_width_one():
    # One id of width 4: a 4-wide row with no projection (16 + 1 + 16 bytes) beats a 1-wide
    # row plus a 1 x 4 projection (4 + 16 + 1 + 16 bytes).
    with pytest.raises(BudgetError, match="smallest reachable table takes 33 bytes"):
        build_embedding(EmbeddingSpec("mixed_dim", budget="32B"), 1, 4, zipf_stats(1))


def test_a_table_built_without_dims_records_the_power_law_dims():
    table = build_embedding(EmbeddingSpec("mixed_dim", {"num_buckets": 3}), 30, 8,
                            zipf_stats(30))
    assert table.config.dims == tuple(table.dims)
    assert table.config.table_bytes(30, 8) == table.memory_bytes()
