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
from slimrec.models.ctr.selection import InteractionSelectionConfig, SelectsInteractions
from slimrec.models.layers import MLP


class DCNv2Config(FrozenConfig):
    num_cross_layers: int = Field(3, ge=1)
    hidden: list[int] = Field(default_factory=lambda: [256, 256])
    dropout: float = Field(0.1, ge=0, lt=1)
    structure: Literal["parallel", "stacked"] = "parallel"
    interaction_selection: InteractionSelectionConfig = Field(
        default_factory=InteractionSelectionConfig)


class CrossLayer(nn.Module):
    """x_{l+1} = x_0 ⊙ (W x_l + b) + x_l, with ``W`` a ``Linear(d, d)``: ``[B, d] -> [B, d]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, dim)

    def forward(self, x0: Tensor, x: Tensor) -> Tensor:
        return x0 * self.linear(x) + x


class BlockCrossLayer(nn.Module):
    """A ``CrossLayer`` whose ``FD x FD`` matrix is kept as ``D x D`` blocks ``W_ij`` (output
    field ``i``, input field ``j``), so that a field pair's blocks can be gated or dropped::

        x_{l+1,i} = x_{0,i} ⊙ (Σ_j g_ij W_ij x_{l,j} + b_i) + x_{l,i}

    Built from a ``CrossLayer`` (same initial weights), with every block, in row-major order.
    """

    def __init__(self, layer: CrossLayer, num_fields: int, dim: int) -> None:
        super().__init__()
        self.num_fields, self.dim = num_fields, dim
        weight = layer.linear.weight.detach().view(num_fields, dim, num_fields, dim)
        self.weight = nn.Parameter(weight.permute(0, 2, 1, 3).reshape(-1, dim, dim).clone())
        self.bias = nn.Parameter(layer.linear.bias.detach().clone())
        fields = torch.arange(num_fields)
        self.register_buffer("block_out", fields.repeat_interleave(num_fields),
                             persistent=False)
        self.register_buffer("block_in", fields.repeat(num_fields), persistent=False)

    def keep_blocks(self, index: Tensor) -> None:
        self.weight = nn.Parameter(self.weight.detach()[index].clone())
        self.block_out, self.block_in = self.block_out[index], self.block_in[index]

    def forward(self, x0: Tensor, x: Tensor, block_gates: Tensor | None) -> Tensor:
        """``x0, x``: ``[B, F·D]``; ``block_gates``: ``[B, blocks]`` or None (all open)."""
        rows = len(x)
        inputs = x.view(rows, self.num_fields, self.dim)[:, self.block_in]
        mixed = torch.einsum("nde,bne->bnd", self.weight, inputs)
        if block_gates is not None:
            mixed = mixed * block_gates.unsqueeze(-1)
        summed = mixed.new_zeros(rows, self.num_fields, self.dim).index_add_(
            1, self.block_out, mixed)
        return x0 * (summed.flatten(1) + self.bias) + x


@register_model
class DCNv2(SelectsInteractions, CTRModel):
    """With ``interaction_selection`` the cross layers are block layers: the blocks of field
    pair ``(i, j)`` (both directions) carry its gate during the search and are dropped when the
    pair is not kept; a field's own block is always kept."""

    name = "dcnv2"
    config_class = DCNv2Config

    def __init__(self, embeddings: FieldEmbeddings, config: DCNv2Config) -> None:
        super().__init__(embeddings, config)
        num_fields, dim = embeddings.num_fields, embeddings.embedding_dim
        flat = num_fields * dim
        self.cross = nn.ModuleList(CrossLayer(flat) for _ in range(config.num_cross_layers))
        self.deep = MLP(flat, config.hidden, config.dropout)
        parallel = config.structure == "parallel"
        self.output = nn.Linear(self.deep.output_dim + (flat if parallel else 0), 1)
        self._make_selection(num_fields, dim, config.interaction_selection)
        if self.selection is not None:
            self.cross = nn.ModuleList(BlockCrossLayer(layer, num_fields, dim)
                                       for layer in self.cross)
            self.register_buffer("block_pair", self._block_pairs()[1], persistent=False)

    def _block_pairs(self) -> tuple[Tensor, Tensor]:
        """``(blocks, pair)``: the computed blocks (row-major positions among all ``F²``) and
        for each, its position among the computed pairs (``K`` for a diagonal block)."""
        num_fields, selection = self.embeddings.num_fields, self.selection
        count = selection.num_pairs
        pair_of = torch.full((num_fields, num_fields), -1, dtype=torch.long)
        pair_of[selection.pair_rows, selection.pair_cols] = torch.arange(count)
        pair_of[selection.pair_cols, selection.pair_rows] = torch.arange(count)
        pair_of.fill_diagonal_(count)
        blocks = torch.nonzero(pair_of.flatten() >= 0).squeeze(1)
        return blocks, pair_of.flatten()[blocks]

    def _cut_pairs(self, kept: Tensor) -> None:
        blocks, self.block_pair = self._block_pairs()
        for layer in self.cross:
            layer.keep_blocks(blocks)

    def _interaction_cost(self, pairs: int) -> tuple[int, int]:
        """The cross network: per layer, ``F + 2·pairs`` blocks of ``D x D`` (2D² FLOPs and D²
        weights each), then the bias, the product with ``x0`` and the residual (3FD FLOPs,
        FD biases)."""
        num_fields, dim = self.embeddings.num_fields, self.embeddings.embedding_dim
        blocks = num_fields + 2 * pairs
        layers = self.config.num_cross_layers
        return (layers * (blocks * 2 * dim * dim + 3 * num_fields * dim),
                layers * (blocks * dim * dim + num_fields * dim))

    def head(self, embedded: Tensor) -> Tensor:
        """``embedded``: ``[B, F, D]`` -> logits ``[B]``."""
        x0 = x = embedded.flatten(1)
        if self.selection is None:
            for layer in self.cross:
                x = layer(x0, x)
        else:
            gates = self.selection.gates(embedded)
            block_gates = None
            if gates is not None:
                ones = gates.new_ones(len(gates), 1)
                block_gates = torch.cat([gates, ones], 1)[:, self.block_pair]
            for layer in self.cross:
                x = layer(x0, x, block_gates)
        if self.config.structure == "stacked":
            return self.output(self.deep(x)).squeeze(1)
        return self.output(torch.cat([x, self.deep(x0)], dim=1)).squeeze(1)
