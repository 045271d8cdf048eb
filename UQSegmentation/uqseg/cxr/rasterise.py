"""Organ masks from the landmark rings: each closed ring filled as a polygon on the input's pixel grid.

A pixel [r, c] belongs to an organ when its centre (x, y) = (c, r) lies inside the organ's ring (pixel-centre
frame, see preprocess.py; even-odd rule, which equals the usual inside test for a simple polygon). Labels follow the SCR masks of the shared data: 1 right lung, 2 left lung, 3 heart; the
heart is painted last, so where the rings overlap (the heart's border over the left lung) the pixel is heart, as in
the SCR masks.
"""

from __future__ import annotations

import numpy as np

from uqseg.cxr.graph import ORGANS, organ_slices

LABELS = {"right_lung": 1, "left_lung": 2, "heart": 3}


def fill_polygon(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """bool (H, W): pixel centres inside the closed polygon `points` (n, 2) of (x, y), even-odd rule.

    Scanline fill: every row y (pixel centres) meets the edges (x₁, y₁)–(x₂, y₂) with min(y₁, y₂) ≤ y < max(y₁, y₂)
    (half-open, so a vertex on the row is counted once) at x = x₁ + (y − y₁)(x₂ − x₁)/(y₂ − y₁); the sorted
    crossings pair up into spans, and the columns c with x_left < c ≤ x_right are inside. O(rows × edges) in numpy.
    """
    h, w = shape
    pts = np.asarray(points, dtype=np.float64)
    mask = np.zeros((h, w), dtype=bool)
    if len(pts) < 3 or not np.all(np.isfinite(pts)):
        return mask
    y0 = max(int(np.ceil(pts[:, 1].min())), 0)
    y1 = min(int(np.floor(pts[:, 1].max())), h - 1)
    if y1 < y0:
        return mask
    a, b = pts, np.roll(pts, -1, axis=0)
    lo, hi = np.minimum(a[:, 1], b[:, 1]), np.maximum(a[:, 1], b[:, 1])
    rows = np.arange(y0, y1 + 1, dtype=np.float64)[:, None]
    hit = (rows >= lo) & (rows < hi)
    with np.errstate(divide="ignore", invalid="ignore"):
        xs = a[:, 0] + (rows - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
    xs = np.sort(np.where(hit, xs, np.inf), axis=1)
    for r, row_x in zip(range(y0, y1 + 1), xs):
        row_x = row_x[np.isfinite(row_x)]
        for left, right in zip(row_x[0::2], row_x[1::2]):
            c0, c1 = max(int(np.floor(left)) + 1, 0), min(int(np.floor(right)), w - 1)
            if c1 >= c0:
                mask[r, c0:c1 + 1] = True
    return mask


def organ_masks(nodes: np.ndarray, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """{organ: bool mask} of every ring of the (120, 2) node array, each filled on its own (overlaps kept)."""
    return {organ: fill_polygon(nodes[sl], shape) for organ, sl in organ_slices().items()}


def labelmap(nodes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W): 0 background, 1 right lung, 2 left lung, 3 heart (painted last)."""
    out = np.zeros(shape, dtype=np.uint8)
    masks = organ_masks(nodes, shape)
    for organ, _ in ORGANS:
        out[masks[organ]] = LABELS[organ]
    return out
