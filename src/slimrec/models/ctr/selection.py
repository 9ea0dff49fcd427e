"""Feature-interaction selection for the pairwise parts of CTR models (DeepFM's FM, DCN-V2's
cross, DLRM's dots): a search phase learns which field pairs to keep, then the model is rewound
to its initialisation and retrained with the kept pairs only.

Two selectors, set by ``model_params.interaction_selection``:

- ``optfeature`` (after Lyu, Tang et al., NeurIPS 2023, "Towards Hybrid-grained Feature
  Interaction Selection for Deep Sparse Network"): the gate of pair ``p = (i, j)`` on a row is
  decomposed into a field-level gate and a value-level gate, mixed by a learned hybrid choice::

      field_p = σ(β a_p)                  value_p(x) = σ(β (s_i(x) s_j(x) + c_p))
      mix_p   = σ(h_p)                    gate_p(x)  = field_p · (mix_p · value_p(x) + 1 − mix_p)

  ``s_f(x) = <w_f, e_f(x)>`` is a per-field projection of the value's (compressed) embedding: the
  value-level selection tensor over value pairs is rank-1 decomposed into per-value scores, and
  those are read from the embeddings so that no per-id parameter lives outside the memory budget.
  ``β`` (the inverse temperature) is annealed geometrically from 1 to ``anneal_to`` over the
  search. After the search, the ``keep`` fraction of pairs with the largest ``a_p`` is kept; a
  kept pair with ``mix_p > 1/2`` stays value-grained: on each row it is computed only where
  ``s_i s_j + c_p > 0`` (a hard gate trained through a straight-through estimator).
- ``autofis`` (field-level only, after AutoFIS, Liu et al., KDD 2020): one free weight ``α_p``
  per pair with an L1 penalty during the search; the pairs with the largest ``|α_p|`` are kept
  (same ``keep`` fraction) and computed ungated in the retrain.

``InteractionSelection`` holds the gates; ``SelectsInteractions`` is the model mix-in that wires
them into the spine's search hooks (``slimrec.train.search``), the artifact and the report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import torch
import yaml
from pydantic import Field, model_validator
from torch import Tensor, nn

from slimrec.config import FrozenConfig
from slimrec.errors import ArtifactError

Pairs = list[list[int]]


class InteractionSelectionConfig(FrozenConfig):
    """``model_params.interaction_selection``: a method name (``optfeature``) or a mapping."""

    method: Literal["off", "optfeature", "autofis"] = "off"
    keep: float = Field(0.5, gt=0, le=1, description="fraction of the field pairs kept")
    search_epochs: int = Field(3, ge=1, description="epochs of the search phase")
    anneal_to: float = Field(10.0, ge=1, description="optfeature: final inverse temperature "
                             "of the gates at the end of the search")
    sparsity: float = Field(1e-3, ge=0, description="weight of the penalty on the open "
                            "field-level gates during the search")

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, values: Any) -> Any:
        """``--model-param interaction_selection=optfeature`` gives a name; a flow mapping
        (``{method: autofis, keep: 0.3}``) gives settings."""
        if isinstance(values, str):
            parsed = yaml.safe_load(values)
            return parsed if isinstance(parsed, Mapping) else {"method": values}
        return values


def all_pairs(num_fields: int) -> tuple[Tensor, Tensor]:
    """Rows and columns of the ``F(F-1)/2`` field pairs ``i < j``, in ``triu`` order."""
    return tuple(torch.triu_indices(num_fields, num_fields, offset=1))


class InteractionSelection(nn.Module):
    """The gates over field pairs; ``gates(embedded) -> [B, K]`` or ``[1, K]`` for the ``K``
    pairs currently computed (``pair_rows``/``pair_cols``): all pairs until a decision is
    applied, the kept pairs after."""

    def __init__(self, num_fields: int, embedding_dim: int,
                 config: InteractionSelectionConfig) -> None:
        super().__init__()
        self.config, self.num_fields = config, num_fields
        rows, cols = all_pairs(num_fields)
        # The structure comes from the decision (saved in the artifact), not the weights.
        self.register_buffer("pair_rows", rows, persistent=False)
        self.register_buffer("pair_cols", cols, persistent=False)
        self.register_buffer("value_level", torch.zeros(len(rows), dtype=torch.bool),
                             persistent=False)
        # Value-level pairs as positions among ``value_fields`` (whose scores are computed).
        self.register_buffer("value_fields", torch.arange(num_fields), persistent=False)
        self.register_buffer("value_rows", rows.clone(), persistent=False)
        self.register_buffer("value_cols", cols.clone(), persistent=False)
        self.applied = self.searching = False
        self.sharpness, self._anneal_rate = 1.0, 1.0
        if config.method == "autofis":
            self.field_logits = nn.Parameter(torch.ones(len(rows)))
        else:
            self.field_logits = nn.Parameter(torch.zeros(len(rows)))
            self.hybrid_logits = nn.Parameter(torch.zeros(len(rows)))
            self.value_weight = nn.Parameter(torch.randn(num_fields, embedding_dim)
                                             / math.sqrt(embedding_dim))
            self.value_bias = nn.Parameter(torch.zeros(len(rows)))

    @property
    def num_pairs(self) -> int:
        return len(self.pair_rows)

    # ------------------------------------------------------------------ search
    def begin_search(self, steps: int) -> None:
        """Anneal ``β`` from 1 to ``anneal_to`` over ``steps`` optimizer steps."""
        self.searching, self.sharpness = True, 1.0
        self._anneal_rate = self.config.anneal_to ** (1.0 / max(1, steps))

    def after_step(self) -> None:
        if not self.applied:
            self.sharpness = min(self.config.anneal_to, self.sharpness * self._anneal_rate)

    def penalty(self) -> Tensor | None:
        """Search only: pushes field-level gates shut so that only useful pairs stay open."""
        if self.applied or not self.config.sparsity:
            return None
        if self.config.method == "autofis":
            return self.config.sparsity * self.field_logits.abs().sum()
        return self.config.sparsity * torch.sigmoid(self.sharpness * self.field_logits).sum()

    def _value_logits(self, embedded: Tensor) -> Tensor:
        """``s_i s_j + c_p`` of the value-level pairs ``[B, V]`` (all pairs while searching)."""
        scores = (embedded[:, self.value_fields] * self.value_weight).sum(-1)  # [B, fields]
        return scores[:, self.value_rows] * scores[:, self.value_cols] + self.value_bias

    def gates(self, embedded: Tensor) -> Tensor | None:
        """Gates of the computed pairs (``None``: all open, nothing to multiply)."""
        if self.config.method == "autofis":
            return None if self.applied else self.field_logits.unsqueeze(0)
        if not self.applied:
            field = torch.sigmoid(self.sharpness * self.field_logits)
            value = torch.sigmoid(self.sharpness * self._value_logits(embedded))
            mix = torch.sigmoid(self.hybrid_logits)
            return field * (mix * value + 1 - mix)
        if not bool(self.value_level.any()):
            return None
        logits = self._value_logits(embedded)
        soft = torch.sigmoid(logits)
        hard = (logits > 0).to(soft.dtype)
        gates = embedded.new_ones(len(embedded), self.num_pairs)
        gates[:, self.value_level] = hard + soft - soft.detach()  # straight-through
        return gates

    # ------------------------------------------------------------------ decision
    def decide(self) -> dict[str, Pairs]:
        """The ``keep`` fraction of pairs with the strongest field-level weight; for
        optfeature, which of those are value-grained."""
        weights = self.field_logits.detach()
        strength = weights.abs() if self.config.method == "autofis" else weights
        count = max(1, int(self.config.keep * len(weights)))
        kept = torch.sort(torch.topk(strength, count).indices).values
        value = []
        if self.config.method == "optfeature":
            value = kept[self.hybrid_logits.detach()[kept] > 0].tolist()
        pairs = [[int(self.pair_rows[k]), int(self.pair_cols[k])] for k in kept.tolist()]
        return {"kept_pairs": pairs,
                "value_pairs": [[int(self.pair_rows[k]), int(self.pair_cols[k])]
                                for k in value]}

    def apply(self, decision: Mapping[str, Pairs]) -> Tensor:
        """Compute only the decided pairs from now on; return their positions among all pairs
        (``triu`` order), for the model to cut its own pair-indexed weights."""
        if self.applied:
            raise ArtifactError("interaction selection was already applied to this model.")
        index = {(int(r), int(c)): k for k, (r, c) in enumerate(
            zip(*all_pairs(self.num_fields), strict=True))}
        try:
            kept = torch.tensor([index[tuple(pair)] for pair in decision["kept_pairs"]])
            value = {tuple(pair) for pair in decision.get("value_pairs", [])}
        except (KeyError, TypeError) as error:
            raise ArtifactError(f"interaction selection decision names no pair {error} of "
                                f"{self.num_fields} fields.") from None
        self.pair_rows, self.pair_cols = self.pair_rows[kept], self.pair_cols[kept]
        self.value_level = torch.tensor([(int(r), int(c)) in value for r, c in
                                         zip(self.pair_rows, self.pair_cols, strict=True)],
                                        dtype=torch.bool)
        del self.field_logits
        if self.config.method == "optfeature":
            del self.hybrid_logits
            self._keep_value_parameters(kept)
        self.applied = True
        return kept

    def _keep_value_parameters(self, kept: Tensor) -> None:
        """Only the value-grained pairs' biases and their fields' projections remain."""
        bias = self.value_bias.detach()[kept][self.value_level]
        fields = torch.unique(torch.cat([self.pair_rows[self.value_level],
                                         self.pair_cols[self.value_level]]))
        weight = self.value_weight.detach()[fields]
        del self.value_weight, self.value_bias
        if len(bias):
            self.value_bias = nn.Parameter(bias.clone())
            self.value_weight = nn.Parameter(weight.clone())
            local = torch.full((self.num_fields,), -1, dtype=torch.long)
            local[fields] = torch.arange(len(fields))
            self.value_fields = fields
            self.value_rows = local[self.pair_rows[self.value_level]]
            self.value_cols = local[self.pair_cols[self.value_level]]

    def gate_cost(self, embedding_dim: int) -> tuple[int, int]:
        """``(FLOPs per row, parameters)`` of the applied value-level gates: the projections
        of the fields involved (2D each), then a product, a bias and a compare per pair."""
        pairs = int(self.value_level.sum()) if self.applied else 0
        if not pairs:
            return 0, 0
        fields = len(self.value_fields)
        return 2 * embedding_dim * fields + 3 * pairs, embedding_dim * fields + pairs


class SelectsInteractions:
    """Mix-in for a ``CTRModel`` with ``self.selection`` (an ``InteractionSelection`` or None
    when off): the spine's search hooks, the artifact's decision and the report.

    The model implements ``_cut_pairs(kept)`` (drop its weights of the unkept pairs) and
    ``_interaction_cost(pairs) -> (flops, params)`` (its interaction part computing ``pairs``
    field pairs, per row, without the gates).
    """

    selection: InteractionSelection | None
    search_summary: dict[str, Any] | None = None

    def _make_selection(self, num_fields: int, embedding_dim: int,
                        config: InteractionSelectionConfig) -> None:
        self.selection = (None if config.method == "off"
                          else InteractionSelection(num_fields, embedding_dim, config))
        self._decision: dict[str, Pairs] | None = None

    def pending_search_epochs(self) -> int:
        if self.selection is None or self.selection.applied or self.selection.searching:
            return 0
        return self.selection.config.search_epochs

    def begin_search(self, steps: int) -> None:
        self.selection.begin_search(steps)

    def search_decision(self) -> dict[str, Pairs]:
        return self.selection.decide()

    def apply_search_decision(self, decision: Mapping[str, Pairs]) -> None:
        kept = self.selection.apply(decision)
        self._cut_pairs(kept)
        self._decision = {key: [list(pair) for pair in value]
                          for key, value in decision.items()}

    def regularizer(self) -> Tensor | None:
        base = super().regularizer()
        penalty = self.selection.penalty() if self.selection is not None else None
        if penalty is None:
            return base
        return penalty if base is None else base + penalty

    def after_step(self, step: int) -> None:
        super().after_step(step)
        if self.selection is not None:
            self.selection.after_step()

    def artifact_info(self) -> dict[str, Any]:
        info = super().artifact_info()
        if self._decision is not None:
            info["search_decision"] = self._decision
        return info

    def structure_report(self) -> dict[str, Any]:
        """The ``interactions`` block of results.json: what is computed and what it costs."""
        num_fields, dim = self.embeddings.num_fields, self.embeddings.embedding_dim
        total = num_fields * (num_fields - 1) // 2
        kept = self.selection.num_pairs if self.selection is not None else total
        flops, params = self._interaction_cost(kept)
        full_flops, full_params = self._interaction_cost(total)
        gate_flops, gate_params = (self.selection.gate_cost(dim) if self.selection is not None
                                   else (0, 0))
        config = (self.selection.config if self.selection is not None
                  else InteractionSelectionConfig())
        report = {"method": config.method, "field_pairs": total, "kept_pairs": kept,
                  "kept_fraction": kept / total if total else 1.0,
                  "value_level_pairs": (int(self.selection.value_level.sum())
                                        if self.selection is not None else 0),
                  "flops_per_row": flops + gate_flops, "gate_flops_per_row": gate_flops,
                  "params": params + gate_params, "gate_params": gate_params,
                  "full_flops_per_row": full_flops, "full_params": full_params,
                  "flops_removed_fraction": 1 - (flops + gate_flops) / full_flops
                  if full_flops else 0.0}
        if self._decision is not None:
            report["kept"] = self._decision["kept_pairs"]
            report["value_level"] = self._decision["value_pairs"]
        if self.search_summary is not None:
            report["search"] = self.search_summary
        return {"interactions": report}
