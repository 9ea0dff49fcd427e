import pytest
import torch

from slimrec.embeddings import EmbeddingSpec, build_embedding
from slimrec.embeddings.qr import QRTableConfig
from slimrec.errors import BudgetError, ConfigError


@pytest.mark.parametrize(("combiner", "quotient_dim", "remainder_dim"),
                         [("multiply", 7, 7), ("add", 7, 7), ("concat", 3, 4)])
def test_memory_is_the_two_tables(combiner, quotient_dim, remainder_dim):
    spec = EmbeddingSpec("qr", {"num_buckets": 10, "combiner": combiner})
    table = build_embedding(spec, 95, 7)
    assert table.quotient.shape == (10, quotient_dim)  # ceil(95 / 10) quotient rows
    assert table.remainder.shape == (10, remainder_dim)
    assert table.memory_bytes() == 4 * (10 * quotient_dim + 10 * remainder_dim)


@pytest.mark.parametrize("combiner", ["multiply", "add", "concat"])
def test_every_id_gets_a_distinct_vector(combiner):
    table = build_embedding(EmbeddingSpec("qr", {"num_buckets": 8, "combiner": combiner}), 60, 6)
    assert len(torch.unique(table(torch.arange(60)), dim=0)) == 60


def test_combiners_follow_their_definition():
    ids = torch.tensor([0, 13, 59])
    for combiner, combine in [("multiply", torch.mul), ("add", torch.add),
                              ("concat", lambda q, r: torch.cat([q, r], -1))]:
        table = build_embedding(EmbeddingSpec("qr", {"num_buckets": 8, "combiner": combiner}),
                                60, 6)
        expected = combine(table.quotient[ids // 8], table.remainder[ids % 8])
        assert torch.equal(table(ids), expected)


def test_solver_starts_from_the_balanced_split_which_is_the_smallest():
    # For equal widths, no m gives fewer rows than the balanced split.
    for n in (1, 2, 3, 10, 99, 100, 101, 1000):
        rows = min(m + -(-n // m) for m in range(1, n + 1))
        with pytest.raises(BudgetError, match=f"takes {rows * 4 * 4} bytes"):
            QRTableConfig.for_budget(rows * 4 * 4 - 1, n, 4, None, {})


def test_budget_grows_the_remainder_table():
    # 25% of 1000 x 8 fp32 = 8000 bytes = 250 rows: m + ceil(1000 / m) <= 250 -> m = 245.
    table = build_embedding(EmbeddingSpec("qr", budget=0.25), 1000, 8)
    assert table.config.num_buckets == 245 and table.memory_bytes() == (245 + 5) * 32


def test_concat_needs_two_columns():
    with pytest.raises(ConfigError, match="combiner='concat' needs embedding_dim >= 2"):
        build_embedding(EmbeddingSpec("qr", {"num_buckets": 2, "combiner": "concat"}), 10, 1)
