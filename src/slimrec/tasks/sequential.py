"""Sequential recommendation: predict each user's next item from the items before it.

ONE table, ``item`` (``num_items + 1`` rows, row 0 padding), built by the one allocator, so every
compression method applies and a budget means what it means everywhere (here: a share of that
table's fp32 bytes). The model (SASRec) reads the last ``max_len`` items. Leave-one-out split;
full-ranking (default) or ``uni100`` evaluation (``slimrec.eval.sequential``).

Losses (``loss``), over every non-padding position of a training sequence:

- ``full_ce``: cross-entropy over all items (the default: on Beauty, Sports, Toys and ML-1M it
  is at least as good as any sampled loss in published comparisons);
- ``sampled_softmax``: cross-entropy over the target and ``num_negatives`` uniform items shared
  by the batch (a negative equal to the target is dropped);
- ``bce``: SASRec's binary cross-entropy with one uniform negative per position;
- ``gbce``: gSASRec's generalised BCE (Petrov & Macdonald 2023) with ``num_negatives`` shared
  uniform negatives and calibration ``gbce_t``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from slimrec.data.own_data import log_from_table
from slimrec.data.sequences import (
    Sequences,
    last_window,
    load_sequences,
    make_synthetic_sequences,
    pad_windows,
    sequences_from_log,
)
from slimrec.embeddings import TableStats
from slimrec.embeddings.allocate import TableRequest, allocate
from slimrec.errors import DataError
from slimrec.eval.sequential import DEFINITIONS, check_metric_name, evaluate_next_item
from slimrec.models.base import RecModel, model_class
from slimrec.models.sequential.sasrec import Objective, SASRec
from slimrec.tasks.base import Batches, Evaluation, RunConfig, Task, register_task
from slimrec.train.config import TrainConfig

FILE_OPTIONS = ("user_col", "item_col", "time_col", "separator")


class SequentialTrainConfig(TrainConfig):
    """``TrainConfig`` with the defaults of published SASRec training: Adam lr 1e-3, batches
    of 128 users, validation NDCG@10 every 2 epochs, no L2."""

    epochs: int = Field(200, ge=1, description="most epochs to train")
    batch_size: int = Field(128, ge=1, description="training rows per step")
    l2: float = Field(0.0, ge=0, description="weight of the L2 penalty on batch embeddings")
    patience: int = Field(5, ge=1, description="validation checks without improvement before "
                          "stopping")
    eval_every: int = Field(2, ge=1, description="epochs between validation checks")


class SequentialConfig(RunConfig):
    """A sequential run: the common settings plus history length, loss and evaluation."""

    task: Literal["sequential"] = "sequential"
    dataset: str = Field("synthetic-seq", description="registered sequence dataset (`slimrec "
                         "datasets list`) or the path of your own file")
    model: str = Field("sasrec", description="registered sequential model")
    train: SequentialTrainConfig = Field(default_factory=SequentialTrainConfig)
    max_len: int = Field(50, ge=1, description="sequential: most recent items the model reads")
    loss: Literal["full_ce", "sampled_softmax", "bce", "gbce"] = Field(
        "full_ce", description="sequential: cross-entropy over all items, sampled softmax, BCE "
        "with one negative, or gSASRec's gBCE")
    num_negatives: int = Field(256, ge=1, description="sequential: uniform negatives of "
                               "sampled_softmax and gbce")
    gbce_t: float = Field(0.75, ge=0, le=1, description="sequential: gBCE calibration t")
    eval: Literal["full", "uni100"] = Field(
        "full", description="sequential: rank the target among all items, or among 100 "
        "uniformly drawn unseen items")
    exclude_seen: bool = Field(False, description="sequential: full ranking drops the items of "
                               "the input history (a repeat can be the right answer)")
    ks: list[int] = Field(default_factory=lambda: [10, 20], min_length=1,
                          description="cutoffs K of the test metrics")
    user_col: str = Field("user", description="own file: the user id column")
    item_col: str = Field("item", description="own file: the item id column")
    time_col: str | None = Field(None, description="own file: the timestamp column, if any")
    separator: str | None = Field(None, description="own file: the column separator "
                                  "(default: from the suffix)")

    def objective(self) -> Objective:
        return Objective(loss=self.loss, num_negatives=self.num_negatives, gbce_t=self.gbce_t)


@dataclass(frozen=True)
class SequenceBatch:
    """Training users; ``tensors`` cuts their sequences to the model's ``max_len``."""

    users: np.ndarray
    data: Sequences

    @property
    def size(self) -> int:
        return len(self.users)

    def slice(self, begin: int, end: int) -> SequenceBatch:
        return SequenceBatch(self.users[begin:end], self.data)

    def tensors(self, max_len: int) -> tuple[Tensor, Tensor, Tensor]:
        """``(inputs, targets, lengths)``: right-padded ``[B, L]`` inputs, their next items
        (0 at padding) and the row lengths, from each user's last ``max_len + 1`` items."""
        begins, ends = self.data.indptr[self.users], self.data.train_ends[self.users]
        starts = last_window(begins, ends - 1, max_len)
        inputs, lengths = pad_windows(self.data.items, starts, ends - 1)
        targets, _ = pad_windows(self.data.items, starts + 1, ends)
        return inputs, targets, lengths


