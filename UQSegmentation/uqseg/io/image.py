"""The image type every task consumes: pixels plus geometry plus the acquisition facts a task needs.

Conventions (the same as ITK / NRRD / DICOM):
- `array` is float32, indexed ``[row, col]`` for 2-D images and ``[slice, row, col]`` for volumes.
- `spacing` is in millimetres in (x, y[, z]) = (column, row[, slice]) order.
- `origin` (mm) and `direction` (3×3, columns are the index axes) are in the patient LPS frame.
  A 2-D image is a one-slice volume: origin and direction are still 3-D.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np


@dataclass
class Image:
    array: np.ndarray
    spacing: tuple[float, ...] = (1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    # Acquisition facts, each None when unknown: modality ("MG", "CR", "DX", "CT", "OT" for plain pictures),
    # laterality ("L"/"R"), view ("MLO"/"CC"/...), photometric ("MONOCHROME1"/"MONOCHROME2" as stored),
    # presentation_intent ("FOR PRESENTATION"/"FOR PROCESSING"), spacing_source (which tag gave the spacing or
    # "default"), path (the file it came from), and anything else a loader documents.
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ndim(self) -> int:
        return self.array.ndim

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    def with_array(self, array: np.ndarray) -> "Image":
        """A copy with other pixels on the same grid (same shape), e.g. a flipped or windowed image."""
        if array.shape != self.array.shape:
            raise ValueError(f"shape {array.shape} differs from the image's {self.array.shape}")
        return replace(self, array=array, meta=dict(self.meta))
