import numpy as np
import pytest
import torch

from slimrec.embeddings import EmbeddingSpec, TableStats, build_embedding
from slimrec.embeddings.frequency_hash import FrequencyHashTable, FrequencyHashTableConfig
from slimrec.errors import ConfigError, DataError


def zipf_stats(n, seed=0):
    return TableStats(frequencies=np.random.default_rng(seed).zipf(1.5, n))


def build(n, d, num_rows, head_fraction=0.5, seed=0):
    spec = EmbeddingSpec("frequency_hash", {"num_rows": num_rows, "head_fraction": head_fraction})
    return build_embedding(spec, n, d, zipf_stats(n), seed=seed)


@pytest.mark.parametrize(("n", "id_bytes"), [(100, 1), (30_000, 2), (40_981, 4)])
def test_memory_counts_rows_head_ids_and_hash_parameters(n, id_bytes):
    table = build(n, 4, num_rows=40, head_fraction=0.25)
    # 10 head rows + 30 buckets, the 10 head ids at the narrowest width, one (a, b) pair.
    assert (table.num_head, table.num_buckets) == (10, 30)
    assert table.head_ids.element_size() == id_bytes
    assert table.memory_bytes() == 40 * 4 * 4 + 10 * id_bytes + 16


def test_the_most_frequent_ids_get_their_own_rows():
    frequencies = np.array([5, 0, 9, 1, 9, 5, 3, 0, 0, 2])
    spec = EmbeddingSpec("frequency_hash", {"num_rows": 6, "head_fraction": 0.5})
    table = build_embedding(spec, 10, 3, TableStats(frequencies=frequencies))
    assert table.head_ids.tolist() == [0, 2, 4]  # counts 9, 9 and the tie of 5s goes to id 0
    assert torch.equal(table(torch.tensor([0, 2, 4])), table.weight[:3])


def test_tail_ids_are_hashed_into_the_buckets():
    table = build(200, 4, num_rows=20)
    head = set(table.head_ids.tolist())
    tail = torch.tensor([i for i in range(200) if i not in head])
    rows = table.weight[table.num_head:]
    vectors = table(tail)
    assert all(any(torch.equal(vector, row) for row in rows) for vector in vectors)


def test_head_fraction_zero_is_pure_hashing_and_one_gives_every_id_a_row():
    assert build(50, 4, num_rows=10, head_fraction=0.0).num_head == 0
    full = build(50, 4, num_rows=50, head_fraction=1.0)
    assert (full.num_head, full.num_buckets) == (50, 0)  # no tail left, so no bucket
    assert torch.equal(full(torch.arange(50)), full.weight)
    # While ids remain in the tail, one bucket is always kept for them.
    assert FrequencyHashTableConfig(num_rows=49, head_fraction=1.0).split(50) == (48, 1)


def test_needs_frequencies_of_the_right_length():
    spec = EmbeddingSpec("frequency_hash", {"num_rows": 5})
    with pytest.raises(ConfigError, match="needs id frequencies"):
        build_embedding(spec, 10, 3)
    with pytest.raises(DataError, match=r"frequencies must have shape \(10,\).*got \(9,\)"):
        build_embedding(spec, 10, 3, TableStats(frequencies=np.ones(9)))


def test_artifact_rebuilds_without_stats():
    table = build(300, 4, num_rows=30)
    rebuilt = FrequencyHashTable.from_state(table.config, 300, 4, table.inference_state())
    ids = torch.arange(300)
    assert torch.equal(rebuilt(ids), table(ids))


def test_budget_solves_the_total_rows():
    # 10% of 1000 x 8 fp32 = 3200 bytes; each row costs 32 bytes plus 2 bytes per head id.
    spec = EmbeddingSpec("frequency_hash", budget=0.1)
    table = build_embedding(spec, 1000, 8, zipf_stats(1000))
    assert table.config.num_rows == 96 and table.memory_bytes() == 96 * 32 + 48 * 2 + 16 <= 3200
