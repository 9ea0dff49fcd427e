import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from slimrec.data.splits import carve_validation
from slimrec.embeddings import EmbeddingSpec, TableStats, build_embedding
from slimrec.errors import ConfigError
from slimrec.eval.ranking import evaluate_ranking
from slimrec.models import MF, LightGCN
from slimrec.models.lightgcn import LightGCNConfig, _SymmetricSpMM, normalized_adjacency
from slimrec.serve.artifact import load_artifact, save_artifact
from slimrec.spine import build_model
from slimrec.tasks import RetrievalConfig
from slimrec.train.config import TrainConfig
from slimrec.train.loop import fit

# 3 users x 4 items; item 3 has no interaction (an isolated node).
TINY = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 1, 1, 0], [1, 0, 1, 0]], dtype=np.float32))


def tables(num_users, num_items, dim=8, seed=0):
    return (build_embedding("full", num_users, dim, seed=seed),
            build_embedding("full", num_items, dim, seed=seed + 1))


def dense_reference(train):
    n, m = train.shape
    adjacency = np.zeros((n + m, n + m))
    adjacency[:n, n:] = train.toarray()
    adjacency[n:, :n] = train.toarray().T
    degree = adjacency.sum(1)
    scale = np.where(degree > 0, 1 / np.sqrt(np.maximum(degree, 1e-12)), 0.0)
    return scale[:, None] * adjacency * scale[None, :]


def test_normalization_matches_dense_reference():
    adjacency = normalized_adjacency(TINY)
    assert adjacency.layout == torch.sparse_csr and adjacency.shape == (7, 7)
    assert adjacency.col_indices().dtype == torch.int32
    np.testing.assert_allclose(adjacency.to_dense().numpy(), dense_reference(TINY), rtol=1e-6)
    # user 0 (degree 2) - item 0 (degree 2): 1 / sqrt(2 * 2)
    assert adjacency.to_dense()[0, 3] == pytest.approx(0.5)


def test_propagation_matches_dense_reference():
    user_table, item_table = tables(3, 4)
    model = LightGCN(user_table, item_table, TINY, LightGCNConfig(num_layers=3))
    ego = torch.cat([user_table.weight, item_table.weight]).detach().double()
    adjacency = torch.from_numpy(dense_reference(TINY))
    layers = [ego]
    for _ in range(3):
        layers.append(adjacency @ layers[-1])
    expected = torch.stack(layers).mean(0)
    users, items = model.final_vectors()
    torch.testing.assert_close(torch.cat([users, items]).double(), expected, atol=1e-6, rtol=1e-5)


def test_symmetric_spmm_gradient_is_exact():
    adjacency = normalized_adjacency(TINY)
    dense = torch.from_numpy(dense_reference(TINY)).float()
    x = torch.randn(7, 5, requires_grad=True)
    weights = torch.randn(7, 5)
    (_SymmetricSpMM.apply(adjacency, x) * weights).sum().backward()
    torch.testing.assert_close(x.grad, dense.T @ weights)


def test_zero_layers_equals_mf(tiny_data):
    user_table, item_table = tables(tiny_data.num_users, tiny_data.num_items)
    lightgcn = LightGCN(user_table, item_table, tiny_data.train, LightGCNConfig(num_layers=0))
    mf = MF(user_table, item_table)
    users = torch.arange(10)
    torch.testing.assert_close(lightgcn.scorer()(users, None), mf.scorer()(users, None))
    items, negatives = torch.arange(10, 20), torch.arange(20, 30)
    for ours, theirs in zip(lightgcn.bpr_terms(users, items, negatives),
                            mf.bpr_terms(users, items, negatives), strict=True):
        torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(lightgcn.score(users, items), mf.score(users, items))


def test_shapes_and_errors(tiny_data):
    model = LightGCN(*tables(tiny_data.num_users, tiny_data.num_items), tiny_data.train)
    assert model.scorer()(torch.arange(5), None).shape == (5, tiny_data.num_items)
    positive, negative, l2 = model.bpr_terms(torch.arange(4), torch.arange(4), torch.arange(4, 8))
    assert positive.shape == negative.shape == (4,) and l2.ndim == 0
    with pytest.raises(ValueError, match="shape"):
        LightGCN(*tables(5, 4), TINY)
    with pytest.raises(ConfigError, match="num_layers"):
        LightGCN.parse_params({"num_layers": -1})
    with pytest.raises(ConfigError, match="Did you mean 'num_layers'"):
        LightGCN.parse_params({"num_layer": 2})


