"""Every method with a ``sparse_grad`` option trains under the loop's lazy Adam."""

import pytest
import torch

from slimrec.data.splits import carve_validation
from slimrec.embeddings import METHODS, EmbeddingSpec, TableStats, build_embedding
from slimrec.models import MF
from slimrec.tasks import RetrievalConfig
from slimrec.testing import check_embedding_table
from slimrec.train.config import TrainConfig
from slimrec.train.loop import fit

SPARSE = sorted(name for name, config in METHODS.items() if "sparse_grad" in config.model_fields)


def budget_for(method):
    return 1.0 if method == "full" else 0.25


@pytest.mark.parametrize("method", SPARSE)
def test_sparse_gradients_are_row_sparse(method, tiny_data):
    stats = TableStats(frequencies=tiny_data.item_frequencies())
    spec = EmbeddingSpec(method, {"sparse_grad": True}, budget_for(method))
    table = check_embedding_table(spec, tiny_data.num_items, 16, stats)
    table.zero_grad()
    table(torch.tensor([1, 2, 2])).sum().backward()
    assert table.sparse_parameters()
    for parameter in table.sparse_parameters():
        assert parameter.grad is None or parameter.grad.is_sparse


@pytest.mark.parametrize("method", SPARSE)
def test_training_with_lazy_adam_decreases_loss(method, tiny_data):
    data = carve_validation(tiny_data, 0.1, seed=0)
    spec = EmbeddingSpec(method, {"sparse_grad": True}, budget_for(method))
    model = MF(
        build_embedding(spec, data.num_users, 16, TableStats(frequencies=data.user_frequencies())),
        build_embedding(spec, data.num_items, 16, TableStats(frequencies=data.item_frequencies()),
                        seed=1))
    config = RetrievalConfig(train=TrainConfig(epochs=4, batch_size=256, lr=5e-3, eval_every=2,
                                               patience=2), seed=0, progress=False)
    losses = [record["loss"] for record in fit(model, data, config).history]
    assert losses[-1] < losses[0]
