"""Next-item evaluation equals a brute-force evaluator; ties are broken neutrally."""

import math

import numpy as np
import pytest
import torch

from slimrec.data.sequences import make_synthetic_sequences, sequences_from_lists
from slimrec.errors import ConfigError, DataError
from slimrec.eval.sequential import (
    UniformNegatives,
    check_metric_name,
    evaluate_next_item,
    metric_names,
)


class LastItemModel(torch.nn.Module):
    """Scores every item by a fixed table row of the history's last item."""

    def __init__(self, table):
        super().__init__()
        self.table = table

    def score_all(self, inputs, lengths):
        scores = self.table[inputs[torch.arange(len(lengths)), lengths - 1]].clone()
        scores[:, 0] = -torch.inf
        return scores

    def score_items(self, inputs, lengths, items):
        return self.score_all(inputs, lengths).gather(1, items)


def brute_force(ranks, ks=(10, 20)):
    found = {}
    for k in ks:
        found[f"hit@{k}"] = found[f"recall@{k}"] = np.mean([r < k for r in ranks])
        found[f"ndcg@{k}"] = np.mean([1 / math.log2(r + 2) if r < k else 0 for r in ranks])
    found["mrr"] = np.mean([1 / (r + 1) for r in ranks])
    return found


def rank_of(target, candidates, score_row):
    ordered = sorted(candidates, key=lambda item: -float(score_row[item]))
    return ordered.index(target)


@pytest.fixture(scope="module")
def data():
    return make_synthetic_sequences(num_users=120, num_items=60, mean_length=10, seed=4)


@pytest.fixture(scope="module")
def model(data):
    return LastItemModel(torch.randn(data.vocab_size, data.vocab_size,
                                     generator=torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("exclude_seen", [False, True])
@pytest.mark.parametrize("max_len", [3, 50])
def test_full_ranking_equals_brute_force(data, model, exclude_seen, max_len):
    result = evaluate_next_item(model, data, "test", max_len=max_len,
                                exclude_seen=exclude_seen, batch_size=17)
    found = result.metrics
    ranks = []
    holdout = data.holdout("test")
    for start, end, target in zip(holdout.starts, holdout.ends, holdout.targets,
                                  strict=True):
        history = data.items[max(start, end - max_len): end]
        candidates = [i for i in range(1, data.vocab_size)
                      if not (exclude_seen and i in history and i != target)]
        ranks.append(rank_of(target, candidates, model.table[history[-1]]))
    expected = brute_force(ranks)
    assert found.keys() == expected.keys()
    for key, value in expected.items():
        assert found[key] == pytest.approx(value, abs=1e-12), key
    assert result.users == len(holdout) and result.tied_users == {10: 0, 20: 0}  # random floats


def test_uni100_equals_brute_force(data, model):
    found = evaluate_next_item(model, data, "val", max_len=50, protocol="uni100", seed=3,
                               batch_size=10_000).metrics
    holdout = data.holdout("val")
    # the evaluator batches rows by input length; the draws follow that order
    holdout = holdout.rows(np.argsort(np.minimum(holdout.ends - holdout.starts, 50),
                                      kind="stable"))
    drawn = UniformNegatives(data, 3 * 7 + 1).draw(holdout.users, 100)
    ranks = []
    for row, (end, target) in enumerate(zip(holdout.ends, holdout.targets, strict=True)):
        user_items = set(data.history(holdout.users[row]).tolist())
        assert not user_items & set(drawn[row].tolist())  # negatives are unseen items
        assert drawn[row].min() >= 1 and drawn[row].max() <= data.num_items
        ranks.append(rank_of(0, range(101), model.table[data.items[end - 1]][
            np.concatenate([[target], drawn[row]])]))
    expected = brute_force(ranks)
    for key, value in expected.items():
        assert found[key] == pytest.approx(value, abs=1e-12), key
    again = evaluate_next_item(model, data, "val", max_len=50, protocol="uni100", seed=3).metrics
    assert again == found  # seeded: the same negatives and tie draws every time


def test_ties_are_neutral_not_by_id():
    # Every target is item 1, the lowest id; all items score alike. Ranking by id would put
    # it first every time (hit@10 = 1); neutral ties give hit@10 ~ 10 / 50.
    histories = [[str(2 + u % 49), "1", "1"] for u in range(4000)]
    data = sequences_from_lists(histories)
    model = LastItemModel(torch.zeros(data.vocab_size, data.vocab_size))
    result = evaluate_next_item(model, data, "test", max_len=5, ks=(10,))
    found = result.metrics
    assert data.num_items == 50
    assert result.tied_users == {10: 4000}  # all 50 items tie, across every cutoff
    assert found["hit@10"] == pytest.approx(10 / 50, abs=0.02)
    assert found["mrr"] == pytest.approx(np.mean(1 / np.arange(1, 51)), abs=0.01)


def test_ties_across_the_cutoff_are_counted():
    # Item scores 3, 2, 2, 2, 1, ... (item 1 first): a target in the group of 2s ties across
    # K = 2 and 3 (best rank 1, worst 3) but not across K = 1 or 4.
    histories = [["1", str(target), "1"] for target in (2, 3, 4, 5, 6)] + [["1", "7", "2"]]
    data = sequences_from_lists(histories)
    table = torch.zeros(data.vocab_size, data.vocab_size)
    ids = {item: index + 1 for index, item in enumerate(sorted(
        {item for history in histories for item in history}, key=int))}
    for item, score in (("2", 3.0), ("3", 2.0), ("4", 2.0), ("5", 2.0), ("6", 1.0)):
        table[:, ids[item]] = score
    result = evaluate_next_item(LastItemModel(table), data, "test", max_len=5,
                                names=["hit@1", "hit@2", "hit@3", "hit@4"])
    # Test targets: 1 (last item of five histories; score 0, tied with item 7) and 2 (score 3).
    assert result.tied_users == {1: 0, 2: 0, 3: 0, 4: 0}
    val = evaluate_next_item(LastItemModel(table), data, "val", max_len=5,
                             names=["hit@1", "hit@2", "hit@3", "hit@4"])
    # Validation targets: 2, 3, 4, 5, 6, 7. Items 3-5 tie at ranks 1-3.
    assert val.tied_users == {1: 0, 2: 3, 3: 3, 4: 0}


def test_metric_names_and_errors(data, model):
    assert metric_names([10]) == ["hit@10", "recall@10", "ndcg@10", "mrr"]
    for bad in ("auc", "ndcg", "ndcg@0", "mrr@10"):
        with pytest.raises(ConfigError):
            check_metric_name(bad)
    with pytest.raises(ConfigError, match="eval must be 'full' or 'uni100'"):
        evaluate_next_item(model, data, "test", max_len=5, protocol="uni50")
    short = sequences_from_lists([["a", "b"]])
    with pytest.raises(DataError, match="no user has the 3 items"):
        evaluate_next_item(model, short, "test", max_len=5)
