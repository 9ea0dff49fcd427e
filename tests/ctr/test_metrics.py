"""AUC and LogLoss against brute-force references, ties included."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slimrec.errors import DataError
from slimrec.eval.ctr import auc, logloss


def brute_auc(labels: list[int], scores: list[float]) -> float:
    """Over all (positive, negative) pairs: 1 if the positive scores higher, ½ on a tie."""
    positives = [s for y, s in zip(labels, scores, strict=True) if y == 1]
    negatives = [s for y, s in zip(labels, scores, strict=True) if y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def brute_logloss(labels: list[int], probabilities: list[float], eps: float = 1e-7) -> float:
    total = 0.0
    for y, p in zip(labels, probabilities, strict=True):
        p = min(max(p, eps), 1 - eps)
        total += -math.log(p) if y == 1 else -math.log(1 - p)
    return total / len(labels)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 6)), min_size=2, max_size=60))
def test_auc_matches_brute_force_with_ties(pairs: list[tuple[int, int]]) -> None:
    labels = [y for y, _ in pairs]
    if len(set(labels)) < 2:
        labels[0], labels[1] = 0, 1
    scores = [s / 3.0 for _, s in pairs]  # few distinct values: many ties
    assert auc(np.array(labels), np.array(scores)) == pytest.approx(brute_auc(labels, scores))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.floats(0.0, 1.0)), min_size=1, max_size=60))
def test_logloss_matches_brute_force(pairs: list[tuple[int, float]]) -> None:
    labels = [y for y, _ in pairs]
    probabilities = [p for _, p in pairs]
    assert logloss(np.array(labels), np.array(probabilities)) == pytest.approx(
        brute_logloss(labels, probabilities))


def test_auc_known_values() -> None:
    assert auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    assert auc(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5
    assert auc(np.array([1, 0, 1]), np.array([3.0, 1.0, 2.0])) == 1.0


def test_auc_needs_both_classes() -> None:
    with pytest.raises(DataError, match="both classes"):
        auc(np.array([1, 1]), np.array([0.2, 0.3]))


def test_metric_input_errors() -> None:
    with pytest.raises(DataError, match="same length"):
        auc(np.array([0, 1]), np.array([0.1]))
    with pytest.raises(DataError, match="0 or 1"):
        logloss(np.array([0, 2]), np.array([0.1, 0.2]))
    with pytest.raises(DataError, match="sigmoid"):
        logloss(np.array([0, 1]), np.array([-1.0, 3.0]))
    with pytest.raises(DataError, match="finite"):
        auc(np.array([0, 1]), np.array([np.nan, 0.2]))
