import math

import pytest
import torch

from slimrec.embeddings import EmbeddingSpec, build_embedding
from slimrec.embeddings.dynamic_sparse import DynamicSparseTable, DynamicSparseTableConfig
from slimrec.embeddings.storage import SparseTable, csr_bytes
from slimrec.testing import check_embedding_table

from .budget_training import train_mf_within_budget

BUDGET = EmbeddingSpec("dynamic_sparse", budget=0.25)


def make_table(regrow="gradient", n=40, d=8, seed=0, **overrides):
    settings = {"density": 0.25, "regrow": regrow, "update_interval": 2, "decay_steps": 20}
    config = DynamicSparseTableConfig(**{**settings, **overrides})
    return DynamicSparseTable(n, d, config, seed)


def train_steps(table, steps, seed=0):
    """A few optimizer steps on a random regression target, calling the hooks like the loop."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(table.parameters(), lr=1e-2)
    target = torch.randn(table.num_embeddings, table.embedding_dim, generator=generator)
    for step in range(1, steps + 1):
        ids = torch.randint(0, table.num_embeddings, (16,), generator=generator)
        loss = (table(ids) - target[ids]).square().sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        table.after_step(step)


@pytest.mark.parametrize("regrow", ["gradient", "random"])
@pytest.mark.parametrize(("n", "d"), [(37, 8), (1, 4), (60, 200)])
def test_conformance(regrow, n, d):
    check_embedding_table(EmbeddingSpec("dynamic_sparse", {"regrow": regrow}, budget=0.5), n, d)


def test_shapes_and_gradients_reach_only_active_weights():
    table = build_embedding(BUDGET, 30, 8, seed=0)
    ids = torch.arange(30)
    out = table(ids.reshape(5, 6))
    assert out.shape == (5, 6, 8)
    out.sum().backward()
    assert table.weight.grad[table.mask].abs().min() > 0
    assert table.weight.grad[~table.mask].abs().max() == 0


def test_memory_bytes_is_the_csr_formula_of_exactly_the_active_entries():
    table = build_embedding(BUDGET, 50, 16, seed=0)
    k = table.max_nonzeros
    assert int(table.mask.sum()) == k
    # int8 columns (16 columns), int16 row pointers (k > 127), fp32 values.
    assert k > 127
    assert table.memory_bytes() == 51 * 2 + k * 5 == csr_bytes(50, 16, k)
    assert table.memory_bytes() == table.config.table_bytes(50, 16) <= 50 * 16 * 4 // 4
    served = table.for_inference()
    assert isinstance(served, SparseTable)
    assert torch.equal(served.full_weight(), table.full_weight())


def test_update_size_follows_a_cosine_and_stops_after_decay():
    table = make_table(update_fraction=0.4)
    k = table.max_nonzeros
    assert table.update_count(0) == int(0.4 * k)
    assert table.update_count(10) == int(0.4 * k * (1 + math.cos(math.pi / 2)) / 2)
    assert table.update_count(20) == 0
    assert table.update_count(21) == 0


@pytest.mark.parametrize("regrow", ["gradient", "random"])
def test_rewiring_keeps_the_budget_and_changes_the_mask(regrow):
    table = make_table(regrow)
    before = table.mask.clone()
    train_steps(table, 6)
    assert int(table.mask.sum()) == table.max_nonzeros
    assert not torch.equal(table.mask, before)
    assert table.memory_bytes() == table.config.table_bytes(40, 8)


def test_update_prunes_the_smallest_and_regrows_the_largest_gradients():
    table = make_table("gradient", update_interval=1)
    with torch.no_grad():
        table.gradient_score.copy_(torch.rand(40, 8))
        table.gradient_score[~table.mask] += 10  # inactive entries now all outrank active ones
    magnitudes = torch.where(table.mask, table.weight.abs(), torch.inf)
    count = table.update_count(1)
    smallest = set(torch.topk(magnitudes.reshape(-1), count, largest=False).indices.tolist())
    scores = torch.where(table.mask, -torch.inf, table.gradient_score)
    largest = set(torch.topk(scores.reshape(-1), count).indices.tolist())
    before = table.mask.reshape(-1).clone()
    table.after_step(1)
    after = table.mask.reshape(-1)
    assert set(torch.nonzero(before & ~after).squeeze(1).tolist()) == smallest
    assert set(torch.nonzero(~before & after).squeeze(1).tolist()) == largest
    assert table.weight.reshape(-1)[list(largest)].abs().sum() == 0  # regrown at zero
    assert table.gradient_score.abs().sum() == 0  # the score restarts after each update


@pytest.mark.parametrize("regrow", ["gradient", "random"])
def test_same_seed_same_training_trajectory(regrow):
    first, second = make_table(regrow, seed=5), make_table(regrow, seed=5)
    train_steps(first, 8)
    train_steps(second, 8)
    assert torch.equal(first.mask, second.mask)
    assert torch.equal(first.weight, second.weight)
    assert not torch.equal(first.mask, make_table(regrow, seed=6).mask)


def test_training_decreases_loss_and_stays_within_budget(tiny_data):
    train_mf_within_budget(BUDGET, tiny_data)
