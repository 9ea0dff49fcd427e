"""The hashing, QR, low-rank and TT tables train: every trainable tensor gets a gradient, a seed
fixes the table, and MF-BPR's loss goes down with them on tiny synthetic data."""

import pytest
import torch

from slimrec.embeddings import EmbeddingSpec, TableStats, build_embedding
from slimrec.models import MF
from slimrec.tasks import RetrievalConfig
from slimrec.train.config import TrainConfig
from slimrec.train.loop import fit

METHODS = ["hash", "double_hash", "frequency_hash", "double_frequency", "qr", "lowrank", "svd",
           "tt"]


def stats_for(data, role):
    frequencies = data.user_frequencies() if role == "user" else data.item_frequencies()
    return TableStats(role=role, frequencies=frequencies, interactions=data.train)


@pytest.mark.parametrize("method", METHODS)
def test_every_trainable_tensor_gets_a_gradient(method, tiny_data):
    table = build_embedding(EmbeddingSpec(method, budget=0.25), tiny_data.num_items, 16,
                            stats_for(tiny_data, "item"), seed=0)
    # Every id once, so every stored row (head, bucket, quotient, core slice) is used.
    table(torch.arange(tiny_data.num_items)).square().sum().backward()
    for name, parameter in table.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("method", METHODS)
def test_seed_fixes_the_table(method, tiny_data):
    spec, stats = EmbeddingSpec(method, budget=0.25), stats_for(tiny_data, "item")
    ids = torch.arange(tiny_data.num_items)
    first, again, other = (build_embedding(spec, tiny_data.num_items, 16, stats, seed=seed)
                           for seed in (3, 3, 4))
    assert torch.equal(first(ids), again(ids))
    assert not torch.equal(first(ids), other(ids))


@pytest.mark.parametrize("method", METHODS)
def test_init_spread_matches_the_full_table(method, tiny_data):
    table = build_embedding(EmbeddingSpec(method, budget=0.25), tiny_data.num_items, 16,
                            stats_for(tiny_data, "item"), seed=0)
    # FullTableConfig.init_std is 0.1; a comparable spread lets the same learning rate work.
    assert 0.05 < float(table.full_weight().detach().std()) < 0.2


@pytest.mark.parametrize("method", METHODS)
def test_mf_bpr_loss_decreases(method, tiny_data):
    spec = EmbeddingSpec(method, budget=0.25)
    model = MF(build_embedding(spec, tiny_data.num_users, 16, stats_for(tiny_data, "user"), 0),
               build_embedding(spec, tiny_data.num_items, 16, stats_for(tiny_data, "item"), 1))
    config = RetrievalConfig(train=TrainConfig(epochs=4, batch_size=256, lr=1e-2), seed=0,
                             progress=False)
    losses = [record["loss"] for record in fit(model, tiny_data, config).history]
    assert losses[-1] < losses[0] - 0.02, losses
