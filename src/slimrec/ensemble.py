"""Test-time ensembles under ONE memory budget: K compressed models that together fit it.

``train_ensemble(config, k, members)`` splits the run's embedding budget into K equal shares
(``budget / K`` bytes each, as an absolute size), builds and trains each member with the one
``fit`` (member ``i`` of K uses seed ``seed * K + i``, so runs with different seeds share no
member; ``members`` names one architecture, repeated, or
K of them), checks that the members' embedding bytes sum to at most the budget, and writes ONE
run (results.json with an ``ensemble`` block, config.yaml, one artifact) through ``finish``.

``EnsembleModel`` serves like a single model of its members' task:

- CTR: the mean of the members' click probabilities (returned as its logit, so every CTR
  evaluator and server that applies a sigmoid sees the mean probability);
- retrieval: each member's scores standardised per user (z-scores over all items), then averaged,
  so members with different score scales weigh the same;

A one-member ensemble is its member: same scores, bit for bit.
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import Field
from torch import Tensor, nn

from slimrec.budget import format_bytes
from slimrec.config import FrozenConfig, deep_merge, parse_config
from slimrec.embeddings.base import EmbeddingTable
from slimrec.errors import BudgetError, ConfigError
from slimrec.models.base import RecModel, Scorer, model_class
from slimrec.tasks import RunConfig, get_task
from slimrec.train.loop import TrainResult, fit

ENSEMBLE = "ensemble"
_PROBABILITY_EPS = 1e-7


class EnsembleConfig(FrozenConfig):
    k: int = Field(1, ge=1)
    members: list[str] = Field(default_factory=list)


class EnsembleModel(RecModel):
    """K trained models of one task, served as one (see the module docstring)."""

    name = ENSEMBLE
    config_class = EnsembleConfig

    def __init__(self, members: Sequence[RecModel]) -> None:
        super().__init__()
        tasks = {member.task for member in members}
        if len(tasks) != 1:
            raise ConfigError(f"ensemble members must share one task; got {sorted(tasks)}.")
        self.members = nn.ModuleList(members)
        self.task = tasks.pop()  # the members' task, not a class-wide one
        self.config = EnsembleConfig(k=len(members), members=[m.name for m in members])

    # ------------------------------------------------------------------ CTR
    def forward(self, batch: Any) -> Tensor:
        if len(self.members) == 1:
            return self.members[0](batch)
        probabilities = torch.stack([torch.sigmoid(m(batch)) for m in self.members]).mean(0)
        return torch.logit(probabilities, eps=_PROBABILITY_EPS)

    # ------------------------------------------------------------------ retrieval
    def score(self, users: Tensor, items: Tensor) -> Tensor:
        return torch.stack([m.score(users, items) for m in self.members]).mean(0)

    def scorer(self, stored: bool = False) -> Scorer:
        scorers = [member.scorer(stored) for member in self.members]
        if len(scorers) == 1:
            return scorers[0]

        def fused(users: Tensor, out: Tensor | None = None) -> Tensor:
            # In place: one (B, num_items) buffer per member at most, one pass for std and mean.
            total = out
            for index, score in enumerate(scorers):
                scores = score(users, None)
                std, mean = torch.std_mean(scores, dim=1, keepdim=True)
                scores.sub_(mean).div_(std.clamp_min_(1e-12))
                if total is None:
                    total = scores
                elif index == 0:
                    total.copy_(scores)
                else:
                    total.add_(scores)
            return total.div_(len(scorers))

        return fused

    # ------------------------------------------------------------------ memory and reports
    def full_embedding_bytes(self) -> int:
        """The fp32 bytes of ONE member's full tables: a budget is a share of one model's
        tables, which the K members split."""
        return max(member.full_embedding_bytes() for member in self.members)

    def table_report(self) -> list[dict[str, Any]]:
        return [{"member": index, **row} for index, member in enumerate(self.members)
                for row in member.table_report()]

    def for_inference(self) -> EnsembleModel:
        served = [member.for_inference() for member in self.members]
        if all(s is m for s, m in zip(served, self.members, strict=True)):
            return self
        return EnsembleModel(served)

    # ------------------------------------------------------------------ artifact
    def artifact_info(self) -> dict[str, Any]:
        return {"members": [{"model": m.name, "config": m.config.model_dump(),
                             "info": m.artifact_info()} for m in self.members]}

    @classmethod
    def from_artifact(cls, tables: dict[str, EmbeddingTable], dense: dict[str, Tensor],
                      config: FrozenConfig, info: Mapping[str, Any]) -> EnsembleModel:
        members = []
        for index, entry in enumerate(info["members"]):
            prefix = f"members.{index}."
            member_class = model_class(entry["model"])
            members.append(member_class.from_artifact(
                {name[len(prefix):]: t for name, t in tables.items() if name.startswith(prefix)},
                {key[len(prefix):]: v for key, v in dense.items() if key.startswith(prefix)},
                member_class.parse_params(entry["config"]), entry["info"]))
        return cls(members)


# ---------------------------------------------------------------------- training
def member_names(config: RunConfig, k: int, members: Sequence[str] | None) -> list[str]:
    """``members`` as K names: one name is repeated (K seeds), else exactly K names."""
    if k < 1:
        raise ConfigError(f"--k must be an int >= 1; got {k}.")
    names = list(members) if members else [config.model]
    if len(names) == 1:
        return names * k
    if len(names) != k:
        raise ConfigError(f"--members names {len(names)} models for k={k}; give one (trained "
                          f"with k seeds) or exactly {k}.")
    return names


def member_config(config: RunConfig, name: str, index: int, k: int, budget: str | None,
                  out: Path) -> RunConfig:
    """Member ``index`` of ``k``: seed ``seed * k + index``, so the members of two ensemble
    runs with different seeds never repeat one another (a one-member ensemble keeps the seed).
    The data stay those of the run's own seed: every member trains on one split."""
    values = deep_merge(config.model_dump(mode="json"), {
        "model": name, "seed": config.seed * k + index, "budget": budget, "out": str(out)})
    if name != config.model:  # another architecture: its own default settings
        values["model_params"] = {}
    return parse_config(type(config), values, where=f"ensemble member {index}")


