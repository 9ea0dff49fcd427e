import pytest
import torch

from slimrec.embeddings import EmbeddingSpec, build_embedding
from slimrec.embeddings.full import FullTable
from slimrec.embeddings.svd import SvdTable, SvdTableConfig
from slimrec.errors import ConfigError


@pytest.fixture(scope="module")
def trained():
    return FullTable(120, 16, seed=3)


def test_truncated_svd_is_the_best_rank_r_approximation(trained):
    compressed = SvdTableConfig.from_trained(trained, None, {"rank": 4})
    weight = trained.weight.detach().double()
    singular = torch.linalg.svdvals(weight)
    error = torch.linalg.norm(weight - compressed.full_weight().detach().double())
    # Eckart–Young: the Frobenius error is the norm of the dropped singular values.
    assert error == pytest.approx(float(singular[4:].norm()), rel=1e-4)
    assert compressed.memory_bytes() == 4 * 4 * (120 + 16)


def test_full_rank_reproduces_the_table(trained):
    compressed = SvdTableConfig.from_trained(trained, None, {"rank": 16})
    assert torch.allclose(compressed.full_weight(), trained.weight, atol=1e-5)


def test_budget_sets_the_rank(trained):
    budget = trained.full_fp32_bytes() // 4  # 1920 bytes, 544 per rank -> 3
    compressed = SvdTableConfig.from_trained(trained, budget, {})
    assert isinstance(compressed, SvdTable)
    assert compressed.config.rank == 3 and compressed.memory_bytes() <= budget


def test_rank_above_the_table_shape_is_an_error(trained):
    with pytest.raises(ConfigError, match=r"rank must be <= min\(num_embeddings, embedding_dim\)"):
        SvdTableConfig.from_trained(trained, None, {"rank": 17})


def test_trained_from_scratch_it_is_a_random_lowrank_table():
    table = build_embedding(EmbeddingSpec("svd", {"rank": 2}), 30, 8, seed=1)
    lowrank = build_embedding(EmbeddingSpec("lowrank", {"rank": 2}), 30, 8, seed=1)
    assert torch.equal(table.full_weight(), lowrank.full_weight())
