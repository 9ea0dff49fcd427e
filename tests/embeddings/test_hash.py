import pytest
import torch

from slimrec.embeddings import EmbeddingSpec, build_embedding
from slimrec.embeddings.hash import HashTableConfig
from slimrec.embeddings.hashing_utils import PRIME
from slimrec.errors import BudgetError, ConfigError


@pytest.mark.parametrize(("kind", "extra"), [("universal", 16), ("modulo", 0)])
def test_memory_is_the_rows_plus_the_hash_parameters(kind, extra):
    table = build_embedding(EmbeddingSpec("hash", {"num_buckets": 13, "hash_kind": kind}), 500, 6)
    assert table.memory_bytes() == 13 * 6 * 4 + extra
    assert sorted(table.state_dict()) == (["hash_a", "hash_b", "weight"] if extra else ["weight"])


def test_modulo_hash_shares_row_id_mod_m():
    table = build_embedding(EmbeddingSpec("hash", {"num_buckets": 7, "hash_kind": "modulo"}), 50, 4)
    ids = torch.arange(50)
    assert torch.equal(table(ids), table.weight[ids % 7])


def test_universal_hash_rows_follow_the_formula():
    table = build_embedding(EmbeddingSpec("hash", {"num_buckets": 11}), 1000, 4, seed=3)
    a, b = int(table.hash_a), int(table.hash_b)
    ids = torch.tensor([[0, 1, 999], [5, 500, 998]])
    rows = torch.tensor([[((a * i + b) % PRIME) % 11 for i in row] for row in ids.tolist()])
    assert table(ids).shape == (2, 3, 4)
    assert torch.equal(table(ids), table.weight[rows])


def test_ids_share_rows_when_buckets_are_fewer():
    table = build_embedding(EmbeddingSpec("hash", {"num_buckets": 10}), 100, 4)
    assert len(torch.unique(table.buckets(torch.arange(100)))) == 10


def test_budget_sets_the_bucket_count():
    # 10% of 1000 x 8 fp32 = 3200 bytes: (3200 - 16) // 32 = 99 buckets.
    table = build_embedding(EmbeddingSpec("hash", budget=0.1), 1000, 8)
    assert table.config.num_buckets == 99 and table.memory_bytes() == 99 * 32 + 16
    modulo = build_embedding(EmbeddingSpec("hash", {"hash_kind": "modulo"}, budget=0.1), 1000, 8)
    assert modulo.config.num_buckets == 100


def test_too_small_budget_names_the_smallest_table():
    with pytest.raises(BudgetError, match="'hash': the smallest reachable table takes 48 bytes"):
        build_embedding(EmbeddingSpec("hash", budget="40B"), 1000, 8)


def test_bad_parameters_name_the_field():
    with pytest.raises(ConfigError, match=r"HashTableConfig\.num_buckets"):
        build_embedding(EmbeddingSpec("hash", {"num_buckets": 0}), 10, 4)
    with pytest.raises(ConfigError, match=r"HashTableConfig\.hash_kind"):
        build_embedding(EmbeddingSpec("hash", {"num_buckets": 3, "hash_kind": "md5"}), 10, 4)
    with pytest.raises(ConfigError, match=r"HashTableConfig\.num_buckets field required"):
        build_embedding(EmbeddingSpec("hash"), 10, 4)


def test_config_formula_matches_by_hand():
    assert HashTableConfig(num_buckets=4096).table_bytes(40981, 64) == 4096 * 64 * 4 + 16
