"""``dynamic_sparse``: sparse training at a fixed parameter budget for the whole run (DSL-style).

In the spirit of DSL (Wang et al., "Dynamic Sparse Learning: A Novel Paradigm for Efficient
Recommendation", WSDM 2024) and RigL (Evci et al., 2020): the table trains with a mask of
exactly ``k = nonzero_cap(density, n, d)`` active entries from the first step, so the budget is
never exceeded, not only at the end. Every ``update_interval`` steps (``after_step``) the
``r`` active entries of smallest magnitude are pruned and ``r`` inactive ones regrown, chosen by
the accumulated magnitude of their loss gradient (``regrow="gradient"``) or at random. The update
size decays along a cosine, ``r = k * update_fraction * (1 + cos(pi * step / decay_steps)) / 2``,
and the mask is frozen after ``decay_steps``. Regrown entries start at zero (as in RigL).

The mask is a training buffer; the inference form is a ``SparseTable`` holding exactly the ``k``
active entries (CSR: fp32 values, narrow column indices, row pointers).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from slimrec.embeddings.base import EmbeddingTable, gaussian_rows, lookup_rows
from slimrec.embeddings.spec import SparseGrad, TableStats, register
from slimrec.embeddings.storage import SparseMethodConfig, SparseTable, nonzero_cap


@register
class DynamicSparseTableConfig(SparseMethodConfig):
    """A fixed number ``floor(density * n * d)`` of active entries, rewired during training."""

    method = "dynamic_sparse"
    density: float = Field(gt=0, le=1, description="fraction of the n*d entries active; "
                                                   "solved from a budget")
    update_interval: int = Field(100, ge=1, description="steps between prune-and-regrow updates")
    update_fraction: float = Field(0.3, gt=0, le=1,
                                   description="fraction of active entries replaced at step 0")
    decay_steps: int = Field(5000, ge=1, description="steps after which the mask is frozen")
    regrow: Literal["gradient", "random"] = "gradient"
    init_std: float = Field(0.1, gt=0)
    sparse_grad: SparseGrad = False

    def build(self, num_embeddings: int, embedding_dim: int, stats: TableStats | None,
              seed: int) -> DynamicSparseTable:
        return DynamicSparseTable(num_embeddings, embedding_dim, self, seed)


class DynamicSparseTable(EmbeddingTable):
    """``weight * mask`` with a rewired boolean mask; ``for_inference()`` gives a
    ``SparseTable``.

    Buffers: ``mask: bool (n, d)`` with exactly ``max_nonzeros`` set and, for gradient regrowth,
    ``gradient_score: (n, d)``, the summed ``|dL/d output|`` since the last update.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int,
                 config: DynamicSparseTableConfig, seed: int = 0) -> None:
        super().__init__(num_embeddings, embedding_dim, config)
        self.seed = seed
        self.max_nonzeros = nonzero_cap(config.density, num_embeddings, embedding_dim)
        generator = torch.Generator().manual_seed(seed)
        weight = gaussian_rows(num_embeddings, embedding_dim, config.init_std, generator)
        total = num_embeddings * embedding_dim
        active = torch.randperm(total, generator=generator)[: self.max_nonzeros]
        mask = torch.zeros(total, dtype=torch.bool)
        mask[active] = True
        mask = mask.reshape(num_embeddings, embedding_dim)
        self.weight = nn.Parameter(weight * mask)
        self.register_buffer("mask", mask)
        if config.regrow == "gradient":
            self.register_buffer("gradient_score", torch.zeros(num_embeddings, embedding_dim))

    def update_count(self, step: int) -> int:
        """Entries pruned (and regrown) by the update at ``step``: cosine-decayed, and never
        more than there are inactive entries to regrow."""
        config = self.config
        if step > config.decay_steps:
            return 0
        fraction = config.update_fraction * (1 + math.cos(math.pi * step / config.decay_steps)) / 2
        inactive = self.mask.numel() - self.max_nonzeros
        return min(int(fraction * self.max_nonzeros), inactive)

    def lookup(self, ids: Tensor) -> Tensor:
        out = lookup_rows(self.weight, ids, self.config.sparse_grad) * self.mask[ids]
        if self.training and out.requires_grad and self.config.regrow == "gradient":
            out.register_hook(partial(self._record_gradient, ids.reshape(-1)))
        return out

    def sparse_parameters(self) -> list[nn.Parameter]:
        return [self.weight] if self.config.sparse_grad else []

    @torch.no_grad()
    def _record_gradient(self, flat_ids: Tensor, grad: Tensor) -> None:
        # The gradient of the masked output is dense over dimensions: the RigL signal for which
        # inactive entries would reduce the loss if regrown.
        self.gradient_score.index_add_(0, flat_ids, grad.reshape(-1, self.embedding_dim).abs())

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        if step % self.config.update_interval != 0:
            return
        count = self.update_count(step)
        if count > 0:
            self._rewire(step, count)
        if self.config.regrow == "gradient":
            self.gradient_score.zero_()

    @torch.no_grad()
    def _rewire(self, step: int, count: int) -> None:
        mask, weight = self.mask.view(-1), self.weight.view(-1)
        inf = torch.tensor(math.inf)
        magnitude = torch.where(mask, weight.abs(), inf)
        pruned = torch.topk(magnitude, count, largest=False).indices
        if self.config.regrow == "gradient":
            score = self.gradient_score.view(-1)
        else:
            # Seeded by (seed, step) so that resuming from a checkpoint redraws the same entries.
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
            score = torch.rand(mask.numel(), generator=generator)
        # Only entries inactive before this update may grow, so every update changes the mask.
        grown = torch.topk(torch.where(mask, -inf, score), count).indices
        mask[pruned] = False
        mask[grown] = True
        weight[pruned] = 0.0
        weight[grown] = 0.0

    @torch.no_grad()
    def for_inference(self) -> SparseTable:
        return SparseTable.from_dense(self.weight * self.mask, self.mask, self.max_nonzeros,
                                      self.config)