def _smallest_member_bytes(config: RunConfig, data: Any, upper: int) -> int | None:
    """The fewest embedding-budget bytes a member of ``config`` can be built with (binary
    search up to ``upper``), or None when even ``upper`` does not fit."""
    task = get_task(config.task)

    def fits(size: int) -> bool:
        try:
            task.build(member_config(config, config.model, 0, 1, f"{size}B", Path(config.out)),
                       data)
        except BudgetError:
            return False
        return True

    if not fits(upper):
        return None
    low, high = 1, upper
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if fits(middle) else (middle + 1, high)
    return low


def member_budget(config: RunConfig, data: Any, k: int) -> tuple[int, int, str | None]:
    """``(total budget bytes, bytes per member, the members' budget setting)``."""
    if config.budget is None:
        raise ConfigError("an ensemble needs a budget to split (e.g. --budget 10%): K members "
                          "share one memory budget.")
    full = parse_config(type(config), {**config.model_dump(mode="json"), "embedding": "full",
                                       "embedding_params": {}, "budget": None}, where="ensemble")
    total = config.budget.resolve(get_task(config.task).build(full, data).full_embedding_bytes())
    if k == 1:
        return total, total, str(config.budget)
    return total, total // k, f"{total // k}B"


def _too_small(config: RunConfig, data: Any, k: int, total: int, share: int,
               error: BudgetError | None = None) -> BudgetError:
    smallest = _smallest_member_bytes(config, data, total)
    if smallest is None:
        hint = "even one member does not fit the whole budget"
    else:
        hint = (f"the smallest {config.model} member with {config.embedding} tables needs "
                f"{smallest:,} bytes ({format_bytes(smallest)}), so at most "
                f"{max(1, total // smallest)} members fit")
    why = f" ({error})" if error is not None else ""
    return BudgetError(f"k={k} members get {share:,} bytes ({format_bytes(share)}) each of the "
                       f"budget {config.budget} ({total:,} bytes); {hint}.{why}")


def build_members(config: RunConfig, data: Any, k: int, members: Sequence[str] | None
                  ) -> tuple[list[RunConfig], list[RecModel], int]:
    """The K member configs and (untrained) models, and the total budget bytes."""
    names = member_names(config, k, members)
    total, share, budget = member_budget(config, data, k)
    if share < 1:
        raise _too_small(config, data, k, total, share)
    task, configs, models = get_task(config.task), [], []
    for index, name in enumerate(names):
        member = member_config(config, name, index, k, budget,
                               Path(config.out) / "members" / str(index))
        try:
            models.append(task.build(member, data))
        except BudgetError as error:
            raise _too_small(config, data, k, total, share, error) from None
        configs.append(member)
    spent = sum(model.embedding_bytes() for model in models)
    if spent > total:
        raise BudgetError(f"the {k} members' tables hold {spent:,} bytes, over the budget of "
                          f"{total:,} bytes ({config.budget}).")
    return configs, models, total


def train_ensemble(config: RunConfig, k: int, members: Sequence[str] | None = None, *,
                   data: Any = None, command: str | None = None) -> dict[str, Any]:
    """Train K members under ``config.budget`` together; write one run; return its document."""
    from slimrec.spine import apply_threads, finish

    apply_threads(config)
    start = time.perf_counter()
    task = get_task(config.task)
    data = task.load(config) if data is None else task.adopt(config, data)
    configs, models, total = build_members(config, data, k, members)
    preprocess_seconds = time.perf_counter() - start
    results = [fit(model, data, member) for model, member in zip(models, configs, strict=True)]
    ensemble = EnsembleModel(models).eval()
    combined = TrainResult(epochs_run=sum(r.epochs_run for r in results),
                           epoch_seconds=[s for r in results for s in r.epoch_seconds],
                           eval_seconds=sum(r.eval_seconds for r in results))
    record = {"k": k, "budget_bytes": total, "member_budget_bytes": total // k if k > 1
              else total,
              "members": [{"model": c.model, "seed": c.seed,
                           "embedding_bytes": m.embedding_bytes(),
                           "memory_bytes": m.memory_bytes(), "epochs": r.epochs_run,
                           "best_epoch": r.best_epoch,
                           "val": task.evaluate(m, data, "val", c).metrics
                           if task.has_split(data, "val") else None}
                          for c, m, r in zip(configs, models, results, strict=True)]}
    return finish(config, ensemble, data, combined, preprocess_seconds,
                  command or " ".join(sys.argv),
                  extra={"model": ENSEMBLE, "ensemble": record,
                         "model_params": copy.deepcopy(ensemble.config.model_dump())})
