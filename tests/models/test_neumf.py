import pytest
import torch

from slimrec.data.splits import carve_validation
from slimrec.embeddings import EmbeddingSpec, build_embedding
from slimrec.errors import ConfigError
from slimrec.eval.ranking import evaluate_ranking
from slimrec.models import NeuMF
from slimrec.models.neumf import NeuMFConfig
from slimrec.serve.artifact import load_artifact, save_artifact
from slimrec.tasks import RetrievalConfig
from slimrec.train.config import TrainConfig
from slimrec.train.loop import fit


def make_model(data, dim=16, **params):
    return NeuMF(build_embedding("full", data.num_users, dim, seed=0),
                 build_embedding("full", data.num_items, dim, seed=1), NeuMFConfig(**params))


def naive_scores(model, users, num_items):
    """Every (user, item) pair through ``score``: the B x N x hidden reference."""
    pairs_users = users.repeat_interleave(num_items)
    pairs_items = torch.arange(num_items).repeat(len(users))
    with torch.no_grad():
        return model.score(pairs_users, pairs_items).view(len(users), num_items)


@pytest.mark.parametrize("max_elements", [1, 1000, 1 << 22])
def test_chunked_scorer_equals_naive(tiny_data, max_elements):
    model = make_model(tiny_data, hidden=[12, 6])
    users = torch.arange(7)
    chunked = model.scorer(max_elements=max_elements)(users, None)
    torch.testing.assert_close(chunked, naive_scores(model, users, tiny_data.num_items),
                               atol=1e-5, rtol=1e-5)


def test_scorer_writes_into_buffer_and_one_hidden_layer(tiny_data):
    model = make_model(tiny_data, hidden=[8], gmf_dim=4)
    buffer = torch.empty(3, tiny_data.num_items)
    out = model.scorer(max_elements=100)(torch.arange(3), buffer)
    assert out.data_ptr() == buffer.data_ptr()
    torch.testing.assert_close(out, naive_scores(model, torch.arange(3), tiny_data.num_items),
                               atol=1e-5, rtol=1e-5)


def test_shared_item_rows_are_scored_once_and_tie_exactly(tiny_data):
    """A hashed item table: the MLP runs over its 5 distinct vectors, spread to every item."""
    items = build_embedding(EmbeddingSpec("hash", {"num_buckets": 5}), tiny_data.num_items, 16,
                            seed=1)
    model = NeuMF(build_embedding("full", tiny_data.num_users, 16, seed=0), items,
                  NeuMFConfig(hidden=[12, 6]))
    users = torch.arange(6)
    buffer = torch.empty(len(users), tiny_data.num_items)
    scores = model.scorer(max_elements=50)(users, buffer)
    assert scores.data_ptr() == buffer.data_ptr()
    torch.testing.assert_close(scores, naive_scores(model, users, tiny_data.num_items),
                               atol=1e-5, rtol=1e-5)
    _, bucket = items.distinct_rows()
    for row in range(5):
        columns = scores[:, bucket == row]
        assert columns.shape[1] > 1 and torch.equal(columns, columns[:, :1].expand_as(columns))


def test_shapes_and_dense_bytes(tiny_data):
    model = make_model(tiny_data, hidden=[10, 5])
    assert model.gmf_dim == 8
    positive, negative, l2 = model.bpr_terms(torch.arange(4), torch.arange(4), torch.arange(4, 8))
    assert positive.shape == negative.shape == (4,) and l2.ndim == 0
    # MLP: (2*8 -> 10 -> 5), predict: (8 + 5 -> 1)
    assert model.dense_bytes() == 4 * ((16 * 10 + 10) + (10 * 5 + 5) + (13 + 1))


@pytest.mark.parametrize(("params", "message"), [
    ({"gmf_dim": 16}, "gmf_dim must be in"),
    ({"hidden": []}, "hidden must be a non-empty list"),
])
def test_invalid_settings(tiny_data, params, message):
    with pytest.raises(ConfigError, match=message):
        make_model(tiny_data, **params)


def test_loss_decreases_and_learns(tiny_data):
    data = carve_validation(tiny_data, 0.1, seed=0)
    model = make_model(data)
    before = evaluate_ranking(model.scorer(), data, "test").metrics["recall@20"]
    result = fit(model, data, RetrievalConfig(
        train=TrainConfig(epochs=8, batch_size=256, lr=5e-3, eval_every=4), progress=False))
    losses = [record["loss"] for record in result.history]
    assert losses[-1] < losses[0]
    assert evaluate_ranking(model.scorer(), data, "test").metrics["recall@20"] > 1.5 * before


def test_artifact_round_trip(tiny_data, tmp_path):
    model = make_model(tiny_data, hidden=[8, 4], gmf_dim=6)
    manifest = save_artifact(tmp_path, model, {"users": tiny_data.user_ids.tolist(),
                                                "items": tiny_data.item_ids.tolist()})
    assert manifest["model_config"] == {"gmf_dim": 6, "hidden": [8, 4]}
    loaded = load_artifact(tmp_path).model
    users = torch.arange(5)
    torch.testing.assert_close(loaded.scorer()(users, None), model.scorer()(users, None))
