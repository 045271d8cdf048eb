"""Array checks and chunking shared by the metrics (`uqseg.metrics`)."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

#: Voxels handled at once; bounds the temporary memory of the volume metrics.
CHUNK_VOXELS = 1 << 20


def chunks(n: int) -> Iterator[slice]:
    """Slices of at most CHUNK_VOXELS covering range(n)."""
    for start in range(0, n, CHUNK_VOXELS):
        yield slice(start, min(n, start + CHUNK_VOXELS))


def require_same_shape(a: np.ndarray, b: np.ndarray, what_a: str, what_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what_a} and {what_b} must have the same shape, got {a.shape} and {b.shape}")


def as_labels(label: Any, what: str) -> np.ndarray:
    """`label` as an integer array of non-negative class indices; ValueError naming `what` otherwise."""
    lab = np.asarray(label)
    if lab.dtype.kind not in "iub":
        raise ValueError(f"{what} must be an integer array, got dtype {lab.dtype}")
    if lab.size and lab.min() < 0:
        raise ValueError(f"{what} must hold non-negative class indices, got minimum {lab.min()}")
    return lab


def tie_groups(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start index and size of each run of equal values in a sorted array."""
    n = sorted_values.size
    starts = np.flatnonzero(np.concatenate([[True], sorted_values[1:] != sorted_values[:-1]]))
    return starts, np.diff(np.append(starts, n))
