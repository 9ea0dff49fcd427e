"""Dense building blocks shared by models: the MLP tower and the low-rank linear pair.

``LowRankLinear`` is what ``compress/dense.py`` turns a trained ``Linear`` into; an artifact
records which layers are low rank (``low_rank_layers``) so that loading gives them that shape
again (``replace_with_low_rank``) before the weights are loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from slimrec.errors import ConfigError

Method = Literal["output", "svd"]


class MLP(nn.Sequential):
    """``Linear -> ReLU -> Dropout`` per hidden size: ``Tensor[B, in] -> Tensor[B, hidden[-1]]``."""

    def __init__(self, input_dim: int, hidden: Sequence[int], dropout: float) -> None:
        layers: list[nn.Module] = []
        for width in hidden:
            layers += [nn.Linear(input_dim, width), nn.ReLU(), nn.Dropout(dropout)]
            input_dim = width
        super().__init__(*layers)
        self.output_dim = input_dim


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


def low_rank_layers(model: nn.Module) -> dict[str, int]:
    """``{path: rank}`` of the model's ``LowRankLinear`` layers (saved in artifacts)."""
    return {name: module.rank for name, module in model.named_modules()
            if isinstance(module, LowRankLinear)}


def set_submodule(model: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, child = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def replace_with_low_rank(model: nn.Module, ranks: dict[str, int]) -> None:
    """Give the layers at ``ranks``' paths the low-rank shape (untrained; to load a state)."""
    for path, rank in ranks.items():
        linear = model.get_submodule(path)
        set_submodule(model, path, LowRankLinear(linear.in_features, linear.out_features, rank))
