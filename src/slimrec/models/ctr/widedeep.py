"""Wide & Deep (Cheng et al., 2016): a linear (wide) part and an MLP (deep) part, summed."""

from __future__ import annotations

from pydantic import Field
from torch import Tensor, nn

from slimrec.config import FrozenConfig
from slimrec.models.base import register_model
from slimrec.models.ctr.base import CTRModel, FieldEmbeddings
from slimrec.models.layers import MLP


class WideDeepConfig(FrozenConfig):
    hidden: list[int] = Field(default_factory=lambda: [256, 256])
    dropout: float = Field(0.1, ge=0, lt=1)


@register_model
class WideDeep(CTRModel):
    """logit = Σ_f <e_f, w_f> + b  +  MLP(concat e_f).

    The wide weight of an id is read from its (compressed) embedding through a learned
    per-field vector ``w_f`` (no per-id scalar table outside the budget); hand-made cross-product
    features of the original are left to the deep part.
    """

    name = "widedeep"
    config_class = WideDeepConfig

    def __init__(self, embeddings: FieldEmbeddings, config: WideDeepConfig) -> None:
        super().__init__(embeddings, config)
        flat = embeddings.num_fields * embeddings.embedding_dim
        self.wide = nn.Linear(flat, 1)
        self.deep = MLP(flat, config.hidden, config.dropout)
        self.output = nn.Linear(self.deep.output_dim, 1)

    def head(self, embedded: Tensor) -> Tensor:
        """``embedded``: ``[B, F, D]`` -> logits ``[B]``."""
        flat = embedded.flatten(1)
        return self.wide(flat).squeeze(1) + self.output(self.deep(flat)).squeeze(1)
