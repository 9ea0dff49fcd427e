"""``pruned``: learnable soft thresholds (PEP, Liu et al., ICLR 2021), exported as a CSR table.

Training form. Each entry is soft-thresholded (PEP's reparametrisation)::

    W_hat = sign(V) * relu(|V| - sigmoid(s) - tau)

``V: (n, d)`` are the weights, ``s`` the learnable threshold logits (one per entry by default;
PEP's "feature-dimension" granularity) and ``tau >= 0`` a buffer: the smallest extra global
threshold that leaves at most ``cap`` entries nonzero. PEP alone cannot target a size (its
sparsity emerges from the threshold init and the training length); ``tau`` is what makes a
budget hold, while the learned thresholds decide *which* entries go beyond it (rare ids may lose
more dimensions than frequent ones) and may prune below the cap.

The cap falls from all ``n*d`` entries to ``max_nonzeros = floor(density * n * d)`` along Zhu &
Gupta's cubic schedule over ``prune_steps`` steps: pruning to the budget from the first step
leaves most entries without gradient (they sit below ``tau``) and the kept ones shrunk by it, and
trains far worse. The schedule only shapes training: **evaluation and export always use the final
cap.** Switching to ``eval()`` recomputes ``tau`` for ``max_nonzeros`` (and ``train()`` back for
the schedule), so validation, early stopping and the final metrics all score exactly the table
``for_inference()`` exports. ``for_inference()`` recomputes ``tau`` itself, so the export holds
at most ``max_nonzeros`` entries whatever the state: if soft thresholding has not reached the
budget, the entries with the largest margins ``|V| - sigmoid(s)`` are the ones kept.

``tau`` costs a selection over all ``n*d`` entries, so training refreshes it every
``threshold_interval`` steps (``after_step``); in between, training may drift slightly over the
scheduled cap, which costs nothing at inference.

Inference form: a ``SparseTable`` (CSR: fp32 values, narrow column indices, row pointers); its
bytes are ``memory_bytes()``, at most ``csr_bytes(n, d, max_nonzeros)``.
"""

from __future__ import annotations

from typing import Literal, Self

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from slimrec.embeddings.base import EmbeddingTable, gaussian_rows, lookup_rows
from slimrec.embeddings.spec import SparseGrad, TableStats, register
from slimrec.embeddings.storage import SparseMethodConfig, SparseTable, nonzero_cap


@register
class PrunedTableConfig(SparseMethodConfig):
    """PEP soft thresholding with a hard cap of ``floor(density * n * d)`` exported entries."""

    method = "pruned"
    density: float = Field(gt=0, le=1, description="fraction of the n*d entries kept at most; "
                                                   "solved from a budget")
    granularity: Literal["element", "row", "dimension", "global"] = Field(
        "element", description="one threshold per entry, per id, per dimension, or one in all")
    threshold_init: float = Field(-8.0, description="initial threshold logit s; "
                                                    "sigmoid(-8) = 3.4e-4")
    prune_steps: int = Field(2000, ge=0, description="steps over which the training cap falls "
                                                     "to the budget; 0 prunes from the start")
    threshold_interval: int = Field(50, ge=1, description="steps between refreshes of tau")
    init_std: float = Field(0.1, gt=0)
    sparse_grad: SparseGrad = False

    def build(self, num_embeddings: int, embedding_dim: int, stats: TableStats | None,
              seed: int) -> PrunedTable:
        return PrunedTable(num_embeddings, embedding_dim, self, seed)


_THRESHOLD_SHAPES = {"element": (True, True), "row": (True, False),
                     "dimension": (False, True), "global": (False, False)}


class PrunedTable(EmbeddingTable):
    """Soft-thresholded table; ``for_inference()`` returns its ``SparseTable``.

    Parameters: ``weight: (n, d)``; ``threshold_logits`` of shape ``(n, d)``, ``(n, 1)``,
    ``(1, d)`` or ``(1, 1)`` by granularity. Buffers: ``tau`` (scalar) and ``step`` (the last
    optimizer step seen, so a resumed run continues the schedule).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int,
                 config: PrunedTableConfig, seed: int = 0) -> None:
        super().__init__(num_embeddings, embedding_dim, config)
        self.max_nonzeros = nonzero_cap(config.density, num_embeddings, embedding_dim)
        generator = torch.Generator().manual_seed(seed)
        weight = gaussian_rows(num_embeddings, embedding_dim, config.init_std, generator)
        self.weight = nn.Parameter(weight)
        per_row, per_dim = _THRESHOLD_SHAPES[config.granularity]
        self.row_thresholds = per_row
        shape = (num_embeddings if per_row else 1, embedding_dim if per_dim else 1)
        self.threshold_logits = nn.Parameter(torch.full(shape, config.threshold_init))
        self.register_buffer("tau", torch.zeros(()))
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))
        self.refresh_tau()

    def cap_at(self, step: int) -> int:
        """Entries training keeps at ``step``: ``k + (n*d - k) * (1 - step / prune_steps)**3``,
        then ``k = max_nonzeros``."""
        total, steps = self.weight.numel(), self.config.prune_steps
        if step >= steps:
            return self.max_nonzeros
        return self.max_nonzeros + int((total - self.max_nonzeros) * (1 - step / steps) ** 3)

    def _margins(self) -> Tensor:
        """``|V| - sigmoid(s)`` for every entry, ``(n, d)``; positive where an entry survives
        its learned threshold."""
        return self.weight.abs() - torch.sigmoid(self.threshold_logits)

    @torch.no_grad()
    def exact_tau(self, cap: int) -> Tensor:
        """The smallest ``tau >= 0`` leaving at most ``cap`` margins above it."""
        margins = self._margins().reshape(-1)
        surplus = margins.numel() - cap
        if surplus <= 0 or int((margins > 0).sum()) <= cap:
            return torch.zeros((), device=margins.device)
        # The (cap+1)-th largest margin, positive here: at most cap entries lie above it.
        return torch.kthvalue(margins, surplus).values

    @torch.no_grad()
    def refresh_tau(self) -> None:
        """``tau`` for the scheduled cap in training mode, for the budget in eval mode."""
        cap = self.cap_at(int(self.step)) if self.training else self.max_nonzeros
        self.tau.copy_(self.exact_tau(cap))

    def lookup(self, ids: Tensor) -> Tensor:
        sparse = self.config.sparse_grad
        rows = lookup_rows(self.weight, ids, sparse)
        logits = self.threshold_logits
        if self.row_thresholds:
            logits = lookup_rows(logits, ids, sparse)
        return torch.sign(rows) * F.relu(rows.abs() - torch.sigmoid(logits) - self.tau)

    def sparse_parameters(self) -> list[nn.Parameter]:
        if not self.config.sparse_grad:
            return []
        return [self.weight, self.threshold_logits] if self.row_thresholds else [self.weight]

    def after_step(self, step: int) -> None:
        self.step.fill_(step)
        if step % self.config.threshold_interval == 0:
            self.refresh_tau()

    def train(self, mode: bool = True) -> Self:
        super().train(mode)
        self.refresh_tau()
        return self

    @torch.no_grad()
    def for_inference(self) -> SparseTable:
        margins = self._margins() - self.exact_tau(self.max_nonzeros)
        weight = torch.sign(self.weight) * margins.clamp_min(0)
        return SparseTable.from_dense(weight, margins > 0, self.max_nonzeros, self.config)
