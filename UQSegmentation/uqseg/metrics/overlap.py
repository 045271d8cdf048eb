"""Overlap of segmentations: the Dice similarity coefficient of two masks, and per class of two label maps."""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from uqseg.metrics.arrays import as_labels as _as_labels
from uqseg.metrics.arrays import chunks as _chunks
from uqseg.metrics.arrays import require_same_shape as _require_same_shape

__all__ = ["class_counts", "dice", "dice_from_counts", "dice_per_class"]


def dice_from_counts(n_pred: float, n_true: float, n_both: float) -> float:
    """Dice = 2 |P ∩ T| / (|P| + |T|); 1.0 when both P and T are empty (nothing to find, nothing found)."""
    denominator = n_pred + n_true
    return 1.0 if denominator == 0 else float(2.0 * n_both / denominator)


def dice(pred_mask: Any, true_mask: Any) -> float:
    """Dice similarity coefficient of two binary masks: 2 |P ∩ T| / (|P| + |T|), unitless in [0, 1].

    Nonzero values count as inside. Both masks empty → 1.0 (perfect agreement that there is nothing); exactly one
    empty → 0.0.
    """
    p, t = np.asarray(pred_mask), np.asarray(true_mask)
    _require_same_shape(p, t, "pred_mask", "true_mask")
    n_both = 0
    pf, tf = p.reshape(-1), t.reshape(-1)
    for sl in _chunks(pf.size):
        n_both += int(np.count_nonzero(np.logical_and(pf[sl], tf[sl])))
    return dice_from_counts(np.count_nonzero(p), np.count_nonzero(t), n_both)


def class_counts(pred: np.ndarray, true: np.ndarray, n: int) -> np.ndarray:
    """(3, n) voxel counts of classes 0..n-1: predicted, reference, and both (pred == true == class)."""
    counts = np.zeros((3, n), dtype=np.int64)
    for k, values in enumerate((pred, true, pred[pred == true])):
        counts[k] = np.bincount(values.astype(np.intp, copy=False), minlength=n)[:n]
    return counts


def dice_per_class(label_pred: Any, label_true: Any, classes: Iterable[int]) -> dict[int, float]:
    """Dice of each class c in `classes` between two label maps (class c's mask = voxels equal to c).

    Labels are non-negative integers; a class absent from both maps scores 1.0 (see `dice`). Returns
    ``{c: dice}`` in the order of `classes`.
    """
    pred, true = _as_labels(label_pred, "label_pred"), _as_labels(label_true, "label_true")
    _require_same_shape(pred, true, "label_pred", "label_true")
    classes = [int(c) for c in classes]
    if any(c < 0 for c in classes):
        raise ValueError(f"classes must be non-negative, got {classes}")
    n = max(classes, default=-1) + 1
    counts = np.zeros((3, n), dtype=np.int64)
    pf, tf = pred.reshape(-1), true.reshape(-1)
    for sl in _chunks(pf.size):
        counts += class_counts(pf[sl], tf[sl], n)
    return {c: dice_from_counts(*counts[:, c]) for c in classes}
