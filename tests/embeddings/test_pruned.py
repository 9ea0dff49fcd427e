import pytest
import torch

from slimrec.embeddings import EmbeddingSpec, build_embedding
from slimrec.embeddings.pruned import PrunedTable, PrunedTableConfig
from slimrec.embeddings.storage import SparseTable, csr_bytes
from slimrec.testing import check_embedding_table

from .budget_training import train_mf_within_budget

BUDGET = EmbeddingSpec("pruned", {"prune_steps": 30}, budget=0.25)


@pytest.mark.parametrize("granularity", ["element", "row", "dimension", "global"])
@pytest.mark.parametrize(("n", "d"), [(37, 8), (1, 4), (60, 200)])
def test_conformance(granularity, n, d):
    check_embedding_table(EmbeddingSpec("pruned", {"granularity": granularity}, budget=0.5), n, d)


def test_shapes_and_gradients_reach_weights_and_thresholds():
    table = build_embedding(BUDGET, 30, 8, seed=0)
    ids = torch.tensor([[0, 5, 29], [3, 3, 1]])
    out = table(ids)
    assert out.shape == (2, 3, 8)
    out.sum().backward()
    assert table.weight.grad.abs().sum() > 0
    assert table.threshold_logits.grad.abs().sum() > 0


def test_memory_bytes_is_the_csr_formula_of_the_nonzeros():
    table = build_embedding(BUDGET, 50, 16, seed=0).eval()
    nonzeros = int((table.full_weight() != 0).sum())
    cap = table.max_nonzeros
    assert nonzeros <= cap
    # int8 columns (16 columns), int16 row pointers (cap > 127), fp32 values.
    assert cap > 127
    assert table.memory_bytes() == 51 * 2 + nonzeros * (4 + 1) == csr_bytes(50, 16, cap, nonzeros)
    assert table.memory_bytes() <= table.config.table_bytes(50, 16) <= 50 * 16 * 4 // 4


def test_export_enforces_the_cap_when_thresholds_have_not():
    table = PrunedTable(40, 8, PrunedTableConfig(density=0.1), seed=0)
    with torch.no_grad():
        table.weight.mul_(10)  # tau is now stale: in training mode more entries survive
    table.train()
    assert int((table.full_weight() != 0).sum()) > table.max_nonzeros
    served = table.for_inference()
    assert isinstance(served, SparseTable)
    assert served.nonzeros == table.max_nonzeros
    # The largest margins are the ones kept.
    margins = table.weight.abs() - torch.sigmoid(table.threshold_logits)
    kept = served.full_weight() != 0
    assert margins[kept].min() > margins[~kept].max()


def test_eval_mode_scores_exactly_the_exported_table():
    table = build_embedding(BUDGET, 40, 8, seed=0)
    with torch.no_grad():
        table.weight.add_(torch.randn(40, 8) * 0.05)
    table.eval()
    assert torch.equal(table.full_weight(), table.for_inference().full_weight())


def test_learned_thresholds_prune_below_the_cap():
    table = PrunedTable(40, 8, PrunedTableConfig(density=0.5, threshold_init=-1.5), seed=0)
    # sigmoid(-1.5) = 0.18 is above most |N(0, 0.1)| weights: thresholds alone prune most.
    assert table.for_inference().nonzeros < table.max_nonzeros
    assert table.memory_bytes() < table.config.table_bytes(40, 8)


def test_tau_refreshes_on_the_interval():
    config = PrunedTableConfig(density=0.2, threshold_interval=3, prune_steps=0)
    table = PrunedTable(40, 8, config, seed=0)
    with torch.no_grad():
        table.weight.mul_(2)
    stale = table.tau.clone()
    table.after_step(2)
    assert torch.equal(table.tau, stale)
    table.after_step(3)
    assert not torch.equal(table.tau, stale)
    assert torch.equal(table.tau, table.exact_tau(table.max_nonzeros))


def test_training_cap_follows_the_cubic_schedule_and_eval_uses_the_budget():
    config = PrunedTableConfig(density=0.1, prune_steps=10, threshold_interval=5)
    table = PrunedTable(40, 8, config, seed=0)
    k = table.max_nonzeros
    assert [table.cap_at(step) for step in (0, 5, 10, 99)] == [
        320, k + int((320 - k) * 0.5 ** 3), k, k]
    # Step 0: only the learned thresholds (sigmoid(-8)) prune, tau does not.
    unthresholded = int((table.weight.abs() > torch.sigmoid(torch.tensor(-8.0))).sum())
    assert int((table.full_weight() != 0).sum()) == unthresholded > 300
    table.after_step(5)
    assert int((table.full_weight() != 0).sum()) == table.cap_at(5)
    table.eval()
    assert int((table.full_weight() != 0).sum()) == k
    table.train()
    assert int((table.full_weight() != 0).sum()) == table.cap_at(5)


def test_same_seed_same_table_and_different_seed_differs():
    first, second = (build_embedding(BUDGET, 20, 8, seed=3) for _ in range(2))
    assert torch.equal(first.full_weight(), second.full_weight())
    other = build_embedding(BUDGET, 20, 8, seed=4)
    assert not torch.equal(first.full_weight(), other.full_weight())


def test_training_decreases_loss_and_ends_within_budget(tiny_data):
    model = train_mf_within_budget(BUDGET, tiny_data)
    for table in model.tables().values():
        assert not table.training  # the loop ends in eval mode: scoring the exported table
        assert torch.equal(table.full_weight(), table.for_inference().full_weight())
