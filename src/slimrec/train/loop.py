"""The one training loop for retrieval models (BPR), readable top to bottom.

Per-method behaviour goes through table hooks (``regularizer()``, ``after_step()``); the loop
never asks which compression method a table uses.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from tqdm.auto import tqdm

from slimrec.budget import format_bytes
from slimrec.config import FrozenConfig
from slimrec.data.interactions import Interactions
from slimrec.data.sampler import NegativeSampler
from slimrec.errors import ConfigError, DataError
from slimrec.eval.ranking import evaluate_ranking
from slimrec.models.base import RetrievalModel


class TrainConfig(FrozenConfig):
    """Optimisation settings of one run."""

    epochs: int = Field(50, ge=1)
    batch_size: int = Field(4096, ge=1)
    lr: float = Field(1e-3, gt=0)
    lr_milestones: tuple[Annotated[int, Field(ge=1)], ...] = Field(
        (), description="epochs after which lr is multiplied by lr_gamma (step decay)")
    lr_gamma: float = Field(0.1, gt=0, le=1)
    l2: float = Field(1e-4, ge=0, description="weight of the L2 penalty on batch embeddings")
    patience: int = Field(5, ge=1, description="evaluations without improvement before stopping")
    eval_every: int = Field(1, ge=1)
    val_metric: str = "recall@20"
    eval_before: bool = Field(False, description="also score the starting model on validation "
                              "(epoch 0), so fine-tuning never returns a worse model than it "
                              "was given")
    seed: int = 0
    progress: bool = True


@dataclass
class TrainResult:
    best_epoch: int = 0
    best_score: float = -math.inf
    epochs_run: int = 0
    epoch_seconds: list[float] = field(default_factory=list)
    eval_seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def train_seconds(self) -> float:
        return float(sum(self.epoch_seconds))


class Optimizers:
    """Adam for dense parameters plus a lazy (sparse) Adam for row-sparse table parameters."""

    def __init__(self, model: RetrievalModel, lr: float) -> None:
        sparse = [p for table in model.tables().values() for p in table.sparse_parameters()]
        sparse_ids = {id(p) for p in sparse}
        dense = [p for p in model.parameters() if id(p) not in sparse_ids and p.requires_grad]
        self.optimizers: list[torch.optim.Optimizer] = []
        if dense:
            self.optimizers.append(torch.optim.Adam(dense, lr=lr))
        if sparse:
            self.optimizers.append(torch.optim.SparseAdam(sparse, lr=lr))

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


def _parse_metric(name: str) -> tuple[str, int]:
    metric, _, k = name.partition("@")
    if not k.isdigit():
        raise ConfigError(f"val_metric must look like 'recall@20'; got {name!r}.")
    return metric, int(k)


def _checkpoint(path: Path, model: RetrievalModel, optimizer: Optimizers,
                rng: np.random.Generator, result: TrainResult, best_state: dict) -> None:
    from slimrec.io import atomic_write

    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
             "result": result.__dict__, "best_state": best_state}
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def _validate(model: RetrievalModel, data: Interactions, config: TrainConfig,
              result: TrainResult) -> float:
    """The validation metric of the model as it stands (its seconds go to ``result``)."""
    metric, k = _parse_metric(config.val_metric)
    model.eval()
    evaluation = evaluate_ranking(model.scorer(), data, "val", ks=(k,), metrics=(metric,))
    result.eval_seconds += evaluation.seconds
    return evaluation.metrics[config.val_metric]


def train_bpr(model: RetrievalModel, data: Interactions, config: TrainConfig,
              checkpoint: str | Path | None = None) -> TrainResult:
    """Train with BPR and uniform negatives; early-stop on the validation metric if any.

    When ``checkpoint`` is given, the state after each epoch is saved there, and an existing
    checkpoint is resumed from (same seed and data give the same result as an uninterrupted run).
    The best model (by validation metric) is restored at the end.
    """
    _parse_metric(config.val_metric)  # a malformed metric fails before any training
    rng = seed_everything(config.seed)
    train = data.train.tocoo()
    users_all, items_all = train.row.astype(np.int64), train.col.astype(np.int64)
    if users_all.size == 0:
        raise DataError(f"{data.name}: the train split is empty.")
    sampler = NegativeSampler(data.train)
    optimizer = Optimizers(model, config.lr)
    result, best_state = TrainResult(), copy.deepcopy(model.state_dict())
    checkpoint = Path(checkpoint) if checkpoint else None
    if checkpoint is not None and checkpoint.is_file():
        saved = torch.load(checkpoint, weights_only=False)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        rng.bit_generator.state = saved["rng"]
        torch.set_rng_state(saved["torch_rng"])
        result, best_state = TrainResult(**saved["result"]), saved["best_state"]

    if config.eval_before and data.val.nnz and result.epochs_run == 0:
        result.best_score, result.best_epoch = _validate(model, data, config, result), 0
        result.history.append({"epoch": 0, f"val_{config.val_metric}": result.best_score})
    bytes_text = format_bytes(model.embedding_bytes())
    ratio = model.full_embedding_bytes() / max(1, model.embedding_bytes())
    stale_evals, step = 0, result.epochs_run * math.ceil(users_all.size / config.batch_size)
    for epoch in range(result.epochs_run + 1, config.epochs + 1):
        model.train()
        # A pure function of the epoch, so a resumed run follows the same schedule.
        optimizer.set_lr(config.lr * config.lr_gamma ** sum(m < epoch
                                                            for m in config.lr_milestones))
        start = time.perf_counter()
        order = rng.permutation(users_all.size)
        negatives_all = sampler.sample(users_all[order], rng)
        total_loss, batches = 0.0, range(0, users_all.size, config.batch_size)
        bar = tqdm(batches, desc=f"epoch {epoch}/{config.epochs}", leave=False,
                   disable=not config.progress, unit="batch")
        for begin in bar:
            index = order[begin: begin + config.batch_size]
            users = torch.from_numpy(users_all[index])
            positives = torch.from_numpy(items_all[index])
            negatives = torch.from_numpy(negatives_all[begin: begin + config.batch_size])
            positive, negative, l2 = model.bpr_terms(users, positives, negatives)
            loss = F.softplus(negative - positive).mean() + config.l2 * l2 / len(index)
            extra = model.regularizer()
            if extra is not None:
                loss = loss + extra
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"loss became {loss.item()} at epoch {epoch}; lower lr (now {config.lr})."
                )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            model.after_step(step)
            total_loss += loss.item() * len(index)
            rate = (begin + len(index)) / max(time.perf_counter() - start, 1e-9)
            bar.set_postfix(loss=f"{total_loss / (begin + len(index)):.4f}",
                            ips=f"{rate:,.0f}", bytes=bytes_text, ratio=f"{ratio:.1f}x")
        result.epoch_seconds.append(time.perf_counter() - start)
        result.epochs_run = epoch
        record = {"epoch": epoch, "loss": total_loss / users_all.size,
                  "seconds": result.epoch_seconds[-1]}
        stop = False
        if data.val.nnz and (epoch % config.eval_every == 0 or epoch == config.epochs):
            score = _validate(model, data, config, result)
            record[f"val_{config.val_metric}"] = score
            if score > result.best_score:
                result.best_score, result.best_epoch = score, epoch
                best_state, stale_evals = copy.deepcopy(model.state_dict()), 0
            else:
                stale_evals += 1
                stop = stale_evals >= config.patience
        result.history.append(record)
        if config.progress:
            tqdm.write("  ".join(f"{key}={value:.4g}" if isinstance(value, float)
                                 else f"{key}={value}" for key, value in record.items()))
        if checkpoint is not None:
            _checkpoint(checkpoint, model, optimizer, rng, result, best_state)
        if stop:
            break
    if data.val.nnz:
        model.load_state_dict(best_state)
    else:
        result.best_epoch = result.epochs_run
    model.eval()
    return result
