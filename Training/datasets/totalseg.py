"""CT cases with organ labels for the ct-organs model: the TotalSegmentator folder layout and the shared sample.

TotalSegmentator layout (the public data set, https://zenodo.org/record/6802614 — one folder per case):

    <root>/<case>/ct.nii.gz
    <root>/<case>/segmentations/<organ>.nii.gz      one binary mask per structure (liver.nii.gz, spleen.nii.gz, ...)

`load_totalseg_case(case_dir, organs)` reads the CT and the masks of `organs` (in that order → labels 1, 2, ...;
later organs win where masks overlap) onto the CT's own grid (masks with another geometry are resampled by
physical position, nearest neighbour).

Shared sample (`../shared/data/ct_totalseg`): the 20-slice abdominal DICOM series `example_ct_dicom/` and its
117-class TotalSegmentator v2 label map `example_seg_dicom.nii.gz`, whose direction differs from the series' (its y
axis is flipped), so it is aligned by physical position. `TOTALSEG_V2_LABELS` maps organ names to that map's ids.
These labels are TotalSegmentator model outputs, not manual delineations.

Every case: an `Image` of HU (the loader's LPS geometry) and a uint8 label array on the same grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uqseg.ct.preprocess import WorkingGrid, label_to_image_grid, label_to_working_grid
from uqseg.io.image import Image
from uqseg.io.load import load_image

#: ids of the TotalSegmentator v2 multi-label map (subset used here)
TOTALSEG_V2_LABELS = {"spleen": 1, "kidney_right": 2, "kidney_left": 3, "gallbladder": 4, "liver": 5, "stomach": 6,
                      "pancreas": 7, "adrenal_gland_right": 8, "adrenal_gland_left": 9, "heart": 51, "aorta": 52}


@dataclass
class CtCase:
    name: str
    image: Image  # HU, LPS geometry
    label: np.ndarray  # uint8 on the image grid: 0 background, i = organs[i - 1]
    organs: list[str]


def load_totalseg_case(case_dir: Path, organs: list[str]) -> CtCase:
    case_dir = Path(case_dir)
    image = load_image(case_dir / "ct.nii.gz", ndim=3)
    label = np.zeros(image.shape, np.uint8)
    for i, organ in enumerate(organs, start=1):
        path = case_dir / "segmentations" / f"{organ}.nii.gz"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no mask for {organ!r} in this TotalSegmentator case")
        label[label_to_image_grid(load_image(path, ndim=3), image) > 0] = i
    return CtCase(case_dir.name, image, label, list(organs))


def list_totalseg_cases(root: Path) -> list[Path]:
    return sorted(p for p in Path(root).iterdir() if (p / "ct.nii.gz").is_file())


def load_shared_abdomen(ct_root: Path, organs: list[str]) -> CtCase:
    """The shared 20-slice abdominal DICOM series with the chosen organs of its TotalSegmentator v2 label map."""
    ct_root = Path(ct_root)
    image = load_image(ct_root / "example_ct_dicom", ndim=3)
    seg = label_to_image_grid(load_image(ct_root / "example_seg_dicom.nii.gz", ndim=3), image)
    label = np.zeros(image.shape, np.uint8)
    for i, organ in enumerate(organs, start=1):
        label[seg == TOTALSEG_V2_LABELS[organ]] = i
    return CtCase("example_ct_dicom", image, label, list(organs))


def label_on_working_grid(case: CtCase, grid: WorkingGrid) -> np.ndarray:
    """The case's label on a working grid (nearest neighbour, by physical position): uint8 (z, y, x)."""
    return label_to_working_grid(Image(case.label, case.image.spacing, case.image.origin, case.image.direction),
                                 grid)