class SequenceBatches(Batches):
    """Users whose training sequence has a next item to predict, shuffled each epoch.

    A batch is padded to its longest sequence, so users are shuffled, then sorted by length
    within pools of ``POOL_BATCHES`` batches, and the batches shuffled: on Beauty (mean length
    9, max 204) this cuts the padded positions several-fold.
    """

    POOL_BATCHES: ClassVar[int] = 50

    def __init__(self, data: Sequences) -> None:
        self.data = data
        train_lengths = data.train_ends - data.indptr[:-1]
        self.users = np.flatnonzero(train_lengths >= 2)
        self.lengths = train_lengths[self.users]
        self.size = int(self.users.size)
        if self.size == 0:
            raise DataError(f"{data.name}: no training sequence has 2 items; a user needs 2 "
                            "items before the validation and test items (4 in all).")

    def epoch(self, batch_size: int, rng: np.random.Generator) -> Iterator[SequenceBatch]:
        order = rng.permutation(self.size)
        pool = batch_size * self.POOL_BATCHES
        for begin in range(0, self.size, pool):
            part = order[begin: begin + pool]
            order[begin: begin + pool] = part[np.argsort(self.lengths[part], kind="stable")]
        batches = [order[begin: begin + batch_size] for begin in range(0, self.size, batch_size)]
        for index in rng.permutation(len(batches)):
            yield SequenceBatch(self.users[batches[index]], self.data)


# ---------------------------------------------------------------------- losses
def _shared_negatives(model: SASRec, count: int, device: torch.device) -> Tensor:
    return torch.randint(1, model.num_items + 1, (count,), device=device)


def full_ce(model: SASRec, hidden: Tensor, targets: Tensor, objective: Objective) -> Tensor:
    logits = hidden @ model.item_weight().T
    logits[:, 0] = -torch.inf  # never predict padding
    return F.cross_entropy(logits, targets)


def sampled_softmax(model: SASRec, hidden: Tensor, targets: Tensor,
                    objective: Objective) -> Tensor:
    negatives = _shared_negatives(model, objective.num_negatives, hidden.device)
    positive = (hidden * model.item_table(targets)).sum(-1, keepdim=True)
    negative = hidden @ model.item_table(negatives).T
    negative = negative.masked_fill(negatives[None, :] == targets[:, None], -torch.inf)
    logits = torch.cat([positive, negative], 1)
    return F.cross_entropy(logits, torch.zeros(len(targets), dtype=torch.long))


def bce(model: SASRec, hidden: Tensor, targets: Tensor, objective: Objective) -> Tensor:
    negatives = torch.randint(1, model.num_items + 1, targets.shape, device=hidden.device)
    positive = (hidden * model.item_table(targets)).sum(-1)
    negative = (hidden * model.item_table(negatives)).sum(-1)
    return (F.softplus(-positive) + F.softplus(negative)).mean()


