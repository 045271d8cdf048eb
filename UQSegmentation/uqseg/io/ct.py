"""`require_ct`: is a loaded volume plausibly a CT in Hounsfield units, thick enough for a 3-D model?

A DICOM series carries its modality, and then only "CT" passes. NIfTI / NRRD / MetaImage files carry none
(``meta["modality"] is None``), so the intensities decide, on what every CT in HU shows and MR images, masks,
label maps and display exports do not:
- air: the 1st percentile is below `AIR_PERCENTILE_MAX_HU` (-500) and the minimum reaches `AIR_HU` (-900) or lower;
- dense tissue: the maximum is above `DENSE_MIN_HU` (100);
- not a mask / label map (few distinct non-negative integers), not normalised to [0, 1], not 8-bit [0, 255].
A crop that holds no air at all (e.g. inside the liver only) is refused too: the CT models need context anyway.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uqseg.errors import InputError
from uqseg.io.image import Image

#: Fewer slices than this is too thin a volume for the 3-D CT models.
MIN_SLICES = 8
AIR_HU = -900.0
AIR_PERCENTILE_MAX_HU = -500.0
DENSE_MIN_HU = 100.0
#: Non-negative integer volumes with at most this many distinct values are taken for label maps.
MAX_LABELS = 256
#: Intensity statistics are computed on at most this many voxels (an even subsample of the volume).
_SAMPLE_VOXELS = 2_000_000


def _describe_modality(modality: str) -> str:
    article = "an" if modality[0] in "AEFHILMNORSX" else "a"
    return f"{article} {modality} image (Modality {modality})"


def _intensity_reason(values: np.ndarray) -> str | None:
    """Why these voxel values (finite, any order: a subsample is fine) are not CT in HU, or None when they look
    like CT."""
    low, high = float(values.min()), float(values.max())
    integer = bool(np.all(values == np.round(values)))
    if low >= 0 and high <= 1:
        if integer:
            return "looks like a binary mask (values only 0 and 1), not a CT image in Hounsfield units"
        return "has intensities normalised to [0, 1], not Hounsfield units: pass the original CT"
    if integer and low >= 0:
        count = len(np.unique(values))
        if count <= MAX_LABELS:
            return (f"looks like a label map or mask ({count} distinct integer values from {low:g} to {high:g}), "
                    "not a CT image in Hounsfield units")
    if low >= 0 and high <= 255:
        return "has intensities in [0, 255] (an 8-bit display export?), not Hounsfield units: pass the original CT"
    p1 = float(np.percentile(values, 1))
    if p1 >= AIR_PERCENTILE_MAX_HU or low > AIR_HU:
        return (f"does not look like CT in Hounsfield units: no air (about -1000 HU) in it (minimum {low:g}, "
                f"1st percentile {p1:g}); an MR image or a CT without its HU rescale looks like this")
    if high <= DENSE_MIN_HU:
        return (f"does not look like CT in Hounsfield units: nothing denser than water (maximum {high:g}, "
                f"expected soft tissue and bone above {DENSE_MIN_HU:g} HU)")
    return None


def require_ct(image: Image, path: str | Path | None = None) -> Image:
    """Return `image` when it is a CT volume ``[slice, row, col]`` with at least `MIN_SLICES` slices, in HU.

    `path` names the input in the error. Raises `InputError(path, reason)` for a 2-D image, a volume thinner than
    `MIN_SLICES`, a known modality other than CT, or — modality unknown — intensities that are not HU-like
    (see the module docstring: MR, masks, label maps, normalised or 8-bit images).
    """
    path = path if path is not None else image.meta.get("path")
    if image.ndim != 3:
        raise InputError(path, "is a 2-D image; this task needs a 3-D CT volume")
    slices = image.shape[0]
    if slices < MIN_SLICES:
        raise InputError(
            path,
            f"has only {slices} slice{'s' if slices != 1 else ''}; the 3-D CT model needs at least {MIN_SLICES} "
            "(too thin a volume)",
        )
    modality = image.meta.get("modality")
    if modality:
        modality = str(modality).upper()
        if modality != "CT":
            raise InputError(path, f"is {_describe_modality(modality)}; this task needs a CT volume")
        return image
    values = np.asarray(image.array).ravel()
    if values.size > _SAMPLE_VOXELS:
        values = values[:: values.size // _SAMPLE_VOXELS]
    if not np.all(np.isfinite(values)):
        values = values[np.isfinite(values)]
        if values.size == 0:
            raise InputError(path, "has no finite voxel values")
    reason = _intensity_reason(values)
    if reason is not None:
        raise InputError(path, reason)
    return image
