"""Canonical orientation of mammograms: chest wall on the LEFT of the image.

Which side the chest wall is on is decided, in this order:
  1. DICOM PatientOrientation with two values (row direction, column direction), as PS3.3 C.7.6.1.1.1 defines it:
     the first value is the patient direction of increasing column index; 'P' (towards the chest wall) means the
     chest wall is on the right, 'A' on the left.
  2. Otherwise from the pixels: the chest-wall edge is the one the breast tissue touches. We compare the mean
     normalised intensity of a band 5–15 % of the width in from each side, over the middle 80 % of the rows (the
     outermost 5 % are skipped: digitised films often carry bright border stripes there).
Laterality (L/R) is recorded but not used: its relation to the image side depends on how the image was stored.
"""

from __future__ import annotations

import numpy as np

from uqseg.errors import InputError
from uqseg.io.image import Image
from uqseg.transforms.intensity import robust_unit_range

CC_VIEWS = {"CC", "XCCL", "XCCM", "FB", "CCID", "RCC", "LCC"}
MLO_VIEWS = {"MLO", "ML", "LM", "LMO", "SIO", "RMLO", "LMLO"}


def chest_wall_side(image: Image) -> tuple[str, str]:
    """('left' | 'right', how it was decided)."""
    po = image.meta.get("patient_orientation")
    if isinstance(po, (list, tuple)) and len(po) == 2 and po[0]:
        first = str(po[0]).upper()
        if first.startswith("P"):
            return "right", "PatientOrientation"
        if first.startswith("A"):
            return "left", "PatientOrientation"
    x = robust_unit_range(image.array)
    h, w = x.shape
    rows = slice(int(0.1 * h), max(int(0.9 * h), int(0.1 * h) + 1))
    a, b = int(0.05 * w), max(int(0.15 * w), int(0.05 * w) + 1)
    left = x[rows, a:b].mean()
    right = x[rows, w - b : w - a].mean()
    return ("left" if left >= right else "right"), "intensity"


def require_mlo(image: Image) -> None:
    """Refuse a view known (from its DICOM tags) to be cranio-caudal: the pectoral boundary model needs MLO."""
    view = (image.meta.get("view") or "").upper()
    if view in CC_VIEWS:
        raise InputError(
            image.meta.get("path"),
            f"is a cranio-caudal view ({view!r} in its DICOM tags); the pectoral-boundary model needs an MLO view",
        )


def canonicalise(image: Image) -> tuple[np.ndarray, bool, str]:
    """(array with the chest wall on the left, whether it was flipped left-right, how the side was decided)."""
    side, source = chest_wall_side(image)
    arr = image.array
    if side == "right":
        return np.ascontiguousarray(arr[:, ::-1]), True, source
    return arr, False, source
