"""Corrections of label maps restricted to where the model is unsure (ct-organs, mammo-breast): pure numpy.

Arrays are label maps / uncertainty maps on the INPUT grid, indexed ``[row, col]`` (2-D) or ``[slice, row, col]``
(3-D), the grid of segmentation.seg.nrrd / variance.nrrd / uncertainty.nrrd. Spacing is in mm in the project's
(x = col, y = row[, z = slice]) order, as `Image.spacing`.

- `editable_mask`: the area an edit may touch — voxels whose uncertainty exceeds the threshold, grown by
  `dilate_mm` (Euclidean distance in mm, so anisotropic voxels grow by the same physical margin), so that the user
  can move a boundary a little past the uncertain band.
- `apply_restricted_edit`: a brush / paint / erase stroke applied ONLY inside the editable area: a voxel outside it
  (a confident voxel) never changes, whatever the stroke covers.
- `accept_alternative`: the "accept the alternative" action for one region: its voxels take the alternative label
  (breast: the runner-up class per pixel, `runner_up_label`; CT: the label map of a chosen sample); everything
  outside the region is left as it is.
Every function returns new arrays and never modifies its inputs.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

from uqseg.correction.regions import voxel_size_mm


def editable_mask(uncertainty: np.ndarray, threshold: float, *, dilate_mm: float = 0.0,
                  spacing: Sequence[float] = (1.0, 1.0, 1.0), restrict_to: np.ndarray | None = None) -> np.ndarray:
    """bool mask: uncertainty > threshold (NaN = not uncertain), grown by `dilate_mm` mm.

    dilate_mm: a voxel joins when the Euclidean distance (mm, with `spacing`) from its centre to the nearest
    uncertain voxel's centre is ≤ dilate_mm; 0 = no growth. restrict_to: an optional bool mask the result is
    intersected with (e.g. a body mask). To edit one region of `component_regions` only, pass
    ``regions.mask(id).astype(float)`` as `uncertainty` with threshold 0.5."""
    u = np.asarray(uncertainty, dtype=np.float64)
    core = np.nan_to_num(u, nan=-np.inf) > threshold
    if dilate_mm < 0:
        raise ValueError(f"dilate_mm must be ≥ 0, got {dilate_mm}")
    if dilate_mm > 0 and core.any() and not core.all():
        dist = ndimage.distance_transform_edt(~core, sampling=voxel_size_mm(spacing, u.ndim))
        core = dist <= dilate_mm
    if restrict_to is not None:
        restrict = np.asarray(restrict_to, dtype=bool)
        if restrict.shape != core.shape:
            raise ValueError(f"restrict_to has shape {restrict.shape}, the map {core.shape}")
        core &= restrict
    return core


def _check_same_shape(**arrays) -> tuple:
    shapes = {k: np.shape(v) for k, v in arrays.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"shapes differ: {shapes}")
    return next(iter(shapes.values()))


def apply_restricted_edit(label: np.ndarray, edit: np.ndarray, editable: np.ndarray, segment: int, *,
                          erase: bool = False, background: int = 0) -> np.ndarray:
    """The label map after a stroke, applied only where `editable` is True.

    label: integer label map. edit: bool mask of the voxels the stroke covers (brush, paint, scissors, ...).
    editable: bool mask from `editable_mask`. segment: the label value being edited.
    Paint (erase=False): covered editable voxels become `segment`. Erase: covered editable voxels that hold
    `segment` become `background`; other labels are left alone. Voxels outside `editable` never change."""
    _check_same_shape(label=label, edit=edit, editable=editable)
    lab = np.asarray(label)
    if lab.dtype.kind not in "iub":
        raise ValueError(f"label must be an integer label map, got dtype {lab.dtype}")
    out = lab.copy()
    touch = np.asarray(edit, dtype=bool) & np.asarray(editable, dtype=bool)
    if erase:
        out[touch & (lab == segment)] = background
    else:
        out[touch] = segment
    return out


def accept_alternative(label: np.ndarray, region_mask: np.ndarray, alternative_label) -> np.ndarray:
    """The label map with the region's voxels replaced by the alternative.

    region_mask: bool mask of the region (e.g. `ComponentRegions.mask(id)`); alternative_label: an integer map of
    the same shape (the runner-up class, a sample's label map) or one integer for the whole region."""
    lab = np.asarray(label)
    region = np.asarray(region_mask, dtype=bool)
    _check_same_shape(label=lab, region_mask=region)
    out = lab.copy()
    alt = np.asarray(alternative_label)
    if alt.ndim == 0:
        out[region] = alt.astype(lab.dtype)
    else:
        _check_same_shape(label=lab, alternative_label=alt)
        out[region] = alt[region].astype(lab.dtype)
    return out


def runner_up_label(probabilities: np.ndarray, axis: int = 0) -> np.ndarray:
    """Per voxel, the class with the SECOND highest probability (int64). probabilities: class axis `axis`
    (e.g. the mean softmax (C, H, W) of MC dropout, on the same grid as the label map)."""
    p = np.moveaxis(np.asarray(probabilities, dtype=np.float64), axis, 0)
    if p.shape[0] < 2:
        raise ValueError("need at least two classes for a runner-up")
    order = np.argsort(-p, axis=0, kind="stable")
    return order[1].astype(np.int64)
