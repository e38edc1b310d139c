"""Multi-label evaluation metrics (pure functions over numpy arrays)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    label_ranking_average_precision_score,
    precision_recall_fscore_support,
)

DEFAULT_GRID: np.ndarray = np.round(np.arange(0.05, 0.951, 0.025), 4)
"""Candidate thresholds for :func:`tune_thresholds`."""


def binarize(probs: np.ndarray, thresholds: np.ndarray | float, min_labels: int = 0
             ) -> np.ndarray:
    """0/1 predictions: ``probs >= thresholds`` (thresholds broadcast per class).

    A row with fewer than ``min_labels`` classes over threshold takes its ``min_labels``
    most probable classes instead: the protocol's prior that every clip holds at least
    that many instruments.
    """
    probs = np.asarray(probs)
    pred = (probs >= np.asarray(thresholds, dtype=np.float64)).astype(np.uint8)
    k = min(int(min_labels), probs.shape[-1])
    if k > 0:
        short = np.flatnonzero(pred.sum(axis=1) < k)
        top = np.argsort(-probs[short], axis=1, kind="stable")[:, :k]
        pred[short[:, None], top] = 1
    return pred


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Unweighted mean of per-class F1 (a class with no true and no predicted labels scores 0)."""
    return float(f1_score(y_true, y_pred, average="macro", zero_division=0))


def average_precisions(y_true: np.ndarray, probs: np.ndarray) -> dict[int, float]:
    """Average precision of each class that has positives, by class index."""
    y_true = np.asarray(y_true)
    return {c: float(average_precision_score(y_true[:, c], probs[:, c]))
            for c in range(y_true.shape[1]) if y_true[:, c].any()}


def mean_average_precision(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Mean over classes of average precision; classes without positives are skipped."""
    aps = list(average_precisions(y_true, probs).values())
    return float(np.mean(aps)) if aps else 0.0


def f1_by_count(y_true: np.ndarray, y_pred: np.ndarray) -> dict[int, float]:
    """Macro F1 over the clips that hold exactly k true instruments, for each k present."""
    counts = np.asarray(y_true).sum(axis=1)
    return {
        int(k): macro_f1(y_true[counts == k], y_pred[counts == k])
        for k in np.unique(counts)
        if k > 0
    }


def multilabel_report(
    y_true: np.ndarray,
    probs: np.ndarray,
    thresholds: np.ndarray | float,
    names: Sequence[str],
    min_labels: int = 0,
) -> dict[str, float]:
    """Flat dict of metrics: macro/micro F1, mAP, LRAP, per-class F1/precision/recall and
    average precision (``ap/<name>``, only for classes with positives), F1 by count, and the
    mean number of instruments per clip predicted and true (``labels_per_clip``,
    ``true_labels_per_clip``): off the training distribution a model that names too many
    shows it there first."""
    y_true = np.asarray(y_true).astype(np.uint8)
    probs = np.asarray(probs, dtype=np.float64)
    if y_true.shape != probs.shape or y_true.shape[1] != len(names):
        raise ValueError(
            f"shapes disagree: y_true {y_true.shape}, probs {probs.shape}, {len(names)} names"
        )
    y_pred = binarize(probs, thresholds, min_labels)
    prec, rec, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, average=None, zero_division=0
    )
    aps = average_precisions(y_true, probs)
    report: dict[str, float] = {
        "macro_f1": macro_f1(y_true, y_pred),
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "mAP": float(np.mean(list(aps.values()))) if aps else 0.0,
        "lrap": float(label_ranking_average_precision_score(y_true, probs)),
        "labels_per_clip": float(y_pred.sum(axis=1).mean()),
        "true_labels_per_clip": float(y_true.sum(axis=1).mean()),
    }
    for i, name in enumerate(names):
        report[f"f1/{name}"] = float(f1[i])
        report[f"precision/{name}"] = float(prec[i])
        report[f"recall/{name}"] = float(rec[i])
        if i in aps:
            report[f"ap/{name}"] = aps[i]
    for k, value in f1_by_count(y_true, y_pred).items():
        report[f"f1_by_count/{k}"] = value
    return report


def _f1_for_thresholds(y: np.ndarray, p: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """F1 of one class at every threshold of ``grid`` (vectorised)."""
    pred = p[None, :] >= grid[:, None]
    tp = (pred & (y[None, :] == 1)).sum(axis=1)
    fp = (pred & (y[None, :] == 0)).sum(axis=1)
    fn = (~pred & (y[None, :] == 1)).sum(axis=1)
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def tune_thresholds(
    y_true: np.ndarray, probs: np.ndarray, grid: Sequence[float] | np.ndarray = DEFAULT_GRID
) -> np.ndarray:
    """Per-class threshold from ``grid`` that maximises that class's F1 on the given data.

    Ties go to the threshold closest to 0.5; a class without positives keeps 0.5.
    """
    y_true = np.asarray(y_true)
    probs = np.asarray(probs, dtype=np.float64)
    grid = np.asarray(grid, dtype=np.float64)
    order = np.argsort(np.abs(grid - 0.5), kind="stable")  # prefer thresholds near 0.5
    out = np.full(y_true.shape[1], 0.5, dtype=np.float64)
    for c in range(y_true.shape[1]):
        if not y_true[:, c].any():
            continue
        scores = _f1_for_thresholds(y_true[:, c], probs[:, c], grid)[order]
        out[c] = grid[order][int(np.argmax(scores))]
    return out
