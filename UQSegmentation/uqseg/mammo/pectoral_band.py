"""The ±σ band of the pectoral boundary as a pixel mask — one definition for the Slicer display, the review's
corrected-label check and the DICOM Parametric Map.

The boundary (``boundary.csv``) gives, per image row r that holds muscle, the mean boundary column μ_r and its
standard deviation σ_r, both in input pixels (column indices of pixel centres). A pixel (r, c) lies in the band when
row r is listed and |c − μ_r| ≤ max(σ_r, min_half_width). ``min_half_width`` = ½ makes a row whose σ is below half a
pixel still mark its boundary pixel (the Parametric Map wants every muscle row visible); the display uses 0, the
band exactly as the model states it.
"""

from __future__ import annotations

import numpy as np


def band_mask(rows, mean_col, std_col, shape, only=None, min_half_width: float = 0.0) -> np.ndarray:
    """(H, W) bool band mask on the input's pixel grid ``[row, col]``.

    rows, mean_col, std_col: one entry per listed row (row index, μ and σ in input columns); rows outside the image or
    with a non-finite μ / σ are left out. only: optional bool per listed row; rows where it is False are left out
    (e.g. only the multimodal rows). min_half_width: the band's smallest half width in pixels (see module docstring).
    """
    h, w = int(shape[0]), int(shape[1])
    rows = np.asarray(rows, int)
    mean = np.asarray(mean_col, float)
    std = np.abs(np.asarray(std_col, float))
    keep = (rows >= 0) & (rows < h) & np.isfinite(mean) & np.isfinite(std)
    if only is not None:
        keep &= np.asarray(only, bool)
    rows, mean, std = rows[keep], mean[keep], np.maximum(std[keep], float(min_half_width))
    mask = np.zeros((h, w), bool)
    if rows.size == 0:
        return mask
    cols = np.arange(w, dtype=float)[None, :]
    mask[rows] = np.abs(cols - mean[:, None]) <= std[:, None]
    return mask


def band_values(rows, mean_col, std_col, shape, min_half_width: float = 0.5) -> np.ndarray:
    """(H, W) float32: σ_r painted on row r's band (``band_mask`` with ``min_half_width``), 0 elsewhere; input pixels.

    A row listed twice keeps its last σ, as a row-by-row painting would.
    """
    out = np.zeros((int(shape[0]), int(shape[1])), np.float32)
    rows = np.asarray(rows, int)
    mean = np.asarray(mean_col, float)
    std = np.asarray(std_col, float)
    for i in range(rows.size):
        one = band_mask(rows[i:i + 1], mean[i:i + 1], std[i:i + 1], shape, min_half_width=min_half_width)
        out[one] = np.float32(std[i])
    return out
