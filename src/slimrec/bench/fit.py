"""``slimrec fit --budget 5MB``: the best model whose tables fit a memory budget.

1. Quick search: every candidate (method x embedding dim x ensemble size K) that meets the
   budget is trained for ``search_epochs`` on the train split and scored on the validation split
   (the run's validation metric: recall@20 for retrieval, AUC for CTR); the test split is never
   looked at. A candidate with K > 1 is a test-time ensemble (``slimrec.ensemble``): K members
   of the method with budget/K bytes each, which together meet the budget.
2. The best candidate on validation is trained fully with the run's settings (early stopping
   on validation, as for ``slimrec train``) and written as a run: results, config and the
   model artifact (one artifact for an ensemble too).

The budget means what it means everywhere: a fraction of the fp32 bytes of all the model's
tables, or a total size, split over the tables by the one allocator. Dense weights (NeuMF's MLP,
the CTR towers) are not part of the budget. Works for every task.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from slimrec.budget import format_bytes
from slimrec.config import deep_merge, parse_config
from slimrec.embeddings import METHODS
from slimrec.ensemble import EnsembleModel, build_members, train_ensemble
from slimrec.errors import BudgetError, ConfigError
from slimrec.io import atomic_write_json
from slimrec.models.base import RecModel
from slimrec.spine import build_model, prepare, run
from slimrec.tasks import RunConfig, get_task
from slimrec.train.loop import fit

FIT_FILE = "fit.json"


@dataclass(frozen=True)
class Candidate:
    """One searched setting and its outcome: ``val`` is None when it does not fit."""

    method: str
    dim: int
    k: int = 1
    embedding_bytes: int | None = None
    val: float | None = None
    seconds: float = 0.0
    reason: str = ""

    @property
    def label(self) -> str:
        members = f", ensemble of {self.k}" if self.k > 1 else ""
        return f"{self.method} (dim {self.dim}{members})"


def with_settings(base: RunConfig, **updates: Any) -> RunConfig:
    """``base`` with ``updates`` (nested ones merged key by key), validated again."""
    return parse_config(type(base), deep_merge(base.model_dump(mode="json"), updates),
                        where="fit")


def _train_candidate(config: RunConfig, k: int, data: Any) -> RecModel:
    """One model of ``config`` (k = 1) or an ensemble of k members sharing its budget,
    trained with ``config``'s settings (``BudgetError`` when it cannot meet the budget)."""
    if k == 1:
        model = build_model(config, data)
        fit(model, data, config)
        return model
    configs, members, _ = build_members(config, data, k, None)
    for member, member_settings in zip(members, configs, strict=True):
        fit(member, data, member_settings)
    return EnsembleModel(members).eval()


def search(base: RunConfig, methods: Sequence[str], dims: Sequence[int], search_epochs: int,
           data: Any, ks: Sequence[int] = (1,)) -> list[Candidate]:
    """Train every (method, dim, k) briefly on the train split; score it on validation."""
    task = get_task(base.task)
    if not task.has_split(data, "val"):
        raise ConfigError("fit needs a validation split to choose on (retrieval: set "
                          "val_fraction > 0).")
    metric = base.val_metric
    candidates = []
    for dim, k, method in itertools.product(dims, ks, methods):
        config = with_settings(base, embedding=method, embedding_params={}, dim=dim,
                               progress=False,
                               train={"epochs": search_epochs, "eval_every": search_epochs})
        start = time.perf_counter()
        try:
            model = _train_candidate(config, k, data)
        except (BudgetError, ConfigError) as error:  # cannot meet it, or cannot target it
            candidates.append(Candidate(method, dim, k, reason=str(error)))
            continue
        val = task.evaluate(model, data, "val", config, metric=metric).metrics[metric]
        candidates.append(Candidate(method, dim, k, model.embedding_bytes(), val,
                                    time.perf_counter() - start))
        if base.progress:
            print(f"  searched {candidates[-1].label}: val {metric} {val:.4f}, "
                  f"{format_bytes(model.embedding_bytes())}", flush=True)
    return candidates


