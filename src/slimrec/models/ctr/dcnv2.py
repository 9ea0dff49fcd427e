"""DCN-V2 (Wang et al., 2021): a cross network of full-rank cross layers and a deep tower,
stacked (cross then deep) or in parallel (both on the input, outputs concatenated)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from slimrec.config import FrozenConfig
from slimrec.models.base import register_model
from slimrec.models.ctr.base import CTRModel, FieldEmbeddings
from slimrec.models.layers import MLP


class DCNv2Config(FrozenConfig):
    num_cross_layers: int = Field(3, ge=1)
    hidden: list[int] = Field(default_factory=lambda: [256, 256])
    dropout: float = Field(0.1, ge=0, lt=1)
    structure: Literal["parallel", "stacked"] = "parallel"


class CrossLayer(nn.Module):
    """x_{l+1} = x_0 ⊙ (W x_l + b) + x_l, with ``W`` a ``Linear(d, d)``: ``[B, d] -> [B, d]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, dim)

    def forward(self, x0: Tensor, x: Tensor) -> Tensor:
        return x0 * self.linear(x) + x


@register_model
class DCNv2(CTRModel):
    name = "dcnv2"
    config_class = DCNv2Config

    def __init__(self, embeddings: FieldEmbeddings, config: DCNv2Config) -> None:
        super().__init__(embeddings, config)
        flat = embeddings.num_fields * embeddings.embedding_dim
        self.cross = nn.ModuleList(CrossLayer(flat) for _ in range(config.num_cross_layers))
        self.deep = MLP(flat, config.hidden, config.dropout)
        parallel = config.structure == "parallel"
        self.output = nn.Linear(self.deep.output_dim + (flat if parallel else 0), 1)

    def head(self, embedded: Tensor) -> Tensor:
        """``embedded``: ``[B, F, D]`` -> logits ``[B]``."""
        x0 = x = embedded.flatten(1)
        for layer in self.cross:
            x = layer(x0, x)
        if self.config.structure == "stacked":
            return self.output(self.deep(x)).squeeze(1)
        return self.output(torch.cat([x, self.deep(x0)], dim=1)).squeeze(1)
