"""A click of "Paint in region" → the brush stroke the review session applies (`ReviewSession.paint`).

Frames. `ijk_to_ras` is the input volume's 4 × 4 IJK→RAS matrix (i = column, j = row, k = slice; mm); the click is
a RAS point (mm) on the slice view's plane. The stroke is a bool mask on the input grid, ``[row, col]`` for a 2-D
image or ``[slice, row, col]`` for a volume: every voxel whose centre lies within `radius_mm` of the click, and for
a volume only on the slice through the click (what the user sees) — a disc, like the Segment Editor's 2-D paint
brush. Which of those voxels may change is the session's business (the region's editable area).
"""

from __future__ import annotations

import numpy as np


def disc_stroke(ijk_to_ras: np.ndarray, shape: tuple, ras, radius_mm: float) -> np.ndarray:
    m = np.asarray(ijk_to_ras, float)
    ras = np.asarray(ras, float)
    idx = np.indices(shape).reshape(len(shape), -1).T.astype(float)  # (slice,) row, col
    ijk = np.stack([idx[:, -1], idx[:, -2], idx[:, 0] if len(shape) == 3 else np.zeros(len(idx))], axis=1)
    world = ijk @ m[:3, :3].T + m[:3, 3]
    stroke = (np.linalg.norm(world - ras, axis=1) <= float(radius_mm)).reshape(shape)
    if len(shape) == 3:  # only the slice shown
        k = int(round(np.linalg.solve(m, np.array([*ras, 1.0]))[2]))
        keep = np.zeros(shape, bool)
        if 0 <= k < shape[0]:
            keep[k] = True
        stroke &= keep
    return stroke
