"""A synthetic frontal chest radiograph with known landmark rings, for tests and the benchmark (no data needed).

The rings are ellipses sampled with the model's node counts (right lung 44 on the image's LEFT — the patient's right
in a PA view —, left lung 50 on the right, heart 26 low in the middle, overlapping the left lung's inner border);
pixels inside a lung are dark (0.15), inside the heart mid-grey (0.55), the body bright (0.75) and outside the body
dark (0.05), plus mild smooth noise; values 0..255. Node positions are pixel-centre (x, y) of the returned image.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from uqseg.cxr.graph import ORGANS
from uqseg.cxr.rasterise import fill_polygon

# (centre x, centre y, semi-axis x, semi-axis y) as fractions of (W, H), start angle (radians, 0 = top, clockwise)
_ELLIPSES = {"right_lung": (0.31, 0.46, 0.14, 0.33), "left_lung": (0.69, 0.46, 0.14, 0.33),
             "heart": (0.55, 0.68, 0.15, 0.12)}


def ring(organ: str, n: int, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    cx, cy, ax, ay = _ELLIPSES[organ]
    t = np.arange(n) / n * 2 * np.pi
    sign = -1.0 if organ == "right_lung" else 1.0  # right lung drawn anticlockwise, as in the annotations
    return np.column_stack([cx * w + sign * ax * w * np.sin(t) - 0.5, cy * h - ay * h * np.cos(t) - 0.5])


def chest_phantom(shape: tuple[int, int] = (512, 512), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(image float32 0..255 (H, W), nodes (120, 2) pixel-centre (x, y))."""
    h, w = shape
    rng = np.random.default_rng(seed)
    nodes = np.concatenate([ring(organ, n, shape) for organ, n in ORGANS])
    yy, xx = np.mgrid[0:h, 0:w]
    body = ((xx - w / 2) / (0.46 * w)) ** 2 + ((yy - 0.55 * h) / (0.6 * h)) ** 2 <= 1.0
    img = np.where(body, 0.75, 0.05)
    start = 0
    for organ, n in ORGANS:
        inside = fill_polygon(nodes[start:start + n], shape)
        img = np.where(inside, 0.55 if organ == "heart" else 0.15, img)
        start += n
    img = gaussian_filter(img, 1.5) + 0.03 * gaussian_filter(rng.standard_normal(shape), 3.0) * 3
    return (np.clip(img, 0, 1) * 255).astype(np.float32), nodes
