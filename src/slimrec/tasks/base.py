"""The task protocol, its registry, and the run config every task extends.

A task says what is *different* between retrieval, CTR and (later) sequential recommendation:
its data, its batches and loss, its evaluation and metric definitions, its vocabulary. The
spine (``run.py``, ``train/loop.py``, ``serve/artifact.py``, ``compress/``, ``bench/``, the CLI)
holds what is the same and talks to a ``Task`` only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field, model_validator
from torch import Tensor

from slimrec.budget import BudgetSetting
from slimrec.config import FrozenConfig
from slimrec.embeddings import EmbeddingSpec
from slimrec.embeddings.spec import method_config
from slimrec.errors import ConfigError, did_you_mean
from slimrec.models.base import RecModel, model_class
from slimrec.train.config import TrainConfig

TASKS: dict[str, Task] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: one instance of the task, under ``cls.name``."""
    TASKS[cls.name] = cls()
    return cls


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}.{did_you_mean(name, TASKS)} Known tasks: "
                          f"{', '.join(TASKS)}.")
    return TASKS[name]


def _check_embedding_params(method: str, params: Mapping[str, Any]) -> None:
    """Unknown keys and ill-typed values of a method's fixed parameters fail here, before any
    data loads; parameters the budget solver fills in may be absent."""
    config_cls = method_config(method)
    for key in params:
        if key not in config_cls.model_fields:
            hint = did_you_mean(key, config_cls.model_fields)
            raise ValueError(f"embedding_params: {method} has no parameter {key!r}.{hint} "
                             f"Its parameters: {', '.join(config_cls.model_fields)}")
    from pydantic import ValidationError

    try:
        config_cls.model_validate(dict(params))
    except ValidationError as error:
        wrong = [item for item in error.errors() if item["type"] != "missing"]
        if wrong:
            item = wrong[0]
            key = ".".join(str(part) for part in item["loc"])
            raise ValueError(f"embedding_params.{key} {item['msg'].lower()}; got "
                             f"{item.get('input')!r}") from None


