"""CTR: labelled rows of categorical fields, BCE, AUC/LogLoss.

One table per field (or one table shared by all fields, for methods that ask for it); the
budget is split over the field tables by the one allocator (``models/ctr/tables.py``).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from slimrec.data.ctr_readers import load_field_data
from slimrec.data.fields import FieldData, FieldSchema, encode_batches, frame_batches
from slimrec.data.synthetic import planted_clicks
from slimrec.errors import ConfigError, DataError
from slimrec.eval.ctr import DEFINITIONS, evaluate_ctr
from slimrec.models.base import RecModel, model_class
from slimrec.models.ctr import CTRBatch, CTRModel, FieldTensors, build_field_embeddings
from slimrec.tasks.base import Batches, Evaluation, RunConfig, Task, register_task
from slimrec.train.config import TrainConfig, with_defaults

# Once lr has decayed, AUC creeps up by noise-sized steps (min_delta: those are not progress).
CTRTrainConfig = with_defaults(
    TrainConfig, "CTRTrainConfig",
    "``TrainConfig`` with the defaults of the published CTR baselines (FuxiCTR): validation "
    "AUC every epoch, and lr divided by 10 after an epoch that does not improve it.",
    epochs=30, lr=3e-3, lr_schedule="plateau", l2=0.01, patience=2, min_delta=1e-4,
    eval_every=1)


class CTRConfig(RunConfig):
    """A CTR run: the common settings plus the field encoding and split."""

    task: Literal["ctr"] = "ctr"
    dataset: str = Field("frappe", description="registered CTR dataset (`slimrec datasets "
                         "list`)")
    model: str = Field("deepfm", description="registered CTR model")
    dim: int = Field(16, ge=1, description="embedding dimension")
    train: CTRTrainConfig = Field(default_factory=CTRTrainConfig)
    data_seed: int = Field(0, description="seed of the sampled negatives and of the split")
    min_count: int | None = Field(None, ge=1, description="rarer train values go to the OOV "
                                  "row; default: the dataset's")
    split: tuple[float, float, float] = Field((0.7, 0.2, 0.1), description="train/val/test "
                                              "shares of the rows")
    keep_full_rows: int = Field(16, ge=0, description="fields of at most this many ids keep a "
                                "full table; the others share the budget")

    @classmethod
    def _legacy_train_keys(cls) -> dict[str, str]:
        # Format-1 CTR configs called the plateau factor lr_decay.
        return {"lr_decay": "lr_gamma"}


class RowBatches(Batches):
    """The train rows, shuffled each epoch, as ``CTRBatch``es."""

    def __init__(self, data: FieldData) -> None:
        self.rows = data.rows("train")
        self.size = int(self.rows.size)
        if self.size == 0:
            raise DataError(f"{data.name}: the train split is empty.")
        self.tensors = FieldTensors(data)

    def epoch(self, batch_size: int, rng: np.random.Generator) -> Iterator[CTRBatch]:
        order = torch.from_numpy(self.rows[rng.permutation(self.size)])
        for begin in range(0, self.size, batch_size):
            yield self.tensors.batch(order[begin: begin + batch_size])


@register_task
class CTRTask(Task):
    name: ClassVar[str] = "ctr"
    config_class: ClassVar[type[RunConfig]] = CTRConfig
    default_metric: ClassVar[str] = "auc"
    report_metrics: ClassVar[tuple[str, ...]] = ("auc", "logloss")
    definitions: ClassVar[dict[str, str]] = DEFINITIONS
    lower_is_better: ClassVar[frozenset[str]] = frozenset({"logloss"})

    def check_metric(self, name: str) -> None:
        if name not in DEFINITIONS:
            raise ConfigError(f"ctr metric must be one of {', '.join(DEFINITIONS)}; "
                              f"got {name!r}.")

    def toy_data(self, seed: int = 0) -> FieldData:
        schema = FieldSchema("label", ("user", "item", "city"), multi_hot=(("tags", "|"),),
                             user_field="user", item_field="item")
        return encode_batches("toy", "planted_clicks", frame_batches(planted_clicks(seed=seed)),
                              schema, seed=seed)

    def load(self, config: CTRConfig) -> FieldData:
        return load_field_data(config.dataset, config.data_dir, seed=config.data_seed,
                               min_count=config.min_count, fractions=config.split)

    def data_key(self, config: CTRConfig) -> Hashable:
        return (config.dataset, config.data_dir, config.data_seed, config.min_count,
                config.split)

    def build(self, config: CTRConfig, data: FieldData) -> CTRModel:
        embeddings = build_field_embeddings(data, config.embedding_spec(), config.dim,
                                            config.seed, config.keep_full_rows)
        torch.manual_seed(config.seed)  # the dense layers' initialisation
        return model_class(config.model, self.name).from_params(embeddings,
                                                                config.model_params)

    def batches(self, data: FieldData) -> RowBatches:
        return RowBatches(data)

    def loss(self, model: RecModel, batch: CTRBatch, l2: float) -> Tensor:
        embedded = model.embeddings(batch)
        loss = F.binary_cross_entropy_with_logits(model.head(embedded), batch.labels)
        if l2:
            loss = loss + l2 * embedded.square().sum() / batch.size
        return loss

    def has_split(self, data: FieldData, split: str) -> bool:
        return bool(data.rows(split).size)

    def evaluate(self, model: RecModel, data: FieldData, split: str, config: RunConfig,
                 metric: str | None = None) -> Evaluation:
        # Both metrics come from one pass over the rows, so validation records both.
        metrics, seconds = evaluate_ctr(model, data, split, self._tensors(data))
        return Evaluation(metrics, seconds)

    def _tensors(self, data: FieldData) -> FieldTensors:
        # Evaluation runs every epoch; the tensors of a dataset are built once.
        cached = getattr(self, "_cached", None)
        if cached is None or cached[0] is not data:
            self._cached = (data, FieldTensors(data))
        return self._cached[1]

    def calibration_batch(self, data: FieldData, rows: int, seed: int) -> CTRBatch:
        train_rows = data.rows("train")
        sample = np.random.default_rng(seed).choice(train_rows, size=min(rows, train_rows.size),
                                                    replace=False)
        return self._tensors(data).batch(torch.from_numpy(np.sort(sample)))

    def describe(self, data: FieldData) -> dict[str, Any]:
        stats = data.stats()
        return {key: stats[key] for key in ("name", "rows", "train", "val", "test",
                                            "positive_rate", "fields")}

    def vocab(self, data: FieldData) -> dict[str, Any]:
        return {"fields": {field.name: field.vocabulary.tolist() for field in data.fields}}
