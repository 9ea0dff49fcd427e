"""CTR metrics as small pure functions of labels and predicted scores.

``labels`` is a 1-D array of 0/1 values, ``scores``/``probabilities`` a 1-D array of the same
length. Both metrics are computed in float64.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from scipy.stats import rankdata

from slimrec.data.fields import FieldData
from slimrec.errors import DataError
from slimrec.models.ctr.base import CTRModel, FieldTensors

DEFINITIONS = {
    "auc": "P(score of a random positive > score of a random negative) + 1/2 P(tie) "
           "(Mann-Whitney U / (|P| |N|), average ranks for ties)",
    "logloss": "-mean(y log p + (1 - y) log(1 - p)), p clipped to [1e-7, 1 - 1e-7]",
}
LOGLOSS_EPS = 1e-7
EVAL_BATCH_SIZE = 65536  # rows scored at once; only memory depends on it


def _check(labels: np.ndarray, values: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).ravel()
    values = np.asarray(values, dtype=np.float64).ravel()
    if labels.shape != values.shape:
        raise DataError(f"labels and {what} must have the same length; got {labels.size} and "
                        f"{values.size}.")
    if labels.size == 0:
        raise DataError(f"no labels to evaluate {what} on.")
    if not np.isin(labels, (0, 1)).all():
        raise DataError(f"labels must be 0 or 1; got {np.setdiff1d(labels, (0, 1))[:5]}.")
    if not np.isfinite(values).all():
        raise DataError(f"{what} must be finite; got {values[~np.isfinite(values)][:5]}.")
    return labels.astype(bool), values


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve, exact and tie-aware.

    AUC = (Σ_{i ∈ P} r_i − |P|(|P| + 1)/2) / (|P| · |N|), where ``r_i`` is the 1-based rank of
    ``scores[i]`` among all scores with tied scores sharing their average rank. This equals
    P(s⁺ > s⁻) + ½ P(s⁺ = s⁻) over all positive/negative pairs. O(n log n).
    """
    positive, scores = _check(labels, scores, "scores")
    num_positive = int(positive.sum())
    num_negative = positive.size - num_positive
    if num_positive == 0 or num_negative == 0:
        raise DataError(f"AUC needs both classes; got {num_positive} positives and "
                        f"{num_negative} negatives.")
    ranks = rankdata(scores, method="average")
    rank_sum = float(ranks[positive].sum())
    return (rank_sum - num_positive * (num_positive + 1) / 2.0) / (num_positive * num_negative)


def logloss(labels: np.ndarray, probabilities: np.ndarray, eps: float = LOGLOSS_EPS) -> float:
    """Binary cross-entropy: −(1/n) Σ_i [y_i log p_i + (1 − y_i) log(1 − p_i)].

    ``p_i`` is clipped to ``[eps, 1 − eps]`` so that a confident mistake costs a finite amount.
    """
    positive, probabilities = _check(labels, probabilities, "probabilities")
    if (probabilities < 0).any() or (probabilities > 1).any():
        raise DataError("probabilities must lie in [0, 1]; pass sigmoid(logits), not logits.")
    p = np.clip(probabilities, eps, 1.0 - eps)
    return float(-np.mean(np.where(positive, np.log(p), np.log1p(-p))))


def predict(model: CTRModel, tensors: FieldTensors, rows: np.ndarray,
            batch_size: int = EVAL_BATCH_SIZE) -> np.ndarray:
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
                 batch_size: int = EVAL_BATCH_SIZE) -> tuple[dict[str, float], float]:
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
