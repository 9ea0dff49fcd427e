"""The one training loop, for every task, readable top to bottom.

``fit(model, data, train)`` asks the model's task for batches and the loss; everything else is
the same for every task: the optimisers (sparse-aware), the lr schedule, early stopping on the
validation metric, checkpoint and resume. Per-method behaviour goes through table hooks
(``regularizer()``, ``after_step()``); the loop never asks which method a table uses. How the
work spreads over processes is a ``Strategy`` (``train/distributed.py``): ``LOCAL`` by default,
``DataParallel`` for one rank of a torchrun job.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from slimrec.budget import format_bytes
from slimrec.io import atomic_write
from slimrec.models.base import RecModel
from slimrec.tasks import RunConfig, Task, get_task
from slimrec.train.config import TrainConfig
from slimrec.train.distributed import LOCAL, Strategy
from slimrec.train.lazy_adam import LazyAdam


@dataclass
class TrainResult:
    best_epoch: int = 0
    best_score: float | None = None
    epochs_run: int = 0
    stale_evals: int = 0  # validation checks since the best one
    plateau_decays: int = 0  # lr decays of the plateau schedule so far
    epoch_seconds: list[float] = field(default_factory=list)
    eval_seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def train_seconds(self) -> float:
        return float(sum(self.epoch_seconds))


class Optimizers:
    """Adam for dense parameters plus a lazy (sparse) Adam for row-sparse table parameters."""

    def __init__(self, model: RecModel, lr: float) -> None:
        sparse = [p for table in model.tables().values() for p in table.sparse_parameters()]
        sparse_ids = {id(p) for p in sparse}
        dense = [p for p in model.parameters() if id(p) not in sparse_ids and p.requires_grad]
        self.optimizers: list[torch.optim.Optimizer] = []
        if dense:
            # The fused kernel updates every tensor in one pass: on Gowalla's two fp32 tables
            # (70,839 x 64) a step costs ~7 ms instead of ~76 ms with the per-op loop, which
            # dominated a dense-table BPR step. Same update rule, other float rounding.
            self.optimizers.append(torch.optim.Adam(dense, lr=lr, fused=True))
        if sparse:
            self.optimizers.append(LazyAdam(sparse, lr=lr))

    def set_lr(self, lr: float) -> None:
        for optimizer in self.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = lr

    def zero_grad(self) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)

    def step(self) -> None:
        for optimizer in self.optimizers:
            optimizer.step()

    def state_dict(self) -> list[dict]:
        return [optimizer.state_dict() for optimizer in self.optimizers]

    def load_state_dict(self, states: list[dict]) -> None:
        for optimizer, state in zip(self.optimizers, states, strict=True):
            optimizer.load_state_dict(state)


def seed_everything(seed: int) -> np.random.Generator:
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def epoch_lr(train: TrainConfig, epoch: int, result: TrainResult) -> float:
    """The lr of ``epoch``: a pure function of the schedule and the state, so a resumed run
    follows the same schedule."""
    if train.lr_schedule == "milestones":
        return train.lr * train.lr_gamma ** sum(m < epoch for m in train.lr_milestones)
    lr = train.lr
    for _ in range(result.plateau_decays):
        lr *= train.lr_gamma
    return lr


def _checkpoint(path: Path, model: RecModel, optimizer: Optimizers,
                rng: np.random.Generator, result: TrainResult, best_state: dict) -> None:
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
             "result": result.__dict__, "best_state": best_state}
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def _validate(task: Task, model: RecModel, data: Any, config: RunConfig,
              result: TrainResult) -> dict[str, float]:
    """Validation metrics of the model as it stands (their seconds go to ``result``)."""
    model.eval()
    evaluation = task.evaluate(model, data, "val", config, metric=config.val_metric)
    result.eval_seconds += evaluation.seconds
    return evaluation.metrics


def _record_validation(task: Task, config: RunConfig, metrics: dict[str, float], epoch: int,
                       result: TrainResult, model: RecModel) -> dict | None:
    """Update the best score; return the new best state, or None when it did not improve."""
    score, metric = metrics[config.val_metric], config.val_metric
    if result.best_score is None or task.is_better(metric, score, result.best_score,
                                                   config.train.min_delta):
        result.best_score, result.best_epoch, result.stale_evals = score, epoch, 0
        return copy.deepcopy(model.state_dict())
    result.stale_evals += 1
    if config.train.lr_schedule == "plateau":
        result.plateau_decays += 1
    return None


def fit(model: RecModel, data: Any, config: RunConfig,
        checkpoint: str | Path | None = None, strategy: Strategy = LOCAL) -> TrainResult:
    """Train ``model`` on ``data`` with ``config.train``; early-stop on the validation metric.

    When ``checkpoint`` is given, the state after each epoch is saved there, and an existing
    checkpoint is resumed from (same seed and data give the same result as an uninterrupted
    run). The best model (by validation metric) is restored at the end. ``strategy`` says which
    rows of each batch this process trains on and how ranks agree (``train/distributed.py``).
    """
    if model.pending_search_epochs():  # search the structure first, then train it
        from slimrec.train.search import search_then_fit

        return search_then_fit(model, data, config, checkpoint, strategy)
    task, train = get_task(model.task), config.train
    rng = seed_everything(config.seed)
    batches = task.batches(data)
    has_val = task.has_split(data, "val")
    optimizer = Optimizers(model, train.lr)
    result, best_state = TrainResult(), copy.deepcopy(model.state_dict())
    checkpoint = Path(checkpoint) if checkpoint else None
    if checkpoint is not None and checkpoint.is_file():
        saved = torch.load(checkpoint, weights_only=False)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        rng.bit_generator.state = saved["rng"]
        torch.set_rng_state(saved["torch_rng"])
        result, best_state = TrainResult(**saved["result"]), saved["best_state"]
    strategy.replicate(model)

    if train.eval_before and has_val and result.epochs_run == 0:
        metrics = strategy.from_main(
            lambda: _validate(task, model, data, config, result))
        result.best_score, result.best_epoch = metrics[config.val_metric], 0
        result.history.append({"epoch": 0, **{f"val_{k}": v for k, v in metrics.items()}})
    bytes_text = format_bytes(model.embedding_bytes())
    ratio = model.full_embedding_bytes() / max(1, model.embedding_bytes())
    step = result.epochs_run * math.ceil(batches.size / train.batch_size)
    for epoch in range(result.epochs_run + 1, train.epochs + 1):
        model.train()
        optimizer.set_lr(epoch_lr(train, epoch, result))
        start = time.perf_counter()
        total_loss, done = 0.0, 0
        bar = tqdm(batches.epoch(train.batch_size, rng), desc=f"epoch {epoch}/{train.epochs}",
                   total=math.ceil(batches.size / train.batch_size), leave=False,
                   disable=not (config.progress and strategy.is_main), unit="batch")
        for batch in bar:
            shard, weight = strategy.shard(batch)
            loss = task.loss(model, shard, train.l2)
            extra = model.regularizer()
            if extra is not None:
                loss = loss + extra
            loss = loss * weight  # this rank's share of the global batch
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"loss became {loss.item()} at epoch {epoch}; lower lr (now {train.lr}).")
            optimizer.zero_grad()
            loss.backward()
            strategy.reduce_gradients(model)
            optimizer.step()
            step += 1
            model.after_step(step)
            total_loss += loss.item() * batch.size / strategy.world_size
            done += batch.size
            rate = done / max(time.perf_counter() - start, 1e-9)
            bar.set_postfix(loss=f"{total_loss / done:.4f}", rows_per_s=f"{rate:,.0f}",
                            bytes=bytes_text, ratio=f"{ratio:.1f}x")
        result.epoch_seconds.append(time.perf_counter() - start)
        result.epochs_run = epoch
        record = {"epoch": epoch, "loss": strategy.total(total_loss) / batches.size,
                  "seconds": result.epoch_seconds[-1]}
        if has_val and (epoch % train.eval_every == 0 or epoch == train.epochs):
            metrics = strategy.from_main(
                lambda: _validate(task, model, data, config, result))
            record.update({f"val_{key}": value for key, value in metrics.items()})
            improved = _record_validation(task, config, metrics, epoch, result, model)
            best_state = improved if improved is not None else best_state
        result.history.append(record)
        if config.progress and strategy.is_main:
            tqdm.write("  ".join(f"{key}={value:.4g}" if isinstance(value, float)
                                 else f"{key}={value}" for key, value in record.items()))
        if checkpoint is not None and strategy.is_main:
            _checkpoint(checkpoint, model, optimizer, rng, result, best_state)
        if result.stale_evals >= train.patience:
            break
    if has_val:
        model.load_state_dict(best_state)
    else:
        result.best_epoch = result.epochs_run
    model.eval()
    return result
