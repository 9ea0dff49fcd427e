"""Low-rank replacement of trained dense layers (SVD and output-feature PCA)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from slimrec.compress.dense import compress_dense, dense_linears, parse_dense_rank, rank_for_ratio
from slimrec.data.fields import FieldData
from slimrec.embeddings import EmbeddingSpec
from slimrec.errors import ConfigError
from slimrec.models import MODELS
from slimrec.models.ctr import FieldTensors, build_field_embeddings
from slimrec.models.layers import LowRankLinear, low_rank_layers, replace_with_low_rank


def _linear(in_features: int, out_features: int, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(in_features, out_features)


def test_full_rank_svd_is_exact() -> None:
    linear = _linear(12, 9)
    x = torch.randn(5, 12)
    layer = LowRankLinear.from_linear(linear, 9, "svd")
    assert torch.allclose(layer(x), linear(x), atol=1e-5)


def test_svd_is_the_best_rank_r_approximation_of_the_weights() -> None:
    linear = _linear(20, 16)
    layer = LowRankLinear.from_linear(linear, 4, "svd")
    product = (layer.up.weight @ layer.down.weight).detach()
    singular = torch.linalg.svdvals(linear.weight.detach().double())
    error = torch.linalg.norm(product.double() - linear.weight.detach().double())
    assert float(error) == pytest.approx(float(singular[4:].square().sum().sqrt()), rel=1e-4)


def test_output_pca_is_exact_when_outputs_span_r_dimensions() -> None:
    """Inputs confined to a 3-dimensional subspace give outputs in a 3-dimensional affine
    subspace: a rank-3 output-feature factorisation reproduces them, SVD of W does not."""
    linear = _linear(16, 10)
    basis = torch.randn(3, 16)
    calibration = torch.randn(200, 3) @ basis
    fresh = torch.randn(7, 3) @ basis
    layer = LowRankLinear.from_linear(linear, 3, "output", calibration)
    assert torch.allclose(layer(fresh), linear(fresh), atol=1e-4)
    svd = LowRankLinear.from_linear(linear, 3, "svd")
    assert not torch.allclose(svd(fresh), linear(fresh), atol=1e-2)


def test_from_linear_rejects_bad_ranks_and_methods() -> None:
    linear = _linear(4, 3)
    with pytest.raises(ConfigError, match=r"dense rank must be in \[1, 3\]"):
        LowRankLinear.from_linear(linear, 4, "svd")
    with pytest.raises(ConfigError, match="calibration inputs"):
        LowRankLinear.from_linear(linear, 2, "output")
    with pytest.raises(ConfigError, match="'output' or 'svd'"):
        LowRankLinear.from_linear(linear, 2, "pca")  # type: ignore[arg-type]


def test_rank_for_ratio_and_parsing() -> None:
    assert rank_for_ratio(400, 400, 2.0) == 100  # 100·800 = 400·400 / 2
    assert rank_for_ratio(160, 400, 4.0) == 28
    assert parse_dense_rank("32") == (32, None)
    assert parse_dense_rank("4x") == (None, 4.0)
    for bad in ("0", "1x", "big", "-3"):
        with pytest.raises(ConfigError, match="--dense-rank"):
            parse_dense_rank(bad)


def test_compress_dense_keeps_predictions_close(tiny_fields: FieldData) -> None:
    torch.manual_seed(0)
    embeddings = build_field_embeddings(tiny_fields, EmbeddingSpec("full"), 8)
    model = MODELS["dcnv2"].from_params(embeddings, {"hidden": [64, 64]}).eval()
    tensors = FieldTensors(tiny_fields)
    calibration = tensors.batch(torch.arange(1000))
    batch = tensors.batch(torch.arange(1000, 1200))
    with torch.no_grad():
        before = model(batch)
    dense_before = model.dense_bytes()
    ranks = compress_dense(model, ratio=2.0, calibration=calibration)
    assert ranks and all(not path.startswith("embeddings.") for path in ranks)
    assert "output" not in ranks  # Linear(.., 1): a factorisation would not be smaller
    assert model.dense_bytes() < 0.6 * dense_before
    assert low_rank_layers(model) == ranks
    with torch.no_grad():
        after = model(batch)
    assert torch.corrcoef(torch.stack([before, after]))[0, 1] > 0.95
    # The artifact loader rebuilds the same structure from the ranks.
    twin = MODELS["dcnv2"].from_params(
        build_field_embeddings(tiny_fields, EmbeddingSpec("full"), 8), {"hidden": [64, 64]})
    replace_with_low_rank(twin, ranks)
    twin.load_state_dict(model.state_dict())
    assert torch.allclose(twin.eval()(batch), after)


def test_compress_dense_needs_one_size_and_a_calibration(tiny_fields: FieldData) -> None:
    embeddings = build_field_embeddings(tiny_fields, EmbeddingSpec("full"), 8)
    model = MODELS["deepfm"].from_params(embeddings, {"hidden": [16]})
    with pytest.raises(ConfigError, match="exactly one"):
        compress_dense(model, rank=2, ratio=2.0, method="svd")
    with pytest.raises(ConfigError, match="calibration batch"):
        compress_dense(model, rank=2)
    assert [path for path, _ in dense_linears(model)] == ["first_order", "deep.0", "output"]
