"""AutoIFS (automated information-flow selection for multi-scenario multi-task recommendation,
WSDM 2026): one shared backbone decoupled into four units by LoRA adapters, and a gate over the
information flows from the scenario units to the task units, annealed, then hard-pruned.

- scenario-shared unit: the bottom MLP ``h⁰ = bottom(x)``;
- scenario-specific unit of scenario ``s``: the same MLP with scenario ``s``'s rank-``r``
  adapters, ``hˢ = bottom_s(x)``;
- task-shared unit: the tower MLP ``tower(h)``; task-specific unit of task ``t``: the tower with
  task ``t``'s adapters, ``tower_t(h)``;
- the four flows of a (scenario, task) pair and their gates ``g``::

      z_{s,t} = g₀ tower(h⁰) + g₁ tower_t(h⁰) + g₂ tower(hˢ) + g₃ tower_t(hˢ)
      logit_t = out_t(z_{s,t})

During the search ``g = σ(β α_{s,t,k})`` with ``β`` annealed geometrically from 1 to
``anneal_to`` (100); the decision keeps the flows with ``α > 0`` (at least the strongest of
each pair); the model is rewound to its initial weights and retrained with the kept flows
(``slimrec.train.search``). A flow no (scenario, task) pair keeps is not computed at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from pydantic import Field
from torch import Tensor, nn

from slimrec.errors import ArtifactError
from slimrec.models.base import register_model
from slimrec.models.ctr.base import FieldEmbeddings
from slimrec.models.multitask.base import LoRATower, MultiTaskModel, TowerConfig, build_linears

FLOWS = ("shared->shared", "shared->specific", "specific->shared", "specific->specific")


class AutoIFSConfig(TowerConfig):
    rank: int = Field(2, ge=1, description="rank of the LoRA adapters")
    search_epochs: int = Field(10, ge=1, description="epochs of the flow search")
    anneal_to: float = Field(100.0, ge=1, description="final inverse temperature of the gates")


@register_model
class AutoIFS(MultiTaskModel):
    name = "autoifs"
    config_class = AutoIFSConfig

    def __init__(self, embeddings: FieldEmbeddings, config: AutoIFSConfig, scenarios: list[str],
                 tasks: list[str]) -> None:
        super().__init__(embeddings, config, scenarios, tasks)
        self.bottom = LoRATower(self.input_dim, config.hidden, config.dropout, len(scenarios),
                                config.rank)
        self.tower = LoRATower(self.bottom.output_dim, config.tower, config.dropout, len(tasks),
                               config.rank)
        self.outputs = build_linears(len(tasks), self.tower.output_dim, 1)
        self.gate_logits = nn.Parameter(torch.zeros(len(scenarios), len(tasks), len(FLOWS)))
        self.register_buffer("flow_mask", torch.ones(len(scenarios), len(tasks), len(FLOWS)),
                             persistent=False)
        self.searching = self.applied = False
        self.sharpness, self._anneal_rate = 1.0, 1.0
        self._decision: dict[str, Any] | None = None
        self.search_summary: dict[str, Any] | None = None

    # ------------------------------------------------------------------ forward
    def _gates(self) -> Tensor:
        """``[S, T, 4]``: annealed sigmoids while searching, the 0/1 mask once pruned."""
        if self.applied:
            return self.flow_mask
        return torch.sigmoid(self.sharpness * self.gate_logits)

    def head(self, flat: Tensor, scenarios: Tensor) -> Tensor:
        gates = self._gates()
        used = gates.flatten(0, 1).amax(0) > 0  # flows some pair keeps
        shared = self.bottom(flat)
        specific = self.bottom(flat, scenarios) if bool(used[2:].any()) else None
        logits = []
        for task, output in enumerate(self.outputs):
            row_gates = gates[scenarios, task]  # [B, 4]
            mixed = 0.0
            for flow, (source, adapted) in enumerate(((shared, None), (shared, task),
                                                      (specific, None), (specific, task))):
                if used[flow]:
                    mixed = mixed + row_gates[:, flow:flow + 1] * self.tower(source, adapted)
            logits.append(output(mixed))
        return torch.cat(logits, dim=1)

    # ------------------------------------------------------------------ search hooks
    def pending_search_epochs(self) -> int:
        return 0 if self.applied or self.searching else self.config.search_epochs

    def begin_search(self, steps: int) -> None:
        self.searching, self.sharpness = True, 1.0
        self._anneal_rate = self.config.anneal_to ** (1.0 / max(1, steps))

    def after_step(self, step: int) -> None:
        super().after_step(step)
        if self.searching and not self.applied:
            self.sharpness = min(self.config.anneal_to, self.sharpness * self._anneal_rate)

    def search_decision(self) -> dict[str, Any]:
        logits = self.gate_logits.detach()
        keep = logits > 0
        strongest = torch.nn.functional.one_hot(logits.argmax(-1), len(FLOWS)).bool()
        keep |= strongest & ~keep.any(-1, keepdim=True)  # every pair keeps a flow
        return {"flows": keep.int().tolist()}

    def apply_search_decision(self, decision: Mapping[str, Any]) -> None:
        mask = torch.tensor(decision["flows"], dtype=torch.float32)
        if mask.shape != self.flow_mask.shape:
            raise ArtifactError(f"AutoIFS flow decision has shape {tuple(mask.shape)}; this "
                                f"model has {tuple(self.flow_mask.shape)} (scenarios, tasks, "
                                "flows).")
        self.flow_mask = mask
        del self.gate_logits
        self.applied = True
        self._decision = {"flows": mask.int().tolist()}

    def artifact_info(self) -> dict[str, Any]:
        info = super().artifact_info()
        if self._decision is not None:
            info["search_decision"] = self._decision
        return info

    def structure_report(self) -> dict[str, Any]:
        report = super().structure_report()
        if self._decision is not None:
            flows = {f"{scenario}/{task}": [FLOWS[k] for k, kept in enumerate(row) if kept]
                     for scenario, by_task in zip(self.scenario_names, self._decision["flows"],
                                                  strict=True)
                     for task, row in zip(self.task_names, by_task, strict=True)}
            kept = sum(len(names) for names in flows.values())
            report["flows"] = {"kept": flows, "kept_count": kept,
                               "total": len(flows) * len(FLOWS)}
        if self.search_summary is not None:
            report["search"] = self.search_summary
        return report