def _best_first(candidates: Sequence[Candidate], task: str, metric: str) -> list[Candidate]:
    """Fitting candidates best first (by validation ``metric``), then those that do not fit."""
    sign = 1.0 if metric in get_task(task).lower_is_better else -1.0
    return sorted(candidates, key=lambda c: (c.val is None, sign * (c.val or 0.0)))


def candidate_table(candidates: Sequence[Candidate], task: str = "retrieval",
                    metric: str = "recall@20") -> str:
    """Markdown table of the search, best first; settings that do not fit at the end."""
    ranked = _best_first(candidates, task, metric)
    lines = [f"| rank | method | dim | models | embedding bytes | val {metric} | search s | note |",
             "|---:|---|---:|---:|---:|---:|---:|---|"]
    for rank, c in enumerate(ranked, 1):
        if c.val is None:
            lines.append(f"| - | {c.method} | {c.dim} | {c.k} | - | - | - | {c.reason} |")
        else:
            lines.append(f"| {rank} | {c.method} | {c.dim} | {c.k} | "
                         f"{format_bytes(c.embedding_bytes)} | {c.val:.4f} | {c.seconds:.1f} | |")
    return "\n".join(lines)


def fit_under_budget(base: RunConfig, methods: Sequence[str] | None = None,
                     dims: Sequence[int] | None = None, search_epochs: int = 5,
                     command: str | None = None, data: Any = None,
                     ensemble_sizes: Sequence[int] = (1,)) -> dict[str, Any]:
    """Search, choose, train fully; return ``{"choice", "candidates", "table", "document"}``.

    ``methods`` defaults to every registered method; ``dims`` to ``[base.dim]``; ``data`` to
    the dataset of ``base`` (with its validation split); ``ensemble_sizes`` to single models
    only (with e.g. ``(1, 2, 4)``, ensembles of 2 and 4 models sharing the budget compete too).
    """
    if base.budget is None:
        raise ConfigError("fit needs a budget, e.g. --budget 5MB or --budget 5%.")
    if search_epochs < 1:
        raise ConfigError(f"search_epochs must be an int >= 1; got {search_epochs}.")
    methods = list(methods) if methods else sorted(METHODS)
    unknown = [method for method in methods if method not in METHODS]
    if unknown:
        raise ConfigError(f"unknown method(s) {', '.join(unknown)}; known: "
                          f"{', '.join(sorted(METHODS))}.")
    dims = list(dims) if dims else [base.dim]
    if min(dims) < 1:
        raise ConfigError(f"dims must be ints >= 1; got {dims}.")
    ensemble_sizes = sorted(set(ensemble_sizes))
    if not ensemble_sizes or ensemble_sizes[0] < 1:
        raise ConfigError(f"ensemble sizes must be ints >= 1; got {list(ensemble_sizes)}.")
    data = data if data is not None else prepare(base)
    metric = base.val_metric
    candidates = search(base, methods, dims, search_epochs, data, ensemble_sizes)
    ranked = [c for c in _best_first(candidates, base.task, metric) if c.val is not None]
    if not ranked:
        raise BudgetError(f"no candidate fits the budget of {base.budget}:\n"
                          + "\n".join(f"  {c.label}: {c.reason}" for c in candidates))
    best = ranked[0]
    why = (f"chose {best.label}: best validation {metric} ({best.val:.4f}) of "
           f"{len(ranked)} candidates that fit {base.budget} after {search_epochs} epochs")
    if len(ranked) > 1:
        why += f"; next best {ranked[1].label} at {ranked[1].val:.4f}"
    final = with_settings(base, embedding=best.method, embedding_params={}, dim=best.dim)
    command = command or " ".join(sys.argv)
    document = (run(final, command=command, data=data) if best.k == 1
                else train_ensemble(final, best.k, data=data, command=command))
    report = {"budget": str(base.budget), "budget_bytes": document["embedding"]["budget_bytes"],
              "search_epochs": search_epochs, "metric": f"val {metric}",
              "choice": {"method": best.method, "dim": best.dim, "k": best.k, "why": why},
              "candidates": [asdict(c) for c in candidates]}
    atomic_write_json(Path(final.out) / FIT_FILE, report)
    return {**report, "table": candidate_table(candidates, base.task, metric),
            "document": document}
