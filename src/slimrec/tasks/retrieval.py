"""Retrieval: implicit feedback, BPR with uniform negatives, full-ranking Recall/NDCG@K.

Two tables, ``user`` and ``item``; the budget is split over both by the one allocator.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from slimrec.data.build import DuplicatePolicy, SplitName
from slimrec.data.interactions import Interactions
from slimrec.data.own_data import interactions_from_frame
from slimrec.data.registry import load_dataset
from slimrec.data.sampler import NegativeSampler
from slimrec.data.splits import carve_validation
from slimrec.data.synthetic import make_synthetic
from slimrec.embeddings import TableStats
from slimrec.embeddings.allocate import TableRequest, allocate
from slimrec.embeddings.sizing import index_dtype
from slimrec.errors import ConfigError, DataError
from slimrec.eval.metrics import METRICS
from slimrec.eval.ranking import DEFINITIONS, TIE_RULE, evaluate_ranking
from slimrec.models.base import RecModel, RetrievalModel, model_class
from slimrec.tasks.base import Batches, Evaluation, RunConfig, Task, register_task

SEEN_FILE = "seen.safetensors"
FILE_OPTIONS = ("user_col", "item_col", "rating_col", "time_col", "separator", "duplicates",
                "min_rating", "test_split")


def seen_tensors(seen: sp.csr_matrix) -> dict[str, Tensor]:
    """``{"indptr": (U + 1,), "indices": (nnz,)}`` of a users x items matrix, narrowest ints."""
    seen = sp.csr_matrix(seen)
    seen.sort_indices()
    return {"indptr": torch.from_numpy(seen.indptr.astype(np.int64)).to(index_dtype(seen.nnz)),
            "indices": torch.from_numpy(seen.indices.astype(np.int64)).to(
                index_dtype(max(0, seen.shape[1] - 1)))}


def seen_matrix(state: dict[str, Tensor], shape: tuple[int, int]) -> sp.csr_matrix:
    """The users x items matrix ``seen_tensors`` stored."""
    indptr, indices = state["indptr"].numpy(), state["indices"].numpy()
    return sp.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr),
                         shape=shape)


class RetrievalConfig(RunConfig):
    """A retrieval run: the common settings plus the split and the cutoffs."""

    task: Literal["retrieval"] = "retrieval"
    val_fraction: float = Field(0.1, ge=0, lt=1, description="share of each user's train "
                                "items held out for validation (early stopping)")
    val_users: int | None = Field(None, ge=1, description="validation checks rank a seeded "
                                  "random sample of this many users (every user when unset); "
                                  "for large catalogues and costly scorers. Test ranks every "
                                  "user")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="share of each user's items "
                                 "held out for test, for datasets without a given split")
    ks: list[int] = Field(default_factory=lambda: [10, 20, 50], min_length=1,
                          description="cutoffs K of the test metrics")
    # Reading your own interaction file (--dataset PATH: CSV, TSV, Parquet, RecBole .inter).
    user_col: str = Field("user", description="own file: the user id column")
    item_col: str = Field("item", description="own file: the item id column")
    rating_col: str | None = Field(None, description="own file: the rating column, if any")
    time_col: str | None = Field(None, description="own file: the timestamp column, if any")
    separator: str | None = Field(None, description="own file: the column separator "
                                  "(default: from the suffix)")
    duplicates: DuplicatePolicy = Field(
        "error", description="own file: a repeated (user, item) pair is an error, keeps its "
        "first row, or is kept once with its count as weight")
    min_rating: float | None = Field(None, description="own file: drop rows rated below this")
    test_split: SplitName | None = Field(
        None, description="how test items are held out: a seeded per-user random share "
        "(holdout) or each user's latest items by time (leave_last_out); default: the "
        "dataset's")


@dataclass(frozen=True)
class PairBatch:
    """``users``, ``positives`` and one sampled ``negatives`` item per row: LongTensor ``[B]``."""

    users: Tensor
    positives: Tensor
    negatives: Tensor

    @property
    def size(self) -> int:
        return len(self.users)

    def slice(self, begin: int, end: int) -> PairBatch:
        """Rows ``begin:end`` (a rank's share of a data-parallel batch)."""
        return PairBatch(self.users[begin:end], self.positives[begin:end],
                         self.negatives[begin:end])


class PairBatches(Batches):
    """The training (user, item) pairs, shuffled, with a fresh negative per pair each epoch."""

    def __init__(self, data: Interactions) -> None:
        train = data.train.tocoo()
        self.users = train.row.astype(np.int64)
        self.items = train.col.astype(np.int64)
        self.size = int(self.users.size)
        if self.size == 0:
            raise DataError(f"{data.name}: the train split is empty.")
        self.sampler = NegativeSampler(data.train)

    def epoch(self, batch_size: int, rng: np.random.Generator) -> Iterator[PairBatch]:
        order = rng.permutation(self.size)
        negatives = self.sampler.sample(self.users[order], rng)
        for begin in range(0, self.size, batch_size):
            index = order[begin: begin + batch_size]
            yield PairBatch(torch.from_numpy(self.users[index]),
                            torch.from_numpy(self.items[index]),
                            torch.from_numpy(negatives[begin: begin + batch_size]))


@register_task
class RetrievalTask(Task):
    name: ClassVar[str] = "retrieval"
    config_class: ClassVar[type[RunConfig]] = RetrievalConfig
    default_metric: ClassVar[str] = "recall@20"
    report_metrics: ClassVar[tuple[str, ...]] = ("recall@20", "ndcg@20")
    definitions: ClassVar[dict[str, str]] = {
        **{name: DEFINITIONS[name] for name in ("recall", "ndcg", "precision", "hit", "mrr")},
        "ties": TIE_RULE}

    def check_metric(self, name: str) -> None:
        metric, _, k = name.partition("@")
        if metric not in METRICS or not k.isdigit() or int(k) < 1:
            raise ConfigError(f"retrieval metric must look like 'recall@20' (one of "
                              f"{', '.join(METRICS)} at a cutoff >= 1); got {name!r}.")

    def load(self, config: RetrievalConfig) -> Interactions:
        data = load_dataset(config.dataset, config.data_dir, seed=config.seed,
                            test_fraction=config.test_fraction, progress=config.progress,
                            **self._file_options(config))
        if config.val_fraction > 0:
            data = carve_validation(data, config.val_fraction, config.seed)
        return data

    def toy_data(self, seed: int = 0) -> Interactions:
        return carve_validation(make_synthetic(num_users=300, num_items=200, num_communities=6,
                                               mean_degree=15, seed=seed), 0.1, seed)

    def adopt(self, config: RetrievalConfig, data: Any) -> Interactions:
        """``Interactions`` as given; a pandas or polars frame, a dict or tuple of arrays is
        read with the run's column settings and split like a file."""
        if isinstance(data, Interactions):
            return data
        options = self._file_options(config)
        options.pop("separator", None)
        data = interactions_from_frame(data, seed=config.seed,
                                       test_fraction=config.test_fraction, **options)
        if config.val_fraction > 0:
            data = carve_validation(data, config.val_fraction, config.seed)
        return data

    @staticmethod
    def _file_options(config: RetrievalConfig) -> dict[str, Any]:
        """The own-file settings the user changed (a registered dataset rejects them)."""
        changed = {name: getattr(config, name) for name in FILE_OPTIONS
                   if getattr(config, name) != RetrievalConfig.model_fields[name].default}
        if "test_split" in changed:
            changed["split"] = changed.pop("test_split")
        return changed

    def data_key(self, config: RetrievalConfig) -> Hashable:
        # The seed carves the validation split.
        return (config.dataset, config.data_dir, config.seed, config.val_fraction,
                config.test_fraction, tuple(sorted(self._file_options(config).items())))

    def build(self, config: RetrievalConfig, data: Interactions) -> RetrievalModel:
        requests = {
            "user": TableRequest(data.num_users, TableStats("user", data.user_frequencies(),
                                                            data.train), config.seed),
            "item": TableRequest(data.num_items, TableStats("item", data.item_frequencies(),
                                                            data.train), config.seed + 1)}
        tables = allocate(config.embedding_spec(), requests, config.dim).tables
        cls = model_class(config.model, self.name)
        return cls.from_data(tables["user"], tables["item"], data.train,
                             cls.parse_params(config.model_params))

    def batches(self, data: Interactions) -> PairBatches:
        return PairBatches(data)

    def loss(self, model: RecModel, batch: PairBatch, l2: float) -> Tensor:
        positive, negative, penalty = model.bpr_terms(batch.users, batch.positives,
                                                      batch.negatives, penalty=l2 > 0)
        loss = F.softplus(negative - positive).mean()
        return loss if penalty is None else loss + l2 * penalty / batch.size

    def has_split(self, data: Interactions, split: str) -> bool:
        return bool((data.val if split == "val" else data.test).nnz)

    def evaluate(self, model: RecModel, data: Interactions, split: str, config: RunConfig,
                 metric: str | None = None) -> Evaluation:
        # The run's seed also draws the item order that breaks score ties (eval/ranking.py),
        # and the validation users when only a sample of them is ranked.
        sample = config.val_users if split == "val" else None
        if metric is None:
            result = evaluate_ranking(model.scorer(), data, split, ks=config.ks,
                                      tie_seed=config.seed, max_users=sample)
        else:
            name, _, k = metric.partition("@")
            result = evaluate_ranking(model.scorer(), data, split, ks=(int(k),),
                                      metrics=(name,), tie_seed=config.seed, max_users=sample)
        return Evaluation(result.metrics, result.seconds, result.details())

    def describe(self, data: Interactions) -> dict[str, Any]:
        return {"name": data.name, "users": data.num_users, "items": data.num_items,
                "train": int(data.train.nnz), "val": int(data.val.nnz),
                "test": int(data.test.nnz)}

    def vocab(self, data: Interactions) -> dict[str, Any]:
        return {"users": data.user_ids.tolist(), "items": data.item_ids.tolist()}

    def artifact_files(self, data: Interactions) -> dict[str, dict[str, Tensor]]:
        # What `exclude_seen` filters at serving time: train + validation items.
        return {SEEN_FILE: seen_tensors(sp.csr_matrix(data.train + data.val))}
