"""DDSM MLO mammograms (../shared/data/mammo_ddsm) as background / breast / pectoral training data for mammo-breast.

Labels: the PNG labels hold 0 background, 1 fatty, 2 fibroglandular, 3 pectoral muscle; here breast = fatty +
fibroglandular (class 1) and pectoral = label 3 (class 2), background 0.

Orientation: the data README says the chest wall is on the left, but 10 of the 50 images (the nine B_36xx and
D_4597) have it on the RIGHT, image and label alike. As for the pectoral model, each case is canonicalised from its
label (`ddsm_pectoral.chest_wall_on_right`: the pectoral muscle's mean column in the right half → flip).

Every image goes through the inference preprocessing (`uqseg.mammo.breast_preprocess.prepare`, loading the PNG with
`uqseg.io.load_image` exactly as `uqseg predict` does): the PNGs have no spacing, so the documented fallback applies
(long side 960 px = 240 mm → 0.25 mm pixels → a 600 × 300 working image at 0.4 mm). Labels are resampled onto the
same working grid (anti-aliased one-hot, arg-max).

Split: the one of the pectoral model (`ddsm_pectoral.split`): every 5th name in sorted order is validation (10 of 50).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image as PILImage

from datasets.ddsm_pectoral import PECTORAL_LABEL, chest_wall_on_right, list_cases, split  # noqa: F401
from uqseg.io import load_image
from uqseg.mammo.breast_preprocess import Prepared, prepare, to_working_grid

__all__ = ["Case", "list_cases", "split", "load_case", "load_cases", "label_classes"]


def label_classes(label_png: np.ndarray) -> np.ndarray:
    """DDSM label values (0 bg, 1 fatty, 2 fibroglandular, 3 pectoral) → classes 0 bg, 1 breast, 2 pectoral."""
    lab = np.asarray(label_png)
    out = np.zeros(lab.shape, np.uint8)
    out[(lab == 1) | (lab == 2)] = 1
    out[lab == PECTORAL_LABEL] = 2
    return out


@dataclass
class Case:
    name: str
    prepared: Prepared  # working image (canonical, 0.4 mm)
    work_label: np.ndarray  # (h, w) int64 classes on the working grid
    label: np.ndarray  # (H, W) uint8 classes on the input grid, in the file's own orientation
    path: Path


def load_case(root: Path, name: str) -> Case:
    root = Path(root)
    path = root / "images" / name
    image = load_image(path)
    label = label_classes(np.asarray(PILImage.open(root / "labels" / name)))
    flip = chest_wall_on_right(label == 2)
    prepared = prepare(image, flip=flip)
    onehot = np.stack([(label == k).astype(np.float32) for k in range(3)])
    work_label = to_working_grid(onehot, prepared).argmax(dim=0).numpy().astype(np.int64)
    return Case(name, prepared, work_label, label, path)


def load_cases(root: Path, names: list[str]) -> list[Case]:
    return [load_case(root, n) for n in names]


def stack(cases: list[Case]) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 1, h, w) images and (N, h, w) labels; all cases must share the working shape (the DDSM PNGs do)."""
    imgs = torch.stack([torch.from_numpy(c.prepared.array)[None] for c in cases])
    labs = torch.stack([torch.from_numpy(c.work_label) for c in cases])
    return imgs, labs
