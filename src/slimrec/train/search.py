"""Search, prune, rewind, retrain: the training of models that learn their own structure.

A model whose ``pending_search_epochs()`` is positive (CTR models with interaction selection,
AutoIFS) is trained by ``fit`` in two phases, both through the one loop:

1. search: ``pending_search_epochs()`` epochs with the gates live (the model anneals them over
   the search's optimizer steps, told by ``begin_search``), no early stop;
2. the model's ``search_decision()`` (what to keep) is taken, every weight is rewound to its
   initial value, the decision is applied (``apply_search_decision``: the model now computes
   only what is kept) and the pruned model is trained with the run's settings.

The search's epochs, seconds and decision go to ``model.search_summary`` (reported in
results.json by the model's ``structure_report``).
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any

from slimrec.models.base import RecModel
from slimrec.tasks import RunConfig, get_task
from slimrec.train.distributed import LOCAL, Strategy
from slimrec.train.loop import TrainResult, fit


def search_config(config: RunConfig, epochs: int) -> RunConfig:
    """``config`` trained for exactly ``epochs`` (early stopping cannot end a search)."""
    train = config.train.model_copy(update={"epochs": epochs, "patience": epochs})
    return config.model_copy(update={"train": train})


def search_then_fit(model: RecModel, data: Any, config: RunConfig,
                    checkpoint: str | Path | None = None,
                    strategy: Strategy = LOCAL) -> TrainResult:
    """Search the structure, rewind, apply the decision, train (see the module docstring);
    returns the result of the final training (``checkpoint`` covers that phase). Every rank
    of a ``strategy`` searches alike, so all ranks apply the same decision."""
    epochs = model.pending_search_epochs()
    initial = copy.deepcopy(model.state_dict())
    batches = get_task(model.task).batches(data)
    model.begin_search(epochs * math.ceil(batches.size / config.train.batch_size))
    start = time.perf_counter()
    search = fit(model, data, search_config(config, epochs), strategy=strategy)
    decision = model.search_decision()
    model.load_state_dict(initial)  # rewind: the kept structure restarts from its init
    model.apply_search_decision(decision)
    model.search_summary = {"epochs": search.epochs_run,
                            "seconds": time.perf_counter() - start,
                            "best_val": search.best_score, "history": search.history}
    return fit(model, data, config, checkpoint, strategy)
