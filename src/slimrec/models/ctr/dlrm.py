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
from slimrec.models.layers import MLP


class DLRMConfig(FrozenConfig):
    hidden: list[int] = Field(default_factory=lambda: [256, 256])
    dropout: float = Field(0.1, ge=0, lt=1)


@register_model
class DLRM(CTRModel):
    """logit = MLP([<e_i, e_j> for i < j] ‖ concat e_f)."""

    name = "dlrm"
    config_class = DLRMConfig

    def __init__(self, embeddings: FieldEmbeddings, config: DLRMConfig) -> None:
        super().__init__(embeddings, config)
        num_fields, dim = embeddings.num_fields, embeddings.embedding_dim
        rows, cols = torch.triu_indices(num_fields, num_fields, offset=1)
        self._pairs = (rows, cols)
        self.top = MLP(len(rows) + num_fields * dim, config.hidden, config.dropout)
        self.output = nn.Linear(self.top.output_dim, 1)

    def head(self, embedded: Tensor) -> Tensor:
        """``embedded``: ``[B, F, D]`` -> logits ``[B]``."""
        dots = torch.bmm(embedded, embedded.transpose(1, 2))[:, self._pairs[0], self._pairs[1]]
        return self.output(self.top(torch.cat([dots, embedded.flatten(1)], dim=1))).squeeze(1)