def gbce(model: SASRec, hidden: Tensor, targets: Tensor, objective: Objective) -> Tensor:
    """gSASRec: ``-beta log sigma(s+) - sum log(1 - sigma(s-))`` with ``beta = alpha (t (1 -
    1/alpha) + 1/alpha)``, ``alpha = negatives / (num_items - 1)``."""
    negatives = _shared_negatives(model, objective.num_negatives, hidden.device)
    alpha = objective.num_negatives / max(1, model.num_items - 1)
    beta = alpha * (objective.gbce_t * (1 - 1 / alpha) + 1 / alpha)
    positive = (hidden * model.item_table(targets)).sum(-1)
    negative = hidden @ model.item_table(negatives).T
    negative_loss = F.softplus(negative).masked_fill(negatives[None, :] == targets[:, None], 0)
    return (beta * F.softplus(-positive) + negative_loss.sum(1)).mean()


LOSSES = {"full_ce": full_ce, "sampled_softmax": sampled_softmax, "bce": bce, "gbce": gbce}


@register_task
class SequentialTask(Task):
    name: ClassVar[str] = "sequential"
    config_class: ClassVar[type[RunConfig]] = SequentialConfig
    default_metric: ClassVar[str] = "ndcg@10"
    report_metrics: ClassVar[tuple[str, ...]] = ("ndcg@10", "recall@10")
    definitions: ClassVar[dict[str, str]] = DEFINITIONS

    def check_metric(self, name: str) -> None:
        check_metric_name(name)

    def load(self, config: SequentialConfig) -> Sequences:
        options = {name: getattr(config, name) for name in FILE_OPTIONS}
        return load_sequences(config.dataset, config.data_dir, progress=config.progress,
                              **options)

    def toy_data(self, seed: int = 0) -> Sequences:
        return make_synthetic_sequences(num_users=80, num_items=40, mean_length=8,
                                        max_length=30, seed=seed)

    def adopt(self, config: SequentialConfig, data: Any) -> Sequences:
        """``Sequences`` as given; a pandas or polars frame, a dict or tuple of arrays of
        (user, item[, time]) is ordered by time (ties: row order) like a file."""
        if isinstance(data, Sequences):
            return data
        log = log_from_table(data, user_col=config.user_col, item_col=config.item_col,
                             time_col=config.time_col)
        return sequences_from_log("frame", log)

    def data_key(self, config: SequentialConfig) -> Hashable:
        return (config.dataset, config.data_dir,
                tuple(getattr(config, name) for name in FILE_OPTIONS))

    def build(self, config: SequentialConfig, data: Sequences) -> RecModel:
        stats = TableStats("item", data.item_frequencies(), data.train_graph())
        requests = {"item": TableRequest(data.vocab_size, stats, config.seed)}
        table = allocate(config.embedding_spec(), requests, config.dim).tables["item"]
        torch.manual_seed(config.seed)  # the transformer's initialisation
        cls = model_class(config.model, self.name)
        return cls(table, cls.parse_params(config.model_params), config.max_len,
                   config.objective())

    def batches(self, data: Sequences) -> SequenceBatches:
        return SequenceBatches(data)

    def loss(self, model: RecModel, batch: SequenceBatch, l2: float) -> Tensor:
        inputs, targets, lengths = batch.tensors(model.max_len)
        hidden = model.encode(inputs, lengths)
        positions = targets != 0
        hidden, targets = hidden[positions], targets[positions]
        loss = LOSSES[model.objective.loss](model, hidden, targets, model.objective)
        if l2:
            loss = loss + l2 * model.item_table(targets).square().sum() / len(targets)
        return loss

    def has_split(self, data: Sequences, split: str) -> bool:
        return bool(data.evaluated.any())

    def evaluate(self, model: RecModel, data: Sequences, split: str, config: RunConfig,
                 metric: str | None = None) -> Evaluation:
        result = evaluate_next_item(
            model, data, split, max_len=model.max_len, ks=config.ks, protocol=config.eval,
            exclude_seen=config.exclude_seen, seed=config.seed,
            names=None if metric is None else [metric])
        return Evaluation(result.metrics, result.seconds, result.details())

    def run_record(self, config: SequentialConfig) -> dict[str, Any]:
        return {"eval": config.eval, "exclude_seen": config.exclude_seen,
                "max_len": config.max_len, "loss": config.loss,
                "num_negatives": config.num_negatives}

    def describe(self, data: Sequences) -> dict[str, Any]:
        return data.stats()

    def vocab(self, data: Sequences) -> dict[str, Any]:
        # Internal id i is items[i - 1]; 0 is padding.
        return {"items": data.item_ids.tolist(), "padding": 0}
