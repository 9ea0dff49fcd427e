import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from slimrec.embeddings import EmbeddingSpec, build_embedding
from slimrec.embeddings.tt import TTTableConfig, dim_factors, row_factors


@given(n=st.integers(1, 10**15), cores=st.integers(2, 6))
def test_row_factors_cover_n_and_stay_balanced(n, cores):
    factors = row_factors(n, cores)
    assert len(factors) == cores and math.prod(factors) >= n
    side = math.ceil(n ** (1 / cores) - 1e-9)
    assert max(factors) <= side + 1


@given(d=st.integers(1, 1024), cores=st.integers(2, 5))
def test_dim_factors_are_exact(d, cores):
    factors = dim_factors(d, cores)
    assert len(factors) == cores and math.prod(factors) == d


def test_factorisations_of_gowalla_items():
    assert row_factors(40981, 3) == [35, 34, 35]
    assert dim_factors(64, 3) == [4, 4, 4]
    assert dim_factors(7, 3) == [7, 1, 1]


def test_memory_is_the_cores_by_hand():
    config = TTTableConfig(rank=8)
    # Cores [35, 1, 4, 8], [34, 8, 4, 8], [35, 8, 4, 1].
    assert config.table_bytes(40981, 64) == 4 * (35 * 4 * 8 + 34 * 8 * 4 * 8 + 35 * 8 * 4)
    table = build_embedding(EmbeddingSpec("tt", {"rank": 3}), 100, 8)
    shapes = [tuple(core.shape) for core in table.cores]
    assert shapes == [(5, 1, 2, 3), (4, 3, 2, 3), (5, 3, 2, 1)]
    assert table.memory_bytes() == 4 * (5 * 2 * 3 + 4 * 3 * 2 * 3 + 5 * 3 * 2)


def test_ranks_are_capped_where_more_could_not_help():
    config = TTTableConfig(rank=1000)
    # A bond never exceeds the size of the smaller side: 5 * 2 = 10 entries on the left.
    assert [shape[1] for shape in config.core_shapes(100, 8)] == [1, 10, 10]
    assert config.max_useful_rank(100, 8) == 10


def reference_rows(table, ids):
    """The chain product G_1[i_1] ⋯ G_K[i_K] of each id, one id at a time."""
    rows = []
    for index in ids.tolist():
        digits, result = [], None
        for size, stride in zip(table.row_factors, table.strides, strict=True):
            digits.append(index // stride % size)
        for core, digit in zip(table.cores, digits, strict=True):
            piece = core[digit]  # [r_in, d_k, r_out]
            if result is None:
                result = piece[0]  # [d_1, r_1]
            else:
                result = torch.einsum("pr,rqs->pqs", result, piece).reshape(-1, piece.shape[-1])
        rows.append(result[:, 0])
    return torch.stack(rows)


@pytest.mark.parametrize("dense_factor", [0, 1000])
@pytest.mark.parametrize("cores", [2, 3, 4])
def test_lookup_is_the_chain_product_on_both_paths(dense_factor, cores):
    table = build_embedding(EmbeddingSpec("tt", {"rank": 3, "num_cores": cores}), 300, 8, seed=2)
    table.dense_factor = dense_factor  # 0: per-pair products; 1000: whole-core products
    ids = torch.tensor([0, 299, 17, 17, 150, 42])
    assert torch.allclose(table(ids), reference_rows(table, ids), atol=1e-6)


def test_budget_sets_the_rank():
    table = build_embedding(EmbeddingSpec("tt", budget=0.25), 40981 // 100, 64)
    config = table.config
    assert table.memory_bytes() <= 0.25 * 409 * 64 * 4
    bigger = config.model_copy(update={"rank": config.rank + 1})
    assert bigger.table_bytes(409, 64) > 0.25 * 409 * 64 * 4
