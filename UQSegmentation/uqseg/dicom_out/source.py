"""The source DICOM instances of a case: what every written DICOM object references and takes its identity from.

A derived object belongs to the patient and study of its source images and shares their Frame of Reference; it is
never given an invented patient or study. So only a case read from DICOM (one file, or a series folder for
ct-organs) can be written as DICOM: any other input (PNG, NRRD, NIfTI, ...) is refused with `InputError`, and so is a
result whose pixel grid is not the source's (`check_grid`).

Slice order: `datasets[k]` is the source instance of slice k of the case's arrays (``[slice, row, col]``): the
order `uqseg.io.dicom_series` sorts a series in (Image Position (Patient) along the slice normal), so frame k of a
SEG or Parametric Map lies on the k-th source slice. A 2-D case has one dataset. A Pixel Spacing or Imager Pixel
Spacing that is not two positive numbers (the engine ignores it when reading, `uqseg.io.dicom`) is dropped from these
headers, so that no derived object copies it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uqseg.errors import InputError
from uqseg.io.image import Image

#: Geometry of a result and its source may differ by this much (mm, and direction cosines) and still be one grid.
GRID_TOLERANCE = 1e-3


@dataclass
class DicomSource:
    """path: the input (file or series folder); files: one per slice, in slice order; datasets: their headers (pydicom
    Datasets read without pixel data; `load_pixels` adds them); image: the input as the engine read it."""

    path: Path
    files: list
    datasets: list
    image: Image

    @property
    def first(self):
        return self.datasets[0]


def refuse_unless_dicom(image: Image) -> None:
    """Raise InputError unless `image` was read from DICOM (a file or a series): --dicom cannot invent an identity."""
    fmt = image.meta.get("format")
    if fmt not in ("DICOM", "DICOM series"):
        raise InputError(image.meta.get("path"), f"--dicom needs a DICOM input: this is a {fmt or 'non-DICOM'} "
                                                 "image, which has no patient, study or frame of reference for "
                                                 "the DICOM objects to belong to (run without --dicom)")


def source_of(image: Image) -> DicomSource:
    """The source instances of `image` (read by `uqseg.io.load.load_image` from a DICOM file or series folder)."""
    import pydicom

    refuse_unless_dicom(image)
    files = list(image.meta["files"]) if image.meta.get("format") == "DICOM series" else [image.meta["path"]]
    datasets = []
    for f in files:
        try:
            datasets.append(pydicom.dcmread(f, stop_before_pixels=True))
        except Exception as e:  # the engine read it a moment ago: a file changed or removed under us
            raise InputError(f, f"cannot be read again for the DICOM objects ({e})") from None
    for ds in datasets:
        for key in ("PixelSpacing", "ImagerPixelSpacing"):
            if key in ds and not _positive_pair(ds.get(key)):
                del ds[key]  # e.g. NEMA RG1's "0\\0": the engine ignores it too; a derived object must not copy it
    first = datasets[0]
    for key in ("StudyInstanceUID", "SOPInstanceUID", "SOPClassUID"):
        if not str(first.get(key, "")).strip():
            raise InputError(files[0], f"has no {key}: the DICOM objects could not reference it")
    return DicomSource(Path(image.meta["path"]), [Path(f) for f in files], datasets, image)


def _positive_pair(value) -> bool:
    try:
        return len(value) == 2 and all(float(v) > 0 and np.isfinite(float(v)) for v in value)
    except (TypeError, ValueError):
        return False


def check_grid(source: DicomSource, shape, spacing, origin, direction, what: str) -> None:
    """Raise InputError unless a result array (shape ``[slice, row, col]``, NRRD geometry in LPS mm) lies on the
    source's pixel grid: same rows and columns and slice count; for a series also the same origin, spacing and
    direction (a 2-D projection image has no patient geometry: its pixel grid is its row / column grid)."""
    image = source.image
    want = (1,) + tuple(image.shape) if image.ndim == 2 else tuple(image.shape)
    if tuple(shape) != want:
        raise InputError(source.path, f"{what} has shape {tuple(shape)}, the source DICOM {want}: not its grid")
    if image.ndim == 3:
        sp = np.asarray(image.spacing, float)
        if (np.abs(np.asarray(spacing, float) - sp).max() > GRID_TOLERANCE
                or np.abs(np.asarray(origin, float) - np.asarray(image.origin, float)).max() > GRID_TOLERANCE
                or np.abs(np.asarray(direction, float) - np.asarray(image.direction, float)).max() > GRID_TOLERANCE):
            raise InputError(source.path, f"{what} does not lie on the source series' grid (origin, spacing or "
                                          "slice direction differ)")
