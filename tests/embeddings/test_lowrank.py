import pytest
import torch

from slimrec.embeddings import EmbeddingSpec, build_embedding
from slimrec.errors import BudgetError


def test_memory_is_the_two_factors():
    table = build_embedding(EmbeddingSpec("lowrank", {"rank": 5}), 300, 16)
    assert table.left.shape == (300, 5) and table.right.shape == (5, 16)
    assert table.memory_bytes() == 4 * 5 * (300 + 16)


def test_rows_are_products_of_the_factors():
    table = build_embedding(EmbeddingSpec("lowrank", {"rank": 3}), 50, 8)
    ids = torch.tensor([[0, 7], [49, 3]])
    assert torch.allclose(table(ids), table.left[ids] @ table.right)
    assert torch.linalg.matrix_rank(table.full_weight().detach()) == 3


def test_budget_sets_the_rank():
    # 25% of 1000 x 64 fp32 = 64000 bytes; a rank costs 4 * (1000 + 64) = 4256 bytes -> 15.
    table = build_embedding(EmbeddingSpec("lowrank", budget=0.25), 1000, 64)
    assert table.config.rank == 15 and table.memory_bytes() == 15 * 4256


def test_rank_never_exceeds_the_table_shape():
    table = build_embedding(EmbeddingSpec("lowrank", budget="1MB"), 10, 64)
    assert table.config.rank == 10


def test_too_small_budget():
    with pytest.raises(BudgetError, match="smallest reachable table takes 4256 bytes"):
        build_embedding(EmbeddingSpec("lowrank", budget=0.01), 1000, 64)