def test_loss_decreases_and_learns(tiny_data):
    data = carve_validation(tiny_data, 0.1, seed=0)
    model = LightGCN(*tables(data.num_users, data.num_items, dim=16), data.train)
    before = evaluate_ranking(model.scorer(), data, "test").metrics["recall@20"]
    result = fit(model, data, RetrievalConfig(
        train=TrainConfig(epochs=6, batch_size=512, lr=5e-3, eval_every=3), progress=False))
    losses = [record["loss"] for record in result.history]
    assert losses[-1] < losses[0]
    assert evaluate_ranking(model.scorer(), data, "test").metrics["recall@20"] > 2 * before


def test_compressed_ego_tables_train(tiny_data):
    spec = EmbeddingSpec("hash", budget=0.25)
    user_table = build_embedding(spec, tiny_data.num_users, 8, TableStats("user"), seed=0)
    item_table = build_embedding(spec, tiny_data.num_items, 8, TableStats("item"), seed=1)
    model = LightGCN(user_table, item_table, tiny_data.train)
    fit(model, tiny_data, RetrievalConfig(train=TrainConfig(epochs=1, batch_size=1024),
                                          progress=False))
    assert model.embedding_bytes() <= 0.25 * model.full_embedding_bytes()


def test_artifact_holds_propagated_vectors_not_graph(tiny_data, tmp_path):
    model = LightGCN(*tables(tiny_data.num_users, tiny_data.num_items), tiny_data.train)
    manifest = save_artifact(tmp_path, model, {"users": tiny_data.user_ids.tolist(),
                                                "items": tiny_data.item_ids.tolist()})
    assert manifest["model"] == "mf" and manifest["trained_model"] == "lightgcn"
    assert not any(key.startswith("graph") for key in manifest["tensor_bytes"])
    loaded = load_artifact(tmp_path).model
    users = torch.arange(20)
    torch.testing.assert_close(loaded.scorer()(users, None), model.scorer()(users, None))


def test_keep_graph_artifact_stores_ego_tables_and_graph(tiny_data, tmp_path):
    spec = EmbeddingSpec("hash", budget=0.25)
    model = LightGCN(build_embedding(spec, tiny_data.num_users, 8, seed=0),
                     build_embedding(spec, tiny_data.num_items, 8, seed=1),
                     tiny_data.train, LightGCNConfig(keep_graph=True))
    manifest = save_artifact(tmp_path, model, {"users": tiny_data.user_ids.tolist(),
                                                "items": tiny_data.item_ids.tolist()})
    graph_bytes = 4 * (tiny_data.num_users + 1 + tiny_data.train.nnz)
    assert manifest["model"] == "lightgcn"
    assert manifest["memory_bytes"]["model_total"] == model.embedding_bytes() + graph_bytes
    loaded = load_artifact(tmp_path).model
    users = torch.arange(20)
    torch.testing.assert_close(loaded.scorer()(users, None), model.scorer()(users, None))


def test_build_model_from_run_config(tiny_data):
    config = RetrievalConfig(model="lightgcn", model_params={"num_layers": 2}, dim=8)
    model = build_model(config, tiny_data)
    assert isinstance(model, LightGCN) and model.config.num_layers == 2
    with pytest.raises(ConfigError, match="lightgcn model_params"):
        build_model(config.model_copy(update={"model_params": {"layers": 2}}), tiny_data)


def test_row_sparse_tables_are_refused(tiny_data):
    sparse = EmbeddingSpec("full", {"sparse_grad": True})
    with pytest.raises(ConfigError, match="sparse_grad: false"):
        LightGCN(build_embedding(sparse, tiny_data.num_users, 4),
                 build_embedding(sparse, tiny_data.num_items, 4), tiny_data.train)


def test_cli_train_with_model_params(tmp_path, capsys):
    from slimrec.cli import main

    args = ["train", "--model", "lightgcn", "--dim", "4", "--epochs", "1", "--no-progress",
            "--out", str(tmp_path)]
    assert main([*args, "--model-param", "num_layers=1"]) == 0
    assert '"trained_model": "lightgcn"' in (tmp_path / "manifest.json").read_text()
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["model_params"] == {"num_layers": 1, "keep_graph": False}
    assert main([*args, "--model-param", "num_layers"]) == 2
    assert "--model-param expects KEY=VALUE" in capsys.readouterr().err
    assert main([*args, "--model-param", "depth=2"]) == 2
    err = capsys.readouterr().err
    assert "lightgcn model_params: unknown key 'depth'" in err and "Traceback" not in err
