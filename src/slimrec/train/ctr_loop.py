"""The one training loop for CTR models (binary cross-entropy), readable top to bottom.

Per-method behaviour goes through table hooks (``regularizer()``, ``after_step()``); the loop
never asks which compression method a table uses. Early stopping watches validation AUC; an
epoch that does not improve it also divides the learning rate (reduce on plateau), which is
how the published Frappe/Criteo baselines (FuxiCTR) squeeze out their last AUC points.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from tqdm.auto import tqdm

from slimrec.budget import format_bytes
from slimrec.config import FrozenConfig
from slimrec.data.fields import FieldData
from slimrec.errors import DataError
from slimrec.eval.ctr import auc, logloss
from slimrec.models.ctr.base import CTRModel, FieldTensors
from slimrec.train.loop import TrainResult, _checkpoint, seed_everything


class CTRTrainConfig(FrozenConfig):
    """Optimisation settings of one CTR run."""

    epochs: int = Field(30, ge=1)
    batch_size: int = Field(4096, ge=1)
    lr: float = Field(3e-3, gt=0)
    l2: float = Field(0.01, ge=0, description="weight of the L2 penalty on batch embeddings")
    patience: int = Field(2, ge=1, description="epochs without a better val AUC before stopping")
    lr_decay: float = Field(0.1, gt=0, le=1, description="lr factor after an epoch without a "
                            "better val AUC (reduce on plateau; 1 keeps lr fixed)")
    min_delta: float = Field(1e-4, ge=0, description="val AUC gain that counts as better")
    eval_before: bool = Field(False, description="also score the starting model on validation "
                              "(epoch 0), so fine-tuning never returns a worse model than it "
                              "was given")
    eval_batch_size: int = Field(65536, ge=1)
    seed: int = 0
    progress: bool = True


def predict(model: CTRModel, tensors: FieldTensors, rows: np.ndarray,
            batch_size: int = 65536) -> np.ndarray:
    """Click probabilities of ``rows`` (float64 ``[len(rows)]``), in eval mode, no gradients."""
    was_training = model.training
    model.eval()
    outputs = []
    with torch.no_grad():
        for begin in range(0, len(rows), batch_size):
            batch = tensors.batch(torch.from_numpy(rows[begin: begin + batch_size]))
            outputs.append(torch.sigmoid(model(batch)).double().numpy())
    model.train(was_training)
    return np.concatenate(outputs) if outputs else np.zeros(0)


def evaluate_ctr(model: CTRModel, data: FieldData, split: str,
                 tensors: FieldTensors | None = None,
                 batch_size: int = 65536) -> tuple[dict[str, float], float]:
    """``({"auc", "logloss"}, seconds)`` of ``model`` on ``split``."""
    start = time.perf_counter()
    tensors = tensors or FieldTensors(data)
    rows = data.rows(split)
    if rows.size == 0:
        raise DataError(f"{data.name}: the {split} split is empty; nothing to evaluate.")
    probabilities = predict(model, tensors, rows, batch_size)
    labels = data.labels[rows]
    metrics = {"auc": auc(labels, probabilities), "logloss": logloss(labels, probabilities)}
    return metrics, time.perf_counter() - start


def train_ctr(model: CTRModel, data: FieldData, config: CTRTrainConfig,
              checkpoint: str | Path | None = None) -> TrainResult:
    """Train with BCE on the train split; early-stop on validation AUC if there is a val split.

    With ``checkpoint``, the state after each epoch is saved there and an existing checkpoint
    is resumed from (same seed and data give the same result as an uninterrupted run). The
    best model by validation AUC is restored at the end.
    """
    rng = seed_everything(config.seed)
    tensors = FieldTensors(data)
    train_rows, val_rows = data.rows("train"), data.rows("val")
    if train_rows.size == 0:
        raise DataError(f"{data.name}: the train split is empty.")
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    result, best_state = TrainResult(), copy.deepcopy(model.state_dict())
    checkpoint = Path(checkpoint) if checkpoint else None
    if checkpoint is not None and checkpoint.is_file():
        saved = torch.load(checkpoint, weights_only=False)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        rng.bit_generator.state = saved["rng"]
        torch.set_rng_state(saved["torch_rng"])
        result, best_state = TrainResult(**saved["result"]), saved["best_state"]

    if config.eval_before and val_rows.size and result.epochs_run == 0:
        metrics, seconds = evaluate_ctr(model, data, "val", tensors, config.eval_batch_size)
        result.eval_seconds += seconds
        result.best_score, result.best_epoch = metrics["auc"], 0
        result.history.append({"epoch": 0, **{f"val_{key}": value
                                              for key, value in metrics.items()}})
    embedding_bytes = model.embedding_bytes()
    ratio = model.embeddings.full_fp32_bytes() / max(1, embedding_bytes)
    # Validation runs every epoch, so the epochs since the best one are the stale evaluations.
    stale_evals = result.epochs_run - result.best_epoch
    steps_per_epoch = math.ceil(train_rows.size / config.batch_size)
    step = result.epochs_run * steps_per_epoch
    for epoch in range(result.epochs_run + 1, config.epochs + 1):
        model.train()
        start = time.perf_counter()
        order = torch.from_numpy(train_rows[rng.permutation(train_rows.size)])
        total_loss, batches = 0.0, range(0, train_rows.size, config.batch_size)
        bar = tqdm(batches, desc=f"epoch {epoch}/{config.epochs}", leave=False,
                   disable=not config.progress, unit="batch")
        for begin in bar:
            batch = tensors.batch(order[begin: begin + config.batch_size])
            embedded = model.embeddings(batch)
            loss = F.binary_cross_entropy_with_logits(model.head(embedded), batch.labels)
            if config.l2:
                loss = loss + config.l2 * embedded.square().sum() / batch.size
            extra = model.embeddings.regularizer()
            if extra is not None:
                loss = loss + extra
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"loss became {loss.item()} at epoch {epoch}; lower lr (now {config.lr})."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            model.embeddings.after_step(step)
            total_loss += loss.item() * batch.size
            rate = (begin + batch.size) / max(time.perf_counter() - start, 1e-9)
            bar.set_postfix(loss=f"{total_loss / (begin + batch.size):.4f}", rps=f"{rate:,.0f}",
                            bytes=format_bytes(embedding_bytes), ratio=f"{ratio:.1f}x")
        result.epoch_seconds.append(time.perf_counter() - start)
        result.epochs_run = epoch
        record: dict[str, float] = {"epoch": epoch, "loss": total_loss / train_rows.size,
                                    "seconds": result.epoch_seconds[-1]}
        stop = False
        if val_rows.size:
            metrics, seconds = evaluate_ctr(model, data, "val", tensors, config.eval_batch_size)
            result.eval_seconds += seconds
            record.update({f"val_{key}": value for key, value in metrics.items()})
            # Once lr has decayed, AUC creeps up by noise-sized steps; those are not progress.
            if metrics["auc"] > result.best_score + config.min_delta:
                result.best_score, result.best_epoch = metrics["auc"], epoch
                best_state, stale_evals = copy.deepcopy(model.state_dict()), 0
            else:
                stale_evals += 1
                stop = stale_evals >= config.patience
                for group in optimizer.param_groups:
                    group["lr"] *= config.lr_decay
        result.history.append(record)
        if config.progress:
            tqdm.write("  ".join(f"{key}={value:.4g}" if isinstance(value, float)
                                 else f"{key}={value}" for key, value in record.items()))
        if checkpoint is not None:
            _checkpoint(checkpoint, model, optimizer, rng, result, best_state)
        if stop:
            break
    if val_rows.size:
        model.load_state_dict(best_state)
    else:
        result.best_epoch = result.epochs_run
    model.eval()
    return result