class RunConfig(FrozenConfig):
    """The settings every run has, whatever its task; each task's subclass adds its own.

    Names (task, model, method) and parameters are checked here, when the config is built, so a
    typo fails before any data loads.
    """

    task: str = Field("retrieval", description="retrieval or ctr")
    dataset: str = Field("synthetic", description="registered dataset name (`slimrec datasets "
                         "list`) or the path of your own interaction file")
    data_dir: str | None = Field(None, description="folder holding <dataset>/ (e.g. "
                                 "../shared/data); default: the download cache")
    model: str = Field("mf", description="registered model of the task")
    model_params: dict[str, Any] = Field(default_factory=dict, description="model settings, "
                                         "e.g. num_layers=3 for lightgcn")
    dim: int = Field(64, ge=1, description="embedding dimension")
    embedding: str = Field("full", description="embedding (compression) method")
    embedding_params: dict[str, Any] = Field(default_factory=dict, description="fixed "
                                             "parameters of the embedding method")
    budget: BudgetSetting = Field(None, description="memory budget of all the embedding tables "
                                  "together: a fraction (0.1, 10%) of their fp32 bytes or a "
                                  "size (2MB, 512KiB, 900000B)")
    train: TrainConfig = Field(default_factory=TrainConfig)
    seed: int = Field(0, description="seed of the split, the initialisation and the batches")
    threads: int | None = Field(None, ge=1, description="torch threads (default: torch's)")
    out: str = Field("runs/latest", description="run folder for results.json, config.yaml and "
                     "the model")
    progress: bool = Field(True, description="show progress bars")

    @model_validator(mode="before")
    @classmethod
    def _lift_train_settings(cls, values: Any) -> Any:
        """Configs written before ``train`` was nested (format-1 runs, older YAML files) set
        training keys at the top level; they mean the same ``train`` keys. A key given both
        ways with two values is an error: neither can be silently dropped."""
        if not isinstance(values, Mapping):
            return values
        lifted, flat = cls.nest_train_keys(values)
        nested = lifted.get("train") or {}
        clashes = sorted(key for key in flat if key in nested and nested[key] != flat[key])
        if clashes:
            raise ValueError(f"{', '.join(clashes)} given both at the top level and under "
                             "train, with different values; keep one")
        return lifted

    @classmethod
    def nest_train_keys(cls, values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(values with top-level training keys moved under train, the keys moved)``; a key
        under ``train`` wins over the same key at the top level. Layers of settings (a YAML
        file, then flags) are nested this way before they are merged."""
        train_class = cls.model_fields["train"].annotation
        names = {**{key: key for key in train_class.model_fields}, **cls._legacy_train_keys()}
        flat = {names[key]: value for key, value in values.items() if key in names}
        values = {key: value for key, value in values.items() if key not in names}
        train = values.get("train")
        nested = (train.model_dump(exclude_unset=True) if isinstance(train, FrozenConfig)
                  else dict(train or {}))
        if flat:
            values["train"] = {**flat, **nested}
        return values, flat

    @classmethod
    def _legacy_train_keys(cls) -> dict[str, str]:
        """Old names of ``train`` keys, lifted under their new name."""
        return {}

    @model_validator(mode="after")
    def _check_names(self) -> RunConfig:
        task = get_task(self.task)
        if not isinstance(self, task.config_class):
            raise ValueError(f"a {self.task} run needs {task.config_class.__name__}")
        try:
            model_class(self.model, self.task).parse_params(self.model_params)
            method_config(self.embedding)
            task.check_metric(self.val_metric)
        except ConfigError as error:
            raise ValueError(str(error)) from None
        _check_embedding_params(self.embedding, self.embedding_params)
        return self

    @property
    def val_metric(self) -> str:
        return self.train.val_metric or get_task(self.task).default_metric

    def embedding_spec(self) -> EmbeddingSpec:
        return EmbeddingSpec(self.embedding, self.embedding_params, self.budget)


@dataclass(frozen=True)
class Evaluation:
    """Metrics of one split (``{"recall@20": ...}`` or ``{"auc": ..., "logloss": ...}``)."""

    metrics: dict[str, float]
    seconds: float
    details: dict[str, Any] | None = None


class Batches(ABC):
    """The training rows of a dataset, cut into shuffled batches once per epoch."""

    size: int

    @abstractmethod
    def epoch(self, batch_size: int, rng: Any) -> Iterator[Any]:
        """The batches of one epoch; each has a ``size`` and ``slice(begin, end)`` (rows of a
        data-parallel rank). Draws from ``rng`` (numpy)."""


class Task(ABC):
    """What one kind of recommendation needs beyond the spine. One instance per task."""

    name: ClassVar[str]
    config_class: ClassVar[type[RunConfig]]
    default_metric: ClassVar[str]
    definitions: ClassVar[dict[str, str]]
    report_metrics: ClassVar[tuple[str, ...]]  # the columns of a sweep report
    lower_is_better: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def check_metric(self, name: str) -> None:
        """Raise ``ConfigError`` unless ``name`` is a metric this task computes."""

    @abstractmethod
    def load(self, config: RunConfig) -> Any:
        """The dataset of ``config``, split into train / val / test."""

    def toy_data(self, seed: int = 0) -> Any:
        """A tiny dataset of this task, built in memory in about a second (conformance checks
        of every model, ``slimrec.testing.check_model``, train on it)."""
        raise NotImplementedError(f"task {self.name!r} has no toy data for its conformance "
                                  "checks")

    def adopt(self, config: RunConfig, data: Any) -> Any:
        """Data the caller passed in (``run(settings, data=...)``), as ``load`` would give it:
        tasks that accept in-memory tables (a data frame, arrays) convert them here."""
        return data

    @abstractmethod
    def data_key(self, config: RunConfig) -> Hashable:
        """Configs with equal keys load equal data (a sweep loads it once)."""

    @abstractmethod
    def build(self, config: RunConfig, data: Any) -> RecModel:
        """The model of ``config``, its tables split out of the one budget by
        ``embeddings.allocate`` (raises ``BudgetError`` when the budget cannot be met)."""

    @abstractmethod
    def batches(self, data: Any) -> Batches:
        """The training rows of ``data``."""

    @abstractmethod
    def loss(self, model: RecModel, batch: Any, l2: float) -> Tensor:
        """The batch's training loss (without the tables' regularizers)."""

    @abstractmethod
    def has_split(self, data: Any, split: str) -> bool:
        """Whether ``split`` ("val", "test") holds rows."""

    @abstractmethod
    def evaluate(self, model: RecModel, data: Any, split: str, config: RunConfig,
                 metric: str | None = None) -> Evaluation:
        """Every metric of ``config`` on ``split``; only ``metric`` when given (validation)."""

    @abstractmethod
    def describe(self, data: Any) -> dict[str, Any]:
        """The dataset block of results.json: name, sizes."""

    @abstractmethod
    def vocab(self, data: Any) -> dict[str, Any]:
        """External ids of every table (written to the artifact's vocab.json)."""

    def calibration_batch(self, data: Any, rows: int, seed: int) -> Any:
        """A seeded sample of ``rows`` train rows as one batch the model's ``forward`` takes
        (to calibrate low-rank dense layers)."""
        raise ConfigError(f"{self.name} models have no batch-fed dense layers to make low rank; "
                          "--dense-rank applies to CTR runs.")

    def run_record(self, config: RunConfig) -> dict[str, Any]:
        """Task settings the results document records at its top level (sequential: the
        evaluation protocol, ``"eval": "full"``)."""
        return {}

    def artifact_files(self, data: Any) -> dict[str, dict[str, Tensor]]:
        """Extra tensors an artifact stores beside the model, by file name."""
        return {}

    def is_better(self, metric: str, score: float, best: float, min_delta: float) -> bool:
        if metric in self.lower_is_better:
            return score < best - min_delta
        return score > best + min_delta
