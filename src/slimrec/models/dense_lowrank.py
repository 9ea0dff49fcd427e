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
receives from the already-compressed layers before it.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from slimrec.errors import ConfigError
from slimrec.models.ctr.base import CTRBatch, CTRModel

Method = Literal["output", "svd"]


class LowRankLinear(nn.Module):
    """``y = up(down(x))``: ``Tensor[..., in] -> Tensor[..., r] -> Tensor[..., out]``."""

    def __init__(self, in_features: int, out_features: int, rank: int) -> None:
        super().__init__()
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.down = nn.Linear(in_features, rank, bias=False)
        self.up = nn.Linear(rank, out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.up(self.down(x))

    @classmethod
    @torch.no_grad()
    def from_linear(cls, linear: nn.Linear, rank: int, method: Method = "output",
                    inputs: Tensor | None = None) -> LowRankLinear:
        """Factorise a trained layer. ``inputs``: calibration inputs ``[N, in]`` ("output")."""
        out_features, in_features = linear.weight.shape
        if not 1 <= rank <= min(in_features, out_features):
            raise ConfigError(f"dense rank must be in [1, {min(in_features, out_features)}] for "
                              f"a Linear({in_features}, {out_features}); got {rank}.")
        weight = linear.weight.double()
        bias = (linear.bias.double() if linear.bias is not None
                else torch.zeros(out_features, dtype=torch.float64))
        layer = cls(in_features, out_features, rank)
        if method == "svd":
            u, s, vh = torch.linalg.svd(weight, full_matrices=False)
            root = s[:rank].sqrt()
            down, up, up_bias = root[:, None] * vh[:rank], u[:, :rank] * root, bias
        elif method == "output":
            if inputs is None or len(inputs) < 2:
                raise ConfigError("output-feature low rank needs calibration inputs (>= 2 rows).")
            outputs = inputs.double() @ weight.T + bias
            mean = outputs.mean(0)
            centred = outputs - mean
            _, vectors = torch.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
            top = vectors[:, -rank:]
            down, up, up_bias = top.T @ weight, top, mean + top @ (top.T @ (bias - mean))
        else:
            raise ConfigError(f"dense low-rank method must be 'output' or 'svd'; got {method!r}.")
        layer.down.weight.copy_(down.float())
        layer.up.weight.copy_(up.float())
        layer.up.bias.copy_(up_bias.float())
        return layer


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


def dense_linears(model: CTRModel) -> list[tuple[str, nn.Linear]]:
    """``(path, layer)`` of every ``Linear`` outside the embedding tables, in definition order."""
    return [(name, module) for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and not name.startswith("embeddings.")]


def low_rank_layers(model: CTRModel) -> dict[str, int]:
    """``{path: rank}`` of the model's ``LowRankLinear`` layers (saved in artifacts)."""
    return {name: module.rank for name, module in model.named_modules()
            if isinstance(module, LowRankLinear)}


def _set(model: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, child = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def replace_with_low_rank(model: CTRModel, ranks: dict[str, int]) -> None:
    """Give the layers at ``ranks``' paths the low-rank shape (untrained; to load a state)."""
    for path, rank in ranks.items():
        linear = model.get_submodule(path)
        _set(model, path, LowRankLinear(linear.in_features, linear.out_features, rank))


def _inputs_of(model: CTRModel, layer: nn.Module, batch: CTRBatch) -> Tensor:
    captured: list[Tensor] = []
    handle = layer.register_forward_pre_hook(lambda _, args: captured.append(args[0].detach()))
    try:
        with torch.no_grad():
            model(batch)
    finally:
        handle.remove()
    return torch.cat([x.reshape(-1, x.shape[-1]) for x in captured])


def compress_dense(model: CTRModel, rank: int | None = None, ratio: float | None = None,
                   method: Method = "output", calibration: CTRBatch | None = None
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
        _set(model, path, LowRankLinear.from_linear(linear, layer_rank, method, inputs))
        replaced[path] = layer_rank
    model.train(was_training)
    return replaced

