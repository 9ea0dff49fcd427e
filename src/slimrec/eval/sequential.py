"""Next-item evaluation, leave-one-out: one held-out target per user, ranked by the model.

Protocols:

- ``full``: the target is ranked against every item; only the padding id is excluded, unless
  ``exclude_seen`` also drops the items of the user's input history (the target itself always
  stays: a sequential model may rightly predict a repeat).
- ``uni100``: the target is ranked against 100 items drawn uniformly (with replacement) from
  the items the user never interacted with, as the SASRec and BlossomRec papers report.

Ties are broken neutrally: the target takes a seeded uniformly random place among the
candidates that score exactly as it does, never a place decided by its id. With one target,
``rank`` (0-based) gives every metric (``metrics_from_ranks``). ``NextItemResult.tied_users[K]``
counts the users whose target ties with candidates on both sides of the cutoff K (the random
place decides whether it is in the top K).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from slimrec.data.sequences import Holdout, Sequences, last_window, pad_windows
from slimrec.errors import ConfigError, DataError
from slimrec.eval.ranking import evaluation_record

Protocol = Literal["full", "uni100"]
SAMPLED_NEGATIVES = 100
CUTOFF_METRICS = ("hit", "recall", "ndcg")
DEFINITIONS = {
    "hit": "1 if the held-out next item ranks in the top K, else 0 (HR@K)",
    "recall": "|top K ∩ {target}| / 1: with one held-out item per user it equals hit@K",
    "ndcg": "1 / log2(rank + 1) if the 1-based rank of the target is <= K, else 0 (the ideal "
            "DCG of one relevant item is 1)",
    "mrr": "1 / (1-based rank of the target among all candidates), no cutoff",
}
TIE_RULE = ("the target takes a seeded uniformly random place among the candidates of its "
            "exact score, never a place decided by its id")


@dataclass
class NextItemResult:
    """Mean metrics over the ``users`` evaluated; ``tied_users[K]``: how many of them had a
    tie across the cutoff K."""

    metrics: dict[str, float]
    seconds: float
    users: int
    tied_users: dict[int, int]

    def details(self) -> dict[str, Any]:
        """What a results document records next to the metrics."""
        return evaluation_record(self.users, TIE_RULE, self.tied_users)


def check_metric_name(name: str) -> None:
    metric, _, k = name.partition("@")
    if name == "mrr" or (metric in CUTOFF_METRICS and k.isdigit() and int(k) >= 1):
        return
    raise ConfigError(f"sequential metric must be 'mrr' or look like 'ndcg@10' (one of "
                      f"{', '.join(CUTOFF_METRICS)} at a cutoff >= 1); got {name!r}.")


def neutral_ranks(scores: Tensor, target_scores: Tensor,
                  generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """0-based rank of each row's target, ties ordered at random: ``[R, C]`` candidate scores
    (the target among them) and ``[R]`` target scores -> ``(ranks LongTensor[R], span
    LongTensor[R, 2])``, ``span`` being the best and worst rank the tie allows."""
    greater = (scores > target_scores[:, None]).sum(1)
    tied = (scores == target_scores[:, None]).sum(1).clamp(min=1)  # the target and its equals
    draw = torch.rand(len(tied), generator=generator, dtype=torch.float64)
    ranks = greater + (draw * tied).long().clamp(max=tied - 1)
    return ranks, torch.stack([greater, greater + tied - 1], 1)


def tied_at_cutoffs(spans: Tensor, ks: Sequence[int]) -> dict[int, int]:
    """Users whose tie span covers ranks on both sides of each cutoff K (``K - 1`` and ``K``)."""
    return {k: int(((spans[:, 0] < k) & (spans[:, 1] >= k)).sum()) for k in ks}


def metrics_from_ranks(ranks: Tensor, names: Sequence[str]) -> dict[str, float]:
    """Means over users of each metric (``"ndcg@10"``, ``"mrr"``...) from 0-based ranks."""
    ranks = ranks.to(torch.float64)
    found = {}
    for name in names:
        metric, _, k = name.partition("@")
        if metric == "mrr":
            values = 1.0 / (ranks + 1.0)
        elif metric == "ndcg":
            values = torch.where(ranks < int(k), 1.0 / torch.log2(ranks + 2.0),
                                 torch.zeros_like(ranks))
        else:  # hit and recall agree with one target
            values = (ranks < int(k)).to(torch.float64)
        found[name] = float(values.mean())
    return found


def metric_names(ks: Sequence[int]) -> list[str]:
    return [f"{metric}@{k}" for metric in CUTOFF_METRICS for k in ks] + ["mrr"]


class UniformNegatives:
    """Seeded draws of items a user never interacted with (``uni100``)."""

    def __init__(self, data: Sequences, seed: int) -> None:
        users = np.repeat(np.arange(data.num_users), data.lengths)
        self.width = data.vocab_size
        self.seen = np.unique(users * self.width + data.items)
        self.distinct = np.bincount(self.seen // self.width, minlength=data.num_users)
        self.num_items = data.num_items
        self.rng = np.random.default_rng(seed)

    def draw(self, users: np.ndarray, count: int) -> np.ndarray:
        short = users[self.distinct[users] >= self.num_items]
        if short.size:
            raise DataError(f"user {short[0]} interacted with every item; uni100 needs items "
                            "a user never saw. Use eval 'full'.")
        drawn = self.rng.integers(1, self.num_items + 1, size=(len(users), count))
        while True:  # redraw the seen ones; each pass keeps >= 1/num_items of them unseen
            keys = users[:, None] * self.width + drawn
            position = np.searchsorted(self.seen, keys).clip(max=len(self.seen) - 1)
            seen = self.seen[position] == keys
            if not seen.any():
                return drawn
            drawn[seen] = self.rng.integers(1, self.num_items + 1, size=int(seen.sum()))


def evaluate_next_item(model: torch.nn.Module, data: Sequences, split: str, *, max_len: int,
                       ks: Sequence[int] = (10, 20), protocol: Protocol = "full",
                       exclude_seen: bool = False, seed: int = 0,
                       names: Sequence[str] | None = None,
                       batch_size: int = 512) -> NextItemResult:
    """Metrics (``metric_names(ks)`` or ``names``) of ``split``, the seconds taken and the
    users tied at each cutoff.

    ``model`` has ``score_all(inputs, lengths) -> [B, num_items + 1]`` and
    ``score_items(inputs, lengths, items [B, C]) -> [B, C]`` (``SASRec``).
    """
    if protocol not in ("full", "uni100"):
        raise ConfigError(f"eval must be 'full' or 'uni100'; got {protocol!r}.")
    holdout = data.holdout(split)
    if len(holdout) == 0:
        raise DataError(f"{data.name}: no user has the 3 items a {split} split needs.")
    # Rows of similar length share a batch, so little of it is padding.
    holdout = holdout.rows(np.argsort(np.minimum(holdout.ends - holdout.starts, max_len),
                                      kind="stable"))
    code = {"val": 1, "test": 2}[split]  # val and test draw apart, each the same every time
    generator = torch.Generator().manual_seed(seed * 7 + code)
    negatives = UniformNegatives(data, seed * 7 + code) if protocol == "uni100" else None
    ranks, spans = [], []
    start = time.perf_counter()
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for begin in range(0, len(holdout), batch_size):
            rows = slice(begin, begin + batch_size)
            batch_ranks, batch_spans = _batch_ranks(model, data, holdout, rows, max_len,
                                                    negatives, exclude_seen, generator)
            ranks.append(batch_ranks)
            spans.append(batch_spans)
    model.train(was_training)
    names = list(names or metric_names(ks))
    found = metrics_from_ranks(torch.cat(ranks), names)
    cutoffs = sorted({int(name.partition("@")[2]) for name in names if "@" in name})
    return NextItemResult(found, time.perf_counter() - start, len(holdout),
                          tied_at_cutoffs(torch.cat(spans), cutoffs))


def _batch_ranks(model: torch.nn.Module, data: Sequences, holdout: Holdout, rows: slice,
                 max_len: int, negatives: UniformNegatives | None, exclude_seen: bool,
                 generator: torch.Generator) -> tuple[Tensor, Tensor]:
    inputs, lengths = pad_windows(data.items, last_window(holdout.starts[rows],
                                                          holdout.ends[rows], max_len),
                                  holdout.ends[rows])
    targets = torch.from_numpy(holdout.targets[rows])
    if negatives is not None:
        drawn = negatives.draw(holdout.users[rows], SAMPLED_NEGATIVES)
        candidates = torch.cat([targets[:, None], torch.from_numpy(drawn)], 1)
        scores = model.score_items(inputs, lengths, candidates)
        return neutral_ranks(scores, scores[:, 0], generator)
    scores = model.score_all(inputs, lengths)
    target_scores = scores.gather(1, targets[:, None])[:, 0]
    if exclude_seen:
        row, column = inputs.nonzero(as_tuple=True)
        scores[row, inputs[row, column]] = -torch.inf
        scores.scatter_(1, targets[:, None], target_scores[:, None])
    return neutral_ranks(scores, target_scores, generator)
