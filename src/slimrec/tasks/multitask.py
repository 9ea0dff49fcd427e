"""Multi-scenario multi-task: rows of categorical fields, a scenario per row, one 0/1 label per
task; a sum of per-task BCE losses; AUC per scenario and task and their mean.

The field tables are built by the one allocator, as for CTR (``build_field_embeddings``), so every
compression method applies and a budget means a share of all the fields' fp32 bytes. Data is the
"multitask" kind of the one registry (``ml-1m``, ``slimrec.data.multitask``) or a table handed to
``slimrec.run(settings, data=frame)`` with its ``scenario_column`` and ``task_columns``.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Iterator
from typing import Any, ClassVar, Literal

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from slimrec.data.multitask import (
    MultiTaskData,
    MultiTaskSchema,
    load_multitask_data,
    multitask_from_frame,
)
from slimrec.data.synthetic import planted_clicks
from slimrec.errors import ConfigError, DataError
from slimrec.eval.ctr import auc, logloss
from slimrec.models.base import RecModel, model_class
from slimrec.models.ctr import FieldTensors, build_field_embeddings
from slimrec.models.multitask import MultiTaskBatch
from slimrec.tasks.base import Batches, Evaluation, RunConfig, Task, register_task
from slimrec.tasks.ctr import CTRTrainConfig

EVAL_BATCH_SIZE = 65536
DEFINITIONS = {
    "auc/<scenario>/<task>": "AUC of the task's scores on the rows of one scenario (Mann-Whitney, "
                             "average ranks for ties)",
    "auc_mean": "mean of auc/<scenario>/<task> over every scenario and task",
    "logloss/<task>": "binary cross-entropy of the task's probabilities over all rows "
                      "(clipped to [1e-7, 1 - 1e-7])",
}


class MultiTaskTrainConfig(CTRTrainConfig):
    """The CTR training defaults; validation on the mean AUC."""

    batch_size: int = Field(4096, ge=1, description="training rows per step")


class MultiTaskConfig(RunConfig):
    task: Literal["multitask"] = "multitask"
    dataset: str = Field("ml-1m", description="registered multi-task dataset")
    model: str = Field("mmoe", description="shared_bottom, mmoe, ple or autoifs")
    dim: int = Field(16, ge=1, description="embedding dimension")
    train: MultiTaskTrainConfig = Field(default_factory=MultiTaskTrainConfig)
    data_seed: int = Field(0, description="seed of the split")
    split: tuple[float, float, float] = Field((0.8, 0.1, 0.1), description="train/val/test "
                                              "shares of the rows")
    keep_full_rows: int = Field(16, ge=0, description="fields of at most this many ids keep a "
                                "full table; the others share the budget")
    scenario_column: str = Field("scenario", description="multitask: column of a given table "
                                 "that names each row's scenario")
    task_columns: list[str] = Field(default_factory=lambda: ["click", "like"],
                                    description="multitask: the 0/1 label columns of a given "
                                    "table, one per task")


class MultiTaskRows(Batches):
    """The train rows, shuffled each epoch, as ``MultiTaskBatch``es."""

    def __init__(self, data: MultiTaskData, tensors: MultiTaskTensors) -> None:
        self.rows = data.rows("train")
        self.size = int(self.rows.size)
        if self.size == 0:
            raise DataError(f"{data.name}: the train split is empty.")
        self.tensors = tensors

    def epoch(self, batch_size: int, rng: np.random.Generator) -> Iterator[MultiTaskBatch]:
        order = torch.from_numpy(self.rows[rng.permutation(self.size)])
        for begin in range(0, self.size, batch_size):
            yield self.tensors.batch(order[begin: begin + batch_size])


class MultiTaskTensors:
    def __init__(self, data: MultiTaskData) -> None:
        self.fields = FieldTensors(data.fields)
        self.labels = torch.from_numpy(data.labels).to(torch.float32)
        self.scenarios = torch.from_numpy(data.scenarios).long()

    def batch(self, rows: Tensor) -> MultiTaskBatch:
        fields = self.fields.batch(rows)
        return MultiTaskBatch(fields.ids, fields.bags, self.labels[rows], self.scenarios[rows])


def predict(model: RecModel, tensors: MultiTaskTensors, rows: np.ndarray) -> np.ndarray:
    """Probabilities ``[len(rows), T]`` (float64), eval mode, no gradients."""
    was_training = model.training
    model.eval()
    outputs = []
    with torch.no_grad():
        for begin in range(0, len(rows), EVAL_BATCH_SIZE):
            batch = tensors.batch(torch.from_numpy(rows[begin: begin + EVAL_BATCH_SIZE]))
            outputs.append(torch.sigmoid(model(batch)).double().numpy())
    model.train(was_training)
    return np.concatenate(outputs)


def scenario_task_metrics(data: MultiTaskData, rows: np.ndarray,
                          probabilities: np.ndarray) -> dict[str, float]:
    """``auc/<scenario>/<task>``, ``auc_mean`` and ``logloss/<task>`` of ``rows``."""
    metrics: dict[str, float] = {}
    scenarios = data.scenarios[rows]
    for t, task in enumerate(data.task_names):
        labels = data.labels[rows, t]
        for s, scenario in enumerate(data.scenario_names):
            mine = scenarios == s
            if len(np.unique(labels[mine])) < 2:
                raise DataError(f"{data.name}: scenario {scenario!r} has "
                                f"{int(mine.sum())} rows and only one {task} label in this "
                                "split; AUC needs both classes.")
            metrics[f"auc/{scenario}/{task}"] = auc(labels[mine], probabilities[mine, t])
        metrics[f"logloss/{task}"] = logloss(labels, probabilities[:, t])
    aucs = [value for key, value in metrics.items() if key.startswith("auc/")]
    metrics["auc_mean"] = float(np.mean(aucs))
    return metrics


def toy_frame(num_rows: int = 3000, seed: int = 0) -> pl.DataFrame:
    """Planted clicks with 3 scenarios (by city) and a second task (like = click on an even
    user)."""
    frame = planted_clicks(num_rows, seed)
    click = frame["label"].cast(pl.Int8)
    even = (frame["user"].cast(pl.Int64) % 2 == 0).cast(pl.Int8)
    return frame.drop("label").with_columns(
        click.alias("click"), (click * even).alias("like"),
        pl.format("s{}", frame["city"].cast(pl.Int64) % 3).alias("scenario"))


@register_task
class MultiTaskTask(Task):
    name: ClassVar[str] = "multitask"
    config_class: ClassVar[type[RunConfig]] = MultiTaskConfig
    default_metric: ClassVar[str] = "auc_mean"
    report_metrics: ClassVar[tuple[str, ...]] = ("auc_mean",)
    definitions: ClassVar[dict[str, str]] = DEFINITIONS

    def check_metric(self, name: str) -> None:
        if name != "auc_mean" and not name.startswith(("auc/", "logloss/")):
            raise ConfigError(f"multitask metric must be auc_mean, auc/<scenario>/<task> or "
                              f"logloss/<task>; got {name!r}.")

    def load(self, config: MultiTaskConfig) -> MultiTaskData:
        return load_multitask_data(config.dataset, config.data_dir, config.data_seed,
                                   config.split)

    def toy_data(self, seed: int = 0) -> MultiTaskData:
        schema = MultiTaskSchema(multi_hot={"tags": "|"}, user_field="user", item_field="item")
        return multitask_from_frame(toy_frame(seed=seed), schema, "toy", "toy_frame",
                                    seed=seed)

    def adopt(self, config: MultiTaskConfig, data: Any) -> MultiTaskData:
        if isinstance(data, MultiTaskData):
            return data
        if not isinstance(data, pl.DataFrame):
            try:
                data = pl.from_pandas(data)
            except (TypeError, ValueError, ImportError) as error:
                raise DataError(f"multitask data must be MultiTaskData or a data frame; got "
                                f"{type(data).__name__} ({error}).") from None
        schema = MultiTaskSchema(config.scenario_column, tuple(config.task_columns))
        return multitask_from_frame(data, schema, "frame", "the given frame", config.split,
                                    config.data_seed)

    def data_key(self, config: MultiTaskConfig) -> Hashable:
        return (config.dataset, config.data_dir, config.data_seed, config.split)

    def build(self, config: MultiTaskConfig, data: MultiTaskData) -> RecModel:
        embeddings = build_field_embeddings(data.fields, config.embedding_spec(), config.dim,
                                            config.seed, config.keep_full_rows)
        torch.manual_seed(config.seed)
        return model_class(config.model, self.name).from_params(
            embeddings, config.model_params, data.scenario_names, data.task_names)

    def _tensors(self, data: MultiTaskData) -> MultiTaskTensors:
        cached = getattr(self, "_cached", None)
        if cached is None or cached[0] is not data:
            self._cached = (data, MultiTaskTensors(data))
        return self._cached[1]

    def batches(self, data: MultiTaskData) -> MultiTaskRows:
        return MultiTaskRows(data, self._tensors(data))

    def loss(self, model: RecModel, batch: MultiTaskBatch, l2: float) -> Tensor:
        embedded = model.embeddings(batch)
        logits = model.head(embedded.flatten(1), batch.scenarios)
        # Sum over tasks of each task's mean BCE: every task weighs the same.
        loss = F.binary_cross_entropy_with_logits(logits, batch.labels, reduction="none"
                                                  ).mean(0).sum()
        if l2:
            loss = loss + l2 * embedded.square().sum() / batch.size
        return loss

    def has_split(self, data: MultiTaskData, split: str) -> bool:
        return bool(data.rows(split).size)

    def evaluate(self, model: RecModel, data: MultiTaskData, split: str, config: RunConfig,
                 metric: str | None = None) -> Evaluation:
        start = time.perf_counter()
        rows = data.rows(split)
        if rows.size == 0:
            raise DataError(f"{data.name}: the {split} split is empty; nothing to evaluate.")
        metrics = scenario_task_metrics(data, rows, predict(model, self._tensors(data), rows))
        return Evaluation(metrics, time.perf_counter() - start)

    def describe(self, data: MultiTaskData) -> dict[str, Any]:
        return data.stats()

    def vocab(self, data: MultiTaskData) -> dict[str, Any]:
        return {"fields": {f.name: f.vocabulary.tolist() for f in data.fields.fields},
                "scenarios": list(data.scenario_names), "tasks": list(data.task_names)}
