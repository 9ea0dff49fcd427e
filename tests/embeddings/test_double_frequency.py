import numpy as np
import torch

from slimrec.embeddings import EmbeddingSpec, TableStats, build_embedding
from slimrec.embeddings.double_frequency import DoubleFrequencyTable
from slimrec.embeddings.hashing_utils import PRIME


def build(n=300, d=4, num_rows=30, seed=0):
    stats = TableStats(frequencies=np.random.default_rng(1).zipf(1.5, n))
    spec = EmbeddingSpec("double_frequency", {"num_rows": num_rows})
    return build_embedding(spec, n, d, stats, seed=seed)


def test_memory_counts_two_hash_parameter_pairs():
    table = build()
    assert isinstance(table, DoubleFrequencyTable)
    assert (table.num_head, table.num_buckets) == (15, 15)
    assert table.memory_bytes() == 30 * 4 * 4 + 15 * 2 + 2 * 16


def test_tail_vector_sums_two_hashed_bucket_rows_and_head_rows_stay_single():
    table = build(seed=4)
    (a1, a2), (b1, b2) = table.hash_a.tolist(), table.hash_b.tolist()
    head = table.head_ids.long()
    assert torch.equal(table(head), table.weight[: table.num_head])
    tail = [i for i in range(300) if i not in set(head.tolist())][:5]
    first = [15 + ((a1 * i + b1) % PRIME) % 15 for i in tail]
    second = [15 + ((a2 * i + b2) % PRIME) % 15 for i in tail]
    expected = table.weight[first] + table.weight[second]
    assert torch.allclose(table(torch.tensor(tail)), expected)


def test_artifact_rebuilds_without_stats():
    table = build()
    rebuilt = DoubleFrequencyTable.from_state(table.config, 300, 4, table.inference_state())
    assert torch.equal(rebuilt(torch.arange(300)), table(torch.arange(300)))
