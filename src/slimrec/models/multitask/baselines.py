"""Multi-task baselines: shared-bottom, MMoE (Ma et al., KDD 2018) and PLE (Tang et al., RecSys
2020, one CGC extraction level). They see the scenario only through the row's features (the
age field); each task has its own tower and output."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor, nn

from slimrec.models.base import register_model
from slimrec.models.ctr.base import FieldEmbeddings
from slimrec.models.multitask.base import (
    MultiTaskModel,
    Tower,
    TowerConfig,
    build_linears,
    build_towers,
)


class SharedBottomConfig(TowerConfig):
    pass  # the shared widths are all a shared bottom needs


class MMoEConfig(SharedBottomConfig):
    experts: int = Field(4, ge=1, description="experts shared by every task")


class PLEConfig(SharedBottomConfig):
    shared_experts: int = Field(2, ge=1)
    task_experts: int = Field(1, ge=1, description="experts of each task")


class _TaskHeads(nn.Module):
    """One tower and one output per task: ``[T] x [B, d] -> [B, T]``."""

    def __init__(self, input_dim: int, tasks: int, config: SharedBottomConfig) -> None:
        super().__init__()
        self.towers = build_towers(tasks, input_dim, config.tower, config.dropout)
        self.outputs = nn.ModuleList(nn.Linear(tower.output_dim, 1) for tower in self.towers)

    def forward(self, inputs: list[Tensor]) -> Tensor:
        return torch.cat([output(tower(x)) for x, tower, output in
                          zip(inputs, self.towers, self.outputs, strict=True)], dim=1)


@register_model
class SharedBottom(MultiTaskModel):
    name = "shared_bottom"
    config_class = SharedBottomConfig

    def __init__(self, embeddings: FieldEmbeddings, config: SharedBottomConfig,
                 scenarios: list[str], tasks: list[str]) -> None:
        super().__init__(embeddings, config, scenarios, tasks)
        self.bottom = Tower(self.input_dim, config.hidden, config.dropout)
        self.heads = _TaskHeads(self.bottom.output_dim, len(tasks), config)

    def head(self, flat: Tensor, scenarios: Tensor) -> Tensor:
        shared = self.bottom(flat)
        return self.heads([shared] * len(self.task_names))


def _mixture(experts: list[Tensor], gate: nn.Linear, flat: Tensor) -> Tensor:
    """``Σ_k softmax(gate(x))_k · expert_k``: ``[B, d]``."""
    weights = torch.softmax(gate(flat), dim=1)
    return (torch.stack(experts, dim=1) * weights.unsqueeze(-1)).sum(1)


@register_model
class MMoE(MultiTaskModel):
    name = "mmoe"
    config_class = MMoEConfig

    def __init__(self, embeddings: FieldEmbeddings, config: MMoEConfig, scenarios: list[str],
                 tasks: list[str]) -> None:
        super().__init__(embeddings, config, scenarios, tasks)
        self.experts = build_towers(config.experts, self.input_dim, config.hidden,
                                    config.dropout)
        self.gates = build_linears(len(tasks), self.input_dim, config.experts)
        self.heads = _TaskHeads(self.experts[0].output_dim, len(tasks), config)

    def head(self, flat: Tensor, scenarios: Tensor) -> Tensor:
        experts = [expert(flat) for expert in self.experts]
        return self.heads([_mixture(experts, gate, flat) for gate in self.gates])


@register_model
class PLE(MultiTaskModel):
    """Each task mixes its own experts and the shared ones through its gate."""

    name = "ple"
    config_class = PLEConfig

    def __init__(self, embeddings: FieldEmbeddings, config: PLEConfig, scenarios: list[str],
                 tasks: list[str]) -> None:
        super().__init__(embeddings, config, scenarios, tasks)
        self.shared = build_towers(config.shared_experts, self.input_dim, config.hidden,
                                   config.dropout)
        self.specific = nn.ModuleList(
            build_towers(config.task_experts, self.input_dim, config.hidden, config.dropout)
            for _ in tasks)
        mixed = config.shared_experts + config.task_experts
        self.gates = build_linears(len(tasks), self.input_dim, mixed)
        self.heads = _TaskHeads(self.shared[0].output_dim, len(tasks), config)

    def head(self, flat: Tensor, scenarios: Tensor) -> Tensor:
        shared = [expert(flat) for expert in self.shared]
        mixed = [_mixture([expert(flat) for expert in own] + shared, gate, flat)
                 for own, gate in zip(self.specific, self.gates, strict=True)]
        return self.heads(mixed)
