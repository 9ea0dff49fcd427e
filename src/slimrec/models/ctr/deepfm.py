"""DeepFM (Guo et al., 2017): first-order + factorization machine + deep tower, summed."""

from __future__ import annotations

from pydantic import Field
from torch import Tensor, nn

from slimrec.config import FrozenConfig
from slimrec.models.base import register_model
from slimrec.models.ctr.base import CTRModel, FieldEmbeddings
from slimrec.models.ctr.selection import InteractionSelectionConfig, SelectsInteractions
from slimrec.models.layers import MLP


class DeepFMConfig(FrozenConfig):
    hidden: list[int] = Field(default_factory=lambda: [256, 256])
    dropout: float = Field(0.1, ge=0, lt=1)
    interaction_selection: InteractionSelectionConfig = Field(
        default_factory=InteractionSelectionConfig)


@register_model
class DeepFM(SelectsInteractions, CTRModel):
    """logit = Σ_f <e_f, w_f> + b  +  ½ Σ_d [(Σ_f e_fd)² − Σ_f e_fd²]  +  MLP(concat e_f).

    The first-order weight of an id is read from its (compressed) embedding through a learned
    per-field vector ``w_f``, rather than from a separate scalar table per id, so that every
    per-id parameter lives inside the memory budget.

    With ``interaction_selection`` the FM sums only the selected pairs, each times its gate
    (``selection.py``); without it, all pairs by the sum-square identity.
    """

    name = "deepfm"
    config_class = DeepFMConfig

    def __init__(self, embeddings: FieldEmbeddings, config: DeepFMConfig) -> None:
        super().__init__(embeddings, config)
        flat = embeddings.num_fields * embeddings.embedding_dim
        self.first_order = nn.Linear(flat, 1)
        self.deep = MLP(flat, config.hidden, config.dropout)
        self.output = nn.Linear(self.deep.output_dim, 1)
        self._make_selection(embeddings.num_fields, embeddings.embedding_dim,
                             config.interaction_selection)

    def head(self, embedded: Tensor) -> Tensor:
        """``embedded``: ``[B, F, D]`` -> logits ``[B]``."""
        flat = embedded.flatten(1)
        pairwise = self._pairwise(embedded)
        return (self.first_order(flat).squeeze(1) + pairwise
                + self.output(self.deep(flat)).squeeze(1))

    def _pairwise(self, embedded: Tensor) -> Tensor:
        """``Σ_{i<j} g_ij <e_i, e_j>`` over the computed pairs: ``[B, F, D] -> [B]``."""
        if self.selection is None:
            return 0.5 * (embedded.sum(1).square() - embedded.square().sum(1)).sum(1)
        selection = self.selection
        dots = (embedded[:, selection.pair_rows] * embedded[:, selection.pair_cols]).sum(-1)
        gates = selection.gates(embedded)
        return (dots if gates is None else dots * gates).sum(1)

    def _cut_pairs(self, kept: Tensor) -> None:
        """The FM has no per-pair weights."""

    def _interaction_cost(self, pairs: int) -> tuple[int, int]:
        """A dot product per pair (D multiplies and D adds); no parameters."""
        return 2 * self.embeddings.embedding_dim * pairs, 0
