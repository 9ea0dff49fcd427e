"""NeuMF (He et al., WWW 2017): a GMF tower and an MLP tower fused by one linear layer.

Each row of the user and item tables (width ``d``) is split in two: the first ``gmf_dim``
columns feed the GMF tower, the other ``d - gmf_dim`` the MLP tower. The paper gives each tower
its own user and item tables; splitting one row keeps that separation while the model has
exactly one table per role, so a byte budget means the same thing for NeuMF as for MF and
LightGCN (and any compression method applies unchanged). With ``p = [p_g | p_m]`` and
``q = [q_g | q_m]``::

    score(u, i) = h_gᵀ (p_g ⊙ q_g) + h_mᵀ MLP([p_m ; q_m]) + b

The MLP weights and ``h``, ``b`` are dense parameters (``dense_bytes()``). Training uses the
one BPR loop (the paper used pointwise log loss; BPR ranks as well and keeps one loop).

Ranking all items cannot be a single matrix product: the MLP sees every (user, item) pair.
``scorer()`` splits the first MLP layer as ``W [p_m ; q_m] = W_u p_m + W_i q_m``, computes the
item half once for all items, and runs the rest of the MLP over item chunks sized so that no
more than ``max_elements`` activations (``B x chunk x width``) exist at a time.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import torch
from pydantic import Field
from torch import Tensor, nn

from slimrec.config import FrozenConfig
from slimrec.embeddings.base import EmbeddingTable
from slimrec.errors import ConfigError
from slimrec.models.base import RetrievalModel, Scorer, register_model

# 512K fp32 activations (2 MiB) per chunk. Scoring 256 users x Gowalla's 40,981 items (hidden
# 64-32-16, one core) takes ~2.0 s from 128K to 4M elements per chunk, 2.7 s at 64K (Python
# overhead). The in-place ReLUs and 2-D products below halved it (4.2-5.1 s before).
DEFAULT_MAX_ELEMENTS = 1 << 19


class NeuMFConfig(FrozenConfig):
    """Settings of NeuMF (``model_params`` of a run)."""

    gmf_dim: int | None = Field(None, ge=1, description="row columns feeding GMF; default d // 2")
    hidden: list[int] = Field(default_factory=lambda: [64, 32, 16],
                              description="widths of the MLP tower's hidden layers")


@register_model
class NeuMF(RetrievalModel):
    """GMF + MLP towers over one user table and one item table (rows split between towers)."""

    name = "neumf"
    config_class = NeuMFConfig

    def __init__(self, user_table: EmbeddingTable, item_table: EmbeddingTable,
                 config: NeuMFConfig | None = None, seed: int = 0) -> None:
        super().__init__()
        config = config or NeuMFConfig()
        dim = user_table.embedding_dim
        if item_table.embedding_dim != dim:
            raise ValueError(f"user and item tables must have the same embedding_dim; got "
                             f"{dim} and {item_table.embedding_dim}.")
        gmf_dim = dim // 2 if config.gmf_dim is None else config.gmf_dim
        if not 1 <= gmf_dim < dim:
            raise ConfigError(f"NeuMFConfig.gmf_dim must be in [1, {dim - 1}] for embedding_dim "
                              f"{dim} (the rest feeds the MLP tower); got {gmf_dim}.")
        if not config.hidden or min(config.hidden) < 1:
            raise ConfigError(f"NeuMFConfig.hidden must be a non-empty list of widths >= 1; got "
                              f"{config.hidden}.")
        self.config = config
        self.gmf_dim = gmf_dim
        self.user_table = user_table
        self.item_table = item_table
        widths = [2 * (dim - gmf_dim), *config.hidden]
        # Dense weights are seeded like the tables, without touching the global generator.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            layers: list[nn.Module] = []
            for width_in, width_out in itertools.pairwise(widths):
                layers += [nn.Linear(width_in, width_out), nn.ReLU()]
            self.mlp = nn.Sequential(*layers)
            self.predict = nn.Linear(gmf_dim + widths[-1], 1)

    @classmethod
    def from_data(cls, user_table: EmbeddingTable, item_table: EmbeddingTable,
                  train: Any, config: FrozenConfig) -> NeuMF:
        return cls(user_table, item_table, config)

    @classmethod
    def from_artifact(cls, tables: dict[str, EmbeddingTable], dense: dict[str, Tensor],
                      config: FrozenConfig, info: Mapping[str, Any]) -> NeuMF:
        model = cls(tables["user_table"], tables["item_table"], config)
        model.load_parts(tables, dense)
        return model

    def _towers(self, user_rows: Tensor, item_rows: Tensor) -> Tensor:
        """Scores of aligned rows: ``(..., d) x (..., d) -> (...)``."""
        g = self.gmf_dim
        gmf = user_rows[..., :g] * item_rows[..., :g]
        mlp = self.mlp(torch.cat([user_rows[..., g:], item_rows[..., g:]], dim=-1))
        return self.predict(torch.cat([gmf, mlp], dim=-1)).squeeze(-1)

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        return self._towers(self.user_table(users), self.item_table(items))

    def bpr_terms(self, users: Tensor, positives: Tensor, negatives: Tensor,
                  penalty: bool = True) -> tuple[Tensor, Tensor, Tensor | None]:
        user_rows = self.user_table(users)
        positive_rows = self.item_table(positives)
        negative_rows = self.item_table(negatives)
        positive = self._towers(user_rows, positive_rows)
        negative = self._towers(user_rows, negative_rows)
        if not penalty:
            return positive, negative, None
        l2 = (user_rows.square().sum() + positive_rows.square().sum()
              + negative_rows.square().sum()) / 2
        return positive, negative, l2

    def scorer(self, stored: bool = False, max_elements: int = DEFAULT_MAX_ELEMENTS) -> Scorer:
        """Rank all items in item chunks of at most ``max_elements`` MLP activations per batch.
        The item side of the MLP is precomputed in fp32, so ``stored`` changes nothing.

        Done once here: the item rows, the item half of the first MLP layer ``(I, h1)`` and the
        GMF item factors ``q_g ⊙ h_g`` ``(I, gmf_dim)``. When items share vectors
        (``distinct_rows()``), these are computed for the R distinct vectors only and the
        pairwise MLP runs over R columns instead of I, then each item takes its vector's score:
        the MLP is most of a NeuMF pass, so this saves about I / R of it, and the items of one
        vector get bit-identical scores (exact ties).
        """
        if max_elements < 1:
            raise ConfigError(f"max_elements must be an int >= 1; got {max_elements}.")
        g = self.gmf_dim
        first, *deeper = [layer for layer in self.mlp if isinstance(layer, nn.Linear)]
        mlp_dim = first.in_features // 2
        gmf_weight = self.predict.weight[0, :g].detach()
        mlp_weight = self.predict.weight[0, g:].detach()
        bias = float(self.predict.bias.detach())
        shared = self.item_table.distinct_rows()
        with torch.no_grad():
            item_rows = self.item_table.full_weight() if shared is None else shared[0]
            item_hidden = item_rows[:, g:] @ first.weight[:, mlp_dim:].T + first.bias  # (I, h1)
            item_gmf = item_rows[:, :g] * gmf_weight  # (I, g)
        num_columns, width = item_hidden.shape

        def score_columns(users: Tensor, out: Tensor | None) -> Tensor:
            """Scores of ``users`` against every row of ``item_rows``: ``(B, num_columns)``."""
            user_rows = self.user_table(users)
            user_hidden = user_rows[:, g:] @ first.weight[:, :mlp_dim].T  # (B, h1)
            out = torch.mm(user_rows[:, :g], item_gmf.T, out=out)  # GMF part
            out += bias
            chunk = max(1, max_elements // (len(users) * width))
            for start in range(0, num_columns, chunk):
                stop = min(start + chunk, num_columns)
                # (B, c, h1): the widest pairwise tensor, bounded by max_elements. Every layer
                # is followed by a ReLU, applied in place: one memory pass fewer per layer.
                hidden = torch.add(user_hidden[:, None, :], item_hidden[None, start:stop])
                hidden = hidden.relu_().view(-1, width)
                for layer in deeper:
                    hidden = torch.addmm(layer.bias, hidden, layer.weight.T).relu_()
                out[:, start:stop] += (hidden @ mlp_weight).view(len(users), stop - start)
            return out

        def score_all(users: Tensor, out: Tensor | None = None) -> Tensor:
            with torch.no_grad():
                if shared is None:
                    return score_columns(users, out)
                return torch.index_select(score_columns(users, None), 1, shared[1], out=out)

        return score_all
