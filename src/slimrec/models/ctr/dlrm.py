"""DLRM (Naumov et al., 2019) with the dot interaction.

The top MLP reads the dot products of every pair of field embeddings together with the field
embeddings themselves: DLRM concatenates its processed dense features there; SlimRec's fields
are all categorical (numeric ones are binned), so the embeddings take that place and keep the
first-order signal.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor, nn

from slimrec.config import FrozenConfig
from slimrec.models.base import register_model
from slimrec.models.ctr.base import CTRModel, FieldEmbeddings
from slimrec.models.ctr.selection import InteractionSelectionConfig, SelectsInteractions
from slimrec.models.layers import MLP


class DLRMConfig(FrozenConfig):
    hidden: list[int] = Field(default_factory=lambda: [256, 256])
    dropout: float = Field(0.1, ge=0, lt=1)
    interaction_selection: InteractionSelectionConfig = Field(
        default_factory=InteractionSelectionConfig)


@register_model
class DLRM(SelectsInteractions, CTRModel):
    """logit = MLP([<e_i, e_j> for i < j] ‖ concat e_f).

    With ``interaction_selection`` only the selected pairs' dots, each times its gate, reach
    the top MLP, whose first layer loses the columns of the pairs not kept.
    """

    name = "dlrm"
    config_class = DLRMConfig

    def __init__(self, embeddings: FieldEmbeddings, config: DLRMConfig) -> None:
        super().__init__(embeddings, config)
        num_fields, dim = embeddings.num_fields, embeddings.embedding_dim
        rows, cols = torch.triu_indices(num_fields, num_fields, offset=1)
        self._pairs = (rows, cols)
        self.top = MLP(len(rows) + num_fields * dim, config.hidden, config.dropout)
        self.output = nn.Linear(self.top.output_dim, 1)
        self._make_selection(num_fields, dim, config.interaction_selection)

    def head(self, embedded: Tensor) -> Tensor:
        """``embedded``: ``[B, F, D]`` -> logits ``[B]``."""
        dots = self._dots(embedded)
        return self.output(self.top(torch.cat([dots, embedded.flatten(1)], dim=1))).squeeze(1)

    def _dots(self, embedded: Tensor) -> Tensor:
        """Gated dot products of the computed pairs: ``[B, F, D] -> [B, K]``."""
        if self.selection is None:
            return torch.bmm(embedded, embedded.transpose(1, 2))[:, self._pairs[0],
                                                                 self._pairs[1]]
        selection = self.selection
        dots = (embedded[:, selection.pair_rows] * embedded[:, selection.pair_cols]).sum(-1)
        gates = selection.gates(embedded)
        return dots if gates is None else dots * gates

    def _cut_pairs(self, kept: Tensor) -> None:
        """The top MLP's first layer keeps the columns of the kept pairs' dots."""
        first: nn.Linear = self.top[0] if len(self.top) else self.output
        total = len(self._pairs[0])
        columns = torch.cat([kept, torch.arange(total, first.in_features)])
        cut = nn.Linear(len(columns), first.out_features)
        with torch.no_grad():
            cut.weight.copy_(first.weight[:, columns])
            cut.bias.copy_(first.bias)
        if len(self.top):
            self.top[0] = cut
        else:
            self.output = cut

    def _interaction_cost(self, pairs: int) -> tuple[int, int]:
        """Per pair: its dot (2D) and its column of the top MLP's first layer (2·h0 FLOPs,
        h0 weights)."""
        width = self.config.hidden[0] if self.config.hidden else 1
        return pairs * (2 * self.embeddings.embedding_dim + 2 * width), pairs * width
