import pytest
import torch

from slimrec.embeddings import EmbeddingSpec, build_embedding
from slimrec.embeddings.hashing_utils import PRIME
from slimrec.errors import BudgetError


@pytest.mark.parametrize(("shared", "rows"), [(False, 2 * 9), (True, 9)])
def test_memory_is_the_rows_plus_two_hash_parameter_pairs(shared, rows):
    table = build_embedding(
        EmbeddingSpec("double_hash", {"num_buckets": 9, "shared_table": shared}), 300, 5)
    assert table.weight.shape == (rows, 5)
    assert table.memory_bytes() == rows * 5 * 4 + 2 * 16
    assert sorted(table.state_dict()) == ["hash_a", "hash_b", "weight"]  # offsets are derived


@pytest.mark.parametrize("shared", [False, True])
def test_vector_is_the_sum_of_two_hashed_rows(shared):
    table = build_embedding(
        EmbeddingSpec("double_hash", {"num_buckets": 9, "shared_table": shared}), 300, 5, seed=2)
    (a1, a2), (b1, b2) = table.hash_a.tolist(), table.hash_b.tolist()
    assert a1 != a2
    ids = torch.tensor([0, 17, 299])
    second_offset = 0 if shared else 9
    first = [((a1 * i + b1) % PRIME) % 9 for i in ids.tolist()]
    second = [((a2 * i + b2) % PRIME) % 9 + second_offset for i in ids.tolist()]
    expected = table.weight[first] + table.weight[second]
    assert torch.allclose(table(ids), expected)


def test_fewer_ids_share_their_whole_vector_than_with_one_hash():
    table = build_embedding(EmbeddingSpec("double_hash", {"num_buckets": 20}), 400, 4)
    pairs = table.rows(torch.arange(400))
    distinct_pairs = len({tuple(pair) for pair in pairs.tolist()})
    assert distinct_pairs > 300  # one hash into 20 rows would give at most 20 distinct vectors


def test_budget_sets_buckets_per_table():
    # 25% of 1000 x 8 fp32 = 8000 bytes; two tables of m rows: (8000 - 32) // 64 = 124.
    table = build_embedding(EmbeddingSpec("double_hash", budget=0.25), 1000, 8)
    assert table.config.num_buckets == 124 and table.memory_bytes() == 2 * 124 * 32 + 32


def test_too_small_budget():
    with pytest.raises(BudgetError, match="smallest reachable table takes 96 bytes"):
        build_embedding(EmbeddingSpec("double_hash", budget="95B"), 1000, 8)
