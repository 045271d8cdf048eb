"""Cut at the inframammary fold of an MLO view: a body part (the upper abdomen) segmented together with the breast
below it is removed (working grid, canonical side: chest wall on the left).

On an MLO view the skin line, followed downwards from the breast's widest row, runs back towards the chest wall and
ends at the inframammary fold. Abdominal skin below the fold bulges out again, so when the segmented tissue includes
it the outline has a notch: its outermost column per row, e(r), falls to a minimum at the fold and then rises again.
The rule:
1. e(r) = the outermost tissue column of row r; the widest row r_w is the arg-max of e over the rows below the
   top quarter (the axilla and the muscle at the top can be as wide as the breast);
2. going down from r_w (while rows hold tissue), keep the running minimum of e and its row r*; the first row whose e
   exceeds that minimum by `RISE_MM` is an abdominal bulge, provided the notch lies well back towards the chest wall,
   e(r*) ≤ `NOTCH_FRACTION` · e(r_w) (a notch under a nipple in profile, or the ripple of the outline, lies near the
   breast's full width);
3. then every tissue pixel below row r* becomes background (the cut runs along row r*, from the notch to the chest
   wall).
Applied only to MLO views (`predict_breast`: view code MLO/ML/…, or no view code and a pectoral muscle found); a CC
view keeps its axillary tail.

Chosen on the 40 training images (validation untouched; the rule itself was prompted by the validation image
A_0710, where the model includes part of the abdomen). On the training images, below a notch within
`NOTCH_FRACTION` of the width, the outline rises again by at most 8 px = 3.2 mm (A_0119, a small fold the reference
includes too; the network's outline after the skin-line refinement: 7 px), so `RISE_MM` = 5 mm (≈ 1.5 × that)
leaves every training image unchanged. Notches nearer the full width (rises of up to 8 px after a notch at 0.9–0.98
of the width: the outline's ripple and the nipple in profile) are excluded by `NOTCH_FRACTION`.
"""

from __future__ import annotations

import numpy as np

from uqseg.mammo.breast_model import BACKGROUND

RISE_MM = 5.0
NOTCH_FRACTION = 0.6


def fold_row(label: np.ndarray, pixel_mm: float) -> int | None:
    """The row r* of the fold notch (module docstring), or None when the outline has none."""
    tissue = np.asarray(label) != BACKGROUND
    h, w = tissue.shape
    has = tissue.any(axis=1)
    e = np.where(has, w - 1 - np.argmax(tissue[:, ::-1], axis=1), -1)
    start = h // 4
    if not has[start:].any():
        return None
    widest = start + int(np.argmax(e[start:]))
    rise = RISE_MM / pixel_mm
    low, low_row = e[widest], widest
    for r in range(widest + 1, h):
        if e[r] < 0:
            break
        if e[r] < low:
            low, low_row = e[r], r
        if e[r] - low >= rise and low <= NOTCH_FRACTION * e[widest]:
            return low_row
    return None


def cut_below_fold(label: np.ndarray, pixel_mm: float) -> tuple[np.ndarray, int | None]:
    """(label map with the tissue below the fold notch removed, the notch row or None when nothing was cut)."""
    row = fold_row(label, pixel_mm)
    if row is None:
        return label, None
    out = np.array(label, copy=True)
    out[row + 1:] = BACKGROUND
    return out, row
