import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from slimrec.embeddings.pruned import PrunedTableConfig
from slimrec.embeddings.storage import SparseTable, csr_bytes, nonzero_cap, solve_density
from slimrec.errors import BudgetError, ConfigError


def sparse_matrix(rows, cols, density, seed=0):
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(rows, cols, generator=generator)
    keep = torch.rand(rows, cols, generator=generator) < density
    return weight, keep


@pytest.mark.parametrize(("rows", "cols", "density"), [(7, 5, 0.3), (1, 1, 1.0), (20, 200, 0.05),
                                                       (4, 3, 0.0)])
def test_sparse_table_reproduces_the_kept_entries(rows, cols, density):
    weight, keep = sparse_matrix(rows, cols, density)
    table = SparseTable.from_dense(weight, keep, rows * cols, config=None)
    assert torch.equal(table.full_weight(), weight * keep)
    ids = torch.tensor([[0, rows - 1], [rows // 2, 0]])
    assert torch.equal(table(ids), (weight * keep)[ids])
    assert table.nonzeros == int(keep.sum())


def test_sparse_table_bytes_and_index_widths():
    weight, keep = sparse_matrix(50, 200, 0.1)
    table = SparseTable.from_dense(weight, keep, max_nonzeros=40_000, config=None)
    nnz = int(keep.sum())
    # 200 columns need int16 column indices; a cap of 40,000 needs int32 row pointers.
    assert table.columns.dtype == torch.int16 and table.row_pointers.dtype == torch.int32
    assert table.memory_bytes() == 51 * 4 + nnz * (4 + 2) == csr_bytes(50, 200, 40_000, nnz)
    small = SparseTable.from_dense(weight[:10, :64], keep[:10, :64], max_nonzeros=100, config=None)
    assert small.columns.dtype == torch.int8 and small.row_pointers.dtype == torch.int8


def test_from_dense_refuses_more_entries_than_the_cap():
    weight, keep = sparse_matrix(5, 5, 1.0)
    with pytest.raises(ValueError, match="over the cap of 3"):
        SparseTable.from_dense(weight, keep, 3, config=None)


def test_nonzero_cap_floors_and_keeps_one_entry():
    assert nonzero_cap(0.5, 3, 3) == 4
    assert nonzero_cap(1e-9, 10, 10) == 1


@settings(max_examples=300, deadline=None)
@given(n=st.one_of(st.just(1), st.integers(1, 10_000), st.integers(10**9, 10**13)),
       d=st.integers(1, 1024), fraction=st.floats(1e-4, 2.0))
def test_density_solver_fits_the_budget_and_is_maximal(n, d, fraction):
    budget = int(fraction * n * d * 4)
    smallest = csr_bytes(n, d, 1)
    if budget < smallest:
        with pytest.raises(BudgetError, match=f"smallest reachable table takes {smallest} bytes"):
            solve_density(PrunedTableConfig, budget, n, d, {})
        return
    config = solve_density(PrunedTableConfig, budget, n, d, {})
    cap = nonzero_cap(config.density, n, d)
    assert config.table_bytes(n, d) <= budget
    # Flooring the density may cost one entry, never more; below the full table it is maximal.
    if cap + 1 < n * d:
        assert csr_bytes(n, d, cap + 2) > budget


@pytest.mark.parametrize("extra", [0, 1])
def test_density_solver_just_above_the_minimum(extra):
    budget = csr_bytes(1000, 64, 1) + extra
    config = solve_density(PrunedTableConfig, budget, 1000, 64, {})
    assert nonzero_cap(config.density, 1000, 64) == 1


def test_density_and_budget_together_is_a_clear_error():
    with pytest.raises(ConfigError, match="density is solved from the budget"):
        solve_density(PrunedTableConfig, 10_000, 100, 8, {"density": 0.1})
