"""Shared parts of the multi-scenario multi-task models: the batch, the base, LoRA layers.

A model reads the rows' field embeddings through the same ``FieldEmbeddings`` as the CTR
models (so every compression method applies to its tables, under the one budget), knows the
scenario of each row, and returns one logit per task: ``forward(batch) -> [B, T]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import Tensor, nn

from slimrec.config import FrozenConfig
from slimrec.embeddings.base import EmbeddingTable
from slimrec.models.base import RecModel
from slimrec.models.ctr.base import FieldEmbeddings, FieldSlot


@dataclass(frozen=True)
class MultiTaskBatch:
    """``ids``/``bags`` as in ``CTRBatch``; ``labels`` float ``[B, T]``; ``scenarios`` long
    ``[B]``."""

    ids: Tensor
    bags: Mapping[str, tuple[Tensor, Tensor]]
    labels: Tensor
    scenarios: Tensor

    @property
    def size(self) -> int:
        return len(self.labels)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class MultiTaskModel(RecModel):
    """Base: ``forward(batch) -> logits [B, T]`` from ``head(flat embeddings, scenarios)``."""

    task: ClassVar[str] = "multitask"

    def __init__(self, embeddings: FieldEmbeddings, config: FrozenConfig,
                 scenarios: Sequence[str], tasks: Sequence[str]) -> None:
        super().__init__()
        self.embeddings, self.config = embeddings, config
        self.scenario_names, self.task_names = tuple(scenarios), tuple(tasks)

    @property
    def input_dim(self) -> int:
        return self.embeddings.num_fields * self.embeddings.embedding_dim

    @classmethod
    def from_params(cls, embeddings: FieldEmbeddings, params: Mapping[str, Any],
                    scenarios: Sequence[str], tasks: Sequence[str]) -> MultiTaskModel:
        return cls(embeddings, cls.parse_params(params), scenarios, tasks)

    def head(self, flat: Tensor, scenarios: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, batch: MultiTaskBatch) -> Tensor:
        return self.head(self.embeddings(batch).flatten(1), batch.scenarios)

    def table_report(self) -> list[dict[str, Any]]:
        return self.embeddings.describe()

    def adapter_parameters(self) -> int:
        """Parameters of LoRA adapters (0 for models without them)."""
        return sum(count_parameters(m) - count_parameters(m.base) for m in self.modules()
                   if isinstance(m, LoRALinear))

    def structure_report(self) -> dict[str, Any]:
        dense = sum(value.numel() for value in self.dense_state().values()
                    if value.is_floating_point())
        adapters = self.adapter_parameters()
        return {"parameters": {"dense": dense, "adapters": adapters,
                               "dense_without_adapters": dense - adapters,
                               "embeddings": sum(p.numel() for table in self.tables().values()
                                                 for p in table.parameters())}}

    def artifact_info(self) -> dict[str, Any]:
        return {"fields": [asdict(slot) for slot in self.embeddings.slots],
                "scenarios": list(self.scenario_names), "tasks": list(self.task_names)}

    @classmethod
    def from_artifact(cls, tables: dict[str, EmbeddingTable], dense: dict[str, Tensor],
                      config: FrozenConfig, info: Mapping[str, Any]) -> MultiTaskModel:
        prefix = "embeddings.tables."
        embeddings = FieldEmbeddings([FieldSlot(**slot) for slot in info["fields"]],
                                     {name[len(prefix):]: table for name, table in tables.items()})
        model = cls(embeddings, config, info["scenarios"], info["tasks"])
        if "search_decision" in info:
            model.apply_search_decision(info["search_decision"])
        model.load_parts(tables, dense)
        return model


class TowerConfig(FrozenConfig):
    """Widths every model here shares: its bottom MLP (or experts) and the task towers."""

    hidden: list[int] = Field(default_factory=lambda: [256, 128])
    tower: list[int] = Field(default_factory=lambda: [64])
    dropout: float = Field(0.1, ge=0, lt=1)


class Tower(nn.Module):
    """``Linear -> ReLU -> Dropout`` per width; ``output_dim`` is the last width."""

    def __init__(self, input_dim: int, hidden: Sequence[int], dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for width in hidden:
            layers += [nn.Linear(input_dim, width), nn.ReLU(), nn.Dropout(dropout)]
            input_dim = width
        self.layers = nn.Sequential(*layers)
        self.output_dim = input_dim

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


def build_towers(count: int, input_dim: int, hidden: Sequence[int],
                 dropout: float) -> nn.ModuleList:
    """``count`` independent ``Tower``s (experts, or one tower per task)."""
    return nn.ModuleList(Tower(input_dim, hidden, dropout) for _ in range(count))


def build_linears(count: int, input_dim: int, output_dim: int) -> nn.ModuleList:
    """``count`` independent ``Linear``s (one gate or one output per task)."""
    return nn.ModuleList(nn.Linear(input_dim, output_dim) for _ in range(count))


class LoRALinear(nn.Module):
    """A shared ``Linear`` plus ``count`` rank-``r`` adapters: ``y = base(x) + B_k A_k x``.

    ``adapter`` is None (the shared unit), an int (one adapter for every row) or a LongTensor
    ``[N]`` (one per row). ``B`` starts at zero, so each adapted unit starts as the shared one.
    """

    def __init__(self, base: nn.Linear, count: int, rank: int) -> None:
        super().__init__()
        self.base, self.rank = base, rank
        self.down = nn.Parameter(torch.randn(count, rank, base.in_features)
                                 / math.sqrt(base.in_features))
        self.up = nn.Parameter(torch.zeros(count, base.out_features, rank))

    def forward(self, x: Tensor, adapter: int | Tensor | None = None) -> Tensor:
        y = self.base(x)
        if adapter is None:
            return y
        if isinstance(adapter, int):
            return y + (x @ self.down[adapter].T) @ self.up[adapter].T
        low = torch.einsum("ni,nri->nr", x, self.down[adapter])
        return y + torch.einsum("nr,nor->no", low, self.up[adapter])


class LoRATower(nn.Module):
    """A ``Tower`` whose layers are ``LoRALinear``: ``forward(x, adapter)``."""

    def __init__(self, input_dim: int, hidden: Sequence[int], dropout: float, count: int,
                 rank: int) -> None:
        super().__init__()
        self.linears = nn.ModuleList()
        for width in hidden:
            self.linears.append(LoRALinear(nn.Linear(input_dim, width), count, rank))
            input_dim = width
        self.dropout = nn.Dropout(dropout)
        self.output_dim = input_dim

    def forward(self, x: Tensor, adapter: int | Tensor | None = None) -> Tensor:
        for linear in self.linears:
            x = self.dropout(torch.relu(linear(x, adapter)))
        return x
