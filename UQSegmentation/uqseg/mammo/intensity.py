"""Intensity normalisation shared by training and inference of the mammography models.

Every image (8-bit PNG, 16-bit raw DICOM, windowed DICOM in 0..1) is mapped to 0..1 by its own robust range:
(x − p0.5) / (p99.5 − p0.5), clipped, where pX are percentiles of the image's pixel values. This makes an 8-bit
screen-film PNG and a 16-bit digitised film comparable without knowing their value ranges.
"""

from __future__ import annotations

import numpy as np

LOW_PERCENTILE = 0.5
HIGH_PERCENTILE = 99.5


def normalise_intensity(image: np.ndarray) -> np.ndarray:
    x = np.asarray(image, dtype=np.float32)
    sample = x[:: max(1, x.shape[0] // 512), :: max(1, x.shape[1] // 512)]
    lo, hi = np.percentile(sample, [LOW_PERCENTILE, HIGH_PERCENTILE])
    if hi <= lo:
        return np.zeros_like(x)
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
