"""Pixel indices ↔ physical LPS positions of an Image (the frame every written file uses)."""

from __future__ import annotations

import numpy as np

from uqseg.io.image import Image


def index_to_lps(image: Image, cols, rows, slices=0) -> np.ndarray:
    """Pixel-centre indices (column, row[, slice]) → (N, 3) LPS positions in mm: origin + direction · (i·spacing)."""
    cols, rows, slices = np.broadcast_arrays(np.asarray(cols, float), np.asarray(rows, float), np.asarray(slices, float))
    sp = list(image.spacing) + [1.0] * (3 - len(image.spacing))
    ijk = np.stack([cols * sp[0], rows * sp[1], slices * sp[2]], axis=-1)
    return np.asarray(image.origin, float) + ijk @ np.asarray(image.direction, float).T


def volume_geometry(image: Image) -> dict:
    """spacing (3), origin, direction keyword arguments for the NRRD writers, for a 2-D image as one slice."""
    sp = tuple(image.spacing) + (1.0,) * (3 - len(image.spacing))
    return {"spacing": sp, "origin": tuple(image.origin), "direction": np.asarray(image.direction, float)}
