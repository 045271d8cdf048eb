"""The robust intensity normalisation every model of the project uses, at training and at inference.

An image (8-bit PNG, 16-bit raw DICOM, windowed DICOM in 0..1) is mapped to 0..1 by its own robust range:
(x − p0.5) / (p99.5 − p0.5), clipped, where pX are percentiles of the image's pixel values. This makes an 8-bit
screen-film PNG and a 16-bit digitised film comparable without knowing their value ranges. The percentiles are taken
on a regular subsample of at most ~1000 × 1000 pixels (`sampling`):
- "per_axis" (the mammography models): every ⌊H/512⌋-th row and ⌊W/512⌋-th column;
- "uniform" (the chest X-ray model): every ⌊max(H, W)/512⌋-th row and column.
The two rules are kept because the shipped models were trained with them (they give slightly different percentiles
on non-square images). A constant image (p99.5 ≤ p0.5) maps to zeros. Input and output: float arrays ``[row, col]``.
"""

from __future__ import annotations

import numpy as np

LOW_PERCENTILE = 0.5
HIGH_PERCENTILE = 99.5
SAMPLE_PIXELS_PER_AXIS = 512


def _sample(x: np.ndarray, sampling: str) -> np.ndarray:
    if sampling == "per_axis":
        return x[:: max(1, x.shape[0] // SAMPLE_PIXELS_PER_AXIS), :: max(1, x.shape[1] // SAMPLE_PIXELS_PER_AXIS)]
    if sampling == "uniform":
        step = max(1, max(x.shape) // SAMPLE_PIXELS_PER_AXIS)
        return x[::step, ::step]
    raise ValueError(f"sampling must be 'per_axis' or 'uniform', got {sampling!r}")


def robust_unit_range(image: np.ndarray, sampling: str = "per_axis") -> np.ndarray:
    """float32 in 0..1: (x − p0.5) / (p99.5 − p0.5), clipped; zeros for a constant image (module docstring)."""
    x = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(_sample(x, sampling), [LOW_PERCENTILE, HIGH_PERCENTILE])
    if not hi > lo:
        return np.zeros_like(x)
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
