"""Rank statistics for "does the uncertainty point at the errors": AUROC and Spearman's rank correlation, both
with ties counted exactly (average ranks), so a constant or heavily tied score gives the textbook value."""

from __future__ import annotations

from typing import Any

import numpy as np

from uqseg.metrics.arrays import require_same_shape as _require_same_shape
from uqseg.metrics.arrays import tie_groups as _tie_groups

__all__ = ["auroc", "average_ranks", "spearman"]


def auroc(score: Any, positive: Any) -> float:
    """Area under the ROC curve of `score` for telling `positive` samples from the others, by ranks
    (Mann–Whitney U):

        AUROC = P(score of a random positive > score of a random negative) + ½ P(equal scores)
              = U / (n_pos · n_neg),  U = Σ_pos [#negatives with a lower score + ½ #negatives with an equal score]

    Ties count one half, so a constant score gives 0.5. 1 = every positive scores above every negative, 0 = below.
    For "does the uncertainty find the errors": ``auroc(uncertainty, argmax != label)``. Unitless; NaN when there
    are no positives or no negatives (undefined).
    """
    s, pos = np.asarray(score), np.asarray(positive)
    _require_same_shape(s, pos, "score", "positive")
    s, pos = s.reshape(-1).astype(np.float64, copy=False), pos.reshape(-1) != 0
    if not np.all(np.isfinite(s)):
        raise ValueError("score must be finite")
    n_pos = int(np.count_nonzero(pos))
    n_neg = pos.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="stable")
    s_sorted, pos_sorted = s[order], pos[order]
    del order
    starts, sizes = _tie_groups(s_sorted)
    pos_per_group = np.add.reduceat(pos_sorted.astype(np.int64), starts)
    neg_per_group = sizes - pos_per_group
    neg_below = np.cumsum(neg_per_group) - neg_per_group
    u_statistic = np.sum(pos_per_group * (neg_below + 0.5 * neg_per_group))
    return float(u_statistic / (n_pos * n_neg))


def average_ranks(values: Any) -> np.ndarray:
    """Ranks 1..n of `values` (flattened), tied values sharing the mean of their ranks (float64)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    order = np.argsort(v, kind="stable")
    starts, sizes = _tie_groups(v[order])
    ranks = np.empty(v.size, dtype=np.float64)
    ranks[order] = np.repeat(starts + (sizes + 1) / 2.0, sizes)
    return ranks


def spearman(a: Any, b: Any) -> float:
    """Spearman's rank correlation of two equally long samples: the Pearson correlation of their average ranks
    (ties share the mean rank). Unitless in [-1, 1]; NaN when either sample is constant or has fewer than 2 values."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    _require_same_shape(x, y, "a", "b")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("spearman needs finite values")
    if x.size < 2:
        return float("nan")
    rx, ry = average_ranks(x), average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    return float("nan") if denominator == 0 else float((rx * ry).sum() / denominator)
