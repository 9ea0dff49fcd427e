import pytest
import torch

from slimrec.embeddings import EmbeddingSpec, build_embedding
from slimrec.embeddings.base import lookup_rows
from slimrec.errors import BudgetError, DataError
from slimrec.testing import check_embedding_table


def test_full_table_conformance():
    table = check_embedding_table(EmbeddingSpec("full", budget=1.0), 37, 8)
    assert table.memory_bytes() == 37 * 8 * 4


def test_full_table_is_a_drop_in_for_nn_embedding():
    table = build_embedding("full", 10, 4, seed=0)
    reference = torch.nn.Embedding(10, 4)
    reference.weight.data.copy_(table.weight.data)
    ids = torch.tensor([[1, 2], [9, 0]])
    assert torch.equal(table(ids), reference(ids))


def test_out_of_range_ids_are_a_clear_error():
    table = build_embedding("full", 10, 4)
    with pytest.raises(DataError, match="id 10 is out of range for a table of 10 rows"):
        table(torch.tensor([10]))
    with pytest.raises(DataError, match="must be integers"):
        table(torch.tensor([1.0]))


def test_budget_below_full_size():
    with pytest.raises(BudgetError, match="smallest reachable table takes 320 bytes"):
        build_embedding(EmbeddingSpec("full", budget="100B"), 10, 8)


@pytest.mark.parametrize("shape", [(64,), (16, 3)])
def test_dense_lookup_gradient_matches_nn_embedding(shape):
    """``lookup_rows``'s own backward (one index_add_) gives F.embedding's gradient, repeated
    ids summed, for ids of any shape."""
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(10, 4, generator=generator, requires_grad=True)
    reference = weight.detach().clone().requires_grad_()
    ids = torch.randint(0, 10, shape, generator=generator)
    upstream = torch.randn(*shape, 4, generator=generator)
    rows = lookup_rows(weight, ids)
    expected = torch.nn.functional.embedding(ids, reference)
    assert torch.equal(rows, expected)
    (rows * upstream).sum().backward()
    (expected * upstream).sum().backward()
    torch.testing.assert_close(weight.grad, reference.grad)
