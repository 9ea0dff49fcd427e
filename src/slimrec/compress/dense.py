"""Low-rank compression of trained dense layers (after "Unified Low-rank Compression Framework
for Click-through Rate Prediction", Yu et al., KDD 2024).

A trained ``Linear(in, out)`` (``in·out`` weights) becomes ``LowRankLinear``: ``Linear(in, r)``
then ``Linear(r, out)`` (``r·(in + out)`` weights), built from either

- ``"svd"``: the best rank-r approximation of the weights, ``W ≈ U_r S_r V_rᵀ``; or
- ``"output"`` (the paper's choice, better): the principal components of the layer's OUTPUT
  features on a calibration sample. With ``Y = X Wᵀ + b`` on calibration inputs ``X``, mean
  ``μ`` and top-r eigenvectors ``P`` (out × r) of the covariance of ``Y``, the layer computes
  ``Ŷ = μ + (Y − μ) P Pᵀ``, i.e. ``down.weight = Pᵀ W``, ``up.weight = P`` and
  ``up.bias = μ + P Pᵀ (b − μ)``. It keeps what the layer's outputs actually vary along on real
  inputs, not what the weights happen to stretch most.

``compress_dense(model, ...)`` replaces, in forward order, every ``Linear`` outside the
embedding tables whose factorised form is smaller; each layer is calibrated on the inputs it
receives from the already-compressed layers before it. The model's ``forward`` must take a
batch (CTR models do).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from slimrec.errors import ConfigError
from slimrec.models.base import RecModel
from slimrec.models.layers import LowRankLinear, Method, set_submodule


def rank_for_ratio(in_features: int, out_features: int, ratio: float) -> int:
    """Largest rank whose two factors hold at most ``1/ratio`` of the layer's weights."""
    return int(in_features * out_features // (ratio * (in_features + out_features)))


def parse_dense_rank(value: str | int) -> tuple[int | None, float | None]:
    """``"32"`` -> rank 32 for every layer; ``"4x"`` -> each layer's rank for 4x fewer weights."""
    text = str(value).strip().lower()
    try:
        if text.endswith("x"):
            ratio = float(text[:-1])
            if ratio > 1:
                return None, ratio
        elif int(text) >= 1:
            return int(text), None
    except ValueError:
        pass
    raise ConfigError(f"--dense-rank must be a rank >= 1 (e.g. 32) or a compression ratio > 1 "
                      f"(e.g. 4x); got {value!r}.")


def dense_linears(model: RecModel) -> list[tuple[str, nn.Linear]]:
    """``(path, layer)`` of every ``Linear`` outside the embedding tables, in definition order."""
    prefixes = tuple(f"{name}." for name in model.tables())
    return [(name, module) for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and not name.startswith(prefixes)]


def _inputs_of(model: RecModel, layer: nn.Module, batch: object) -> Tensor:
    captured: list[Tensor] = []
    handle = layer.register_forward_pre_hook(lambda _, args: captured.append(args[0].detach()))
    try:
        with torch.no_grad():
            model(batch)
    finally:
        handle.remove()
    return torch.cat([x.reshape(-1, x.shape[-1]) for x in captured])


def compress_dense(model: RecModel, rank: int | None = None, ratio: float | None = None,
                   method: Method = "output", calibration: object | None = None
                   ) -> dict[str, int]:
    """Replace dense ``Linear`` layers by rank-r pairs in place; returns ``{path: rank}``.

    Give ``rank`` (the same for every layer) or ``ratio`` (each layer's rank for ``ratio``
    times fewer weights). Layers where the pair would not be smaller are kept.
    """
    if (rank is None) == (ratio is None):
        raise ConfigError("give exactly one of a dense rank or a dense compression ratio.")
    if method == "output" and calibration is None:
        raise ConfigError("output-feature low rank needs a calibration batch.")
    was_training = model.training
    model.eval()  # calibrate without dropout
    replaced = {}
    for path, linear in dense_linears(model):
        in_features, out_features = linear.in_features, linear.out_features
        layer_rank = rank if rank is not None else rank_for_ratio(in_features, out_features,
                                                                  ratio)
        layer_rank = min(layer_rank, in_features, out_features)
        pair_weights = layer_rank * (in_features + out_features)
        if layer_rank < 1 or pair_weights >= in_features * out_features:
            continue
        inputs = _inputs_of(model, linear, calibration) if method == "output" else None
        set_submodule(model, path, LowRankLinear.from_linear(linear, layer_rank, method, inputs))
        replaced[path] = layer_rank
    model.train(was_training)
    return replaced

