"""``slimrec fit --budget 5MB``: the best model whose tables fit a memory budget.

1. Quick search: every candidate (method x embedding dim) that meets the budget is trained for
   ``search_epochs`` on the train split and scored on the validation split (Recall@20); the
   test split is never looked at.
2. The candidate with the highest validation Recall@20 is trained fully with the run's settings
   (early stopping on validation, as for ``slimrec train``) and written as a run: results,
   config and the model artifact.

An absolute budget (``"5MB"``) is the total for the user and item tables together (see
``bench.sweep.table_budget``); a fraction is of each table's full fp32 size. Dense weights
(NeuMF's MLP) are not part of the budget.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from slimrec.bench.sweep import table_budget
from slimrec.budget import format_bytes, parse_budget
from slimrec.data.interactions import Interactions
from slimrec.embeddings import METHODS
from slimrec.errors import BudgetError, ConfigError
from slimrec.eval.ranking import evaluate_ranking
from slimrec.experiment import RunConfig, build_model, prepare_data, run_retrieval
from slimrec.io import atomic_write_json
from slimrec.train.loop import train_bpr

SEARCH_METRIC = "recall@20"
FIT_FILE = "fit.json"


@dataclass(frozen=True)
class Candidate:
    """One searched setting and its outcome: ``val`` is None when it does not fit."""

    method: str
    dim: int
    embedding_bytes: int | None = None
    val: float | None = None
    seconds: float = 0.0
    reason: str = ""

    @property
    def label(self) -> str:
        return f"{self.method} (dim {self.dim})"


def search(base: RunConfig, methods: Sequence[str], dims: Sequence[int], search_epochs: int,
           data: Interactions) -> list[Candidate]:
    """Train and score every (method, dim) briefly on the train split; score on validation."""
    if not data.val.nnz:
        raise ConfigError("fit needs a validation split to choose on; set val_fraction > 0 "
                          f"(got {base.val_fraction}).")
    candidates = []
    for dim in dims:
        budget = table_budget(base.budget, data.num_users, data.num_items, dim)
        for method in methods:
            config = base.model_copy(update={
                "embedding": method, "dim": dim, "budget": budget, "epochs": search_epochs,
                "eval_every": search_epochs, "progress": False})
            start = time.perf_counter()
            try:
                model = build_model(config, data)
            except (BudgetError, ConfigError) as error:  # cannot meet it, or cannot target it
                candidates.append(Candidate(method, dim, reason=str(error)))
                continue
            train_bpr(model, data, config.train_config())
            val = evaluate_ranking(model.scorer(), data, "val", ks=(20,),
                                   metrics=("recall",)).metrics[SEARCH_METRIC]
            candidates.append(Candidate(method, dim, model.embedding_bytes(), val,
                                        time.perf_counter() - start))
            if base.progress:
                print(f"  searched {candidates[-1].label}: val {SEARCH_METRIC} {val:.4f}, "
                      f"{format_bytes(model.embedding_bytes())}", flush=True)
    return candidates


def candidate_table(candidates: Sequence[Candidate]) -> str:
    """Markdown table of the search, best first; settings that do not fit at the end."""
    ranked = sorted(candidates, key=lambda c: (c.val is None, -(c.val or 0.0)))
    lines = [f"| rank | method | dim | embedding bytes | val {SEARCH_METRIC} | search s | note |",
             "|---:|---|---:|---:|---:|---:|---|"]
    for rank, c in enumerate(ranked, 1):
        if c.val is None:
            lines.append(f"| - | {c.method} | {c.dim} | - | - | - | {c.reason} |")
        else:
            lines.append(f"| {rank} | {c.method} | {c.dim} | {format_bytes(c.embedding_bytes)} "
                         f"| {c.val:.4f} | {c.seconds:.1f} | |")
    return "\n".join(lines)


def fit_under_budget(base: RunConfig, methods: Sequence[str] | None = None,
                     dims: Sequence[int] | None = None, search_epochs: int = 5,
                     command: str | None = None,
                     data: Interactions | None = None) -> dict[str, Any]:
    """Search, choose, train fully; return ``{"choice", "candidates", "table", "document"}``.

    ``methods`` defaults to every registered method; ``dims`` to ``[base.dim]``; ``data`` to
    the dataset of ``base`` (with its validation split).
    """
    if base.budget is None:
        raise ConfigError("fit needs a budget, e.g. --budget 5MB or --budget 0.05.")
    parse_budget(base.budget)
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
    data = data if data is not None else prepare_data(base)
    candidates = search(base, methods, dims, search_epochs, data)
    fitting = [c for c in candidates if c.val is not None]
    if not fitting:
        raise BudgetError(f"no candidate fits the budget of {base.budget}:\n"
                          + "\n".join(f"  {c.label}: {c.reason}" for c in candidates))
    best = max(fitting, key=lambda c: c.val)
    runner_up = max((c for c in fitting if c is not best), key=lambda c: c.val, default=None)
    why = (f"chose {best.label}: highest validation {SEARCH_METRIC} ({best.val:.4f}) of "
           f"{len(fitting)} candidates that fit {base.budget} after {search_epochs} epochs")
    if runner_up is not None:
        why += f"; next best {runner_up.label} at {runner_up.val:.4f}"
    final = base.model_copy(update={
        "embedding": best.method, "dim": best.dim,
        "budget": table_budget(base.budget, data.num_users, data.num_items, best.dim)})
    document = run_retrieval(final, command=command or " ".join(sys.argv), data=data)
    report = {"budget": base.budget, "table_budget": final.budget,
              "search_epochs": search_epochs, "metric": f"val {SEARCH_METRIC}",
              "choice": {"method": best.method, "dim": best.dim, "why": why},
              "candidates": [asdict(c) for c in candidates]}
    atomic_write_json(Path(final.out) / FIT_FILE, report)
    return {**report, "table": candidate_table(candidates), "document": document}
