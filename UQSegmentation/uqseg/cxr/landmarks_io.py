"""The shared landmark JSON format (HybridGNet / CheXmask convention) ↔ the (120, 2) node array of the model.

A file `landmarks/NAME.json` holds `right_lung` (44), `left_lung` (50), `heart` (26) lists of [x, y], `split`
('train' / 'val'), `image` and `space`. Its coordinates are continuous image coordinates with the origin at the
top-left CORNER of the top-left pixel (pixel [r, c] spans x ∈ [c, c + 1]): filling the rings with pixel centres at
(c + ½, r + ½) reproduces the SCR masks best (mean Dice 0.995 vs 0.992 with centres at (c, r), on 25 images).
`read_landmarks` therefore returns pixel-centre indices, x_index = x_json − ½ (the frame of all outputs), and
`to_json_coordinates` is its inverse.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from uqseg.cxr.graph import ORGANS

CORNER_TO_CENTRE = -0.5


def read_landmarks(path: str | Path) -> tuple[np.ndarray, dict]:
    """(nodes (120, 2) float64 pixel-centre (x, y) in the order right lung, left lung, heart; the other keys)."""
    data = json.loads(Path(path).read_text())
    parts = []
    for organ, n in ORGANS:
        pts = np.asarray(data.get(organ), dtype=np.float64)
        if pts.shape != (n, 2):
            raise ValueError(f"{path}: {organ} must be {n} (x, y) points, got shape {pts.shape}")
        parts.append(pts)
    meta = {k: v for k, v in data.items() if k not in dict(ORGANS)}
    return np.concatenate(parts) + CORNER_TO_CENTRE, meta


def to_json_coordinates(nodes: np.ndarray) -> dict[str, list]:
    """(120, 2) pixel-centre nodes → {organ: [[x, y], ...]} in the file's corner-origin coordinates."""
    nodes = np.asarray(nodes, dtype=np.float64) - CORNER_TO_CENTRE
    out, start = {}, 0
    for organ, n in ORGANS:
        out[organ] = nodes[start:start + n].round(3).tolist()
        start += n
    return out
