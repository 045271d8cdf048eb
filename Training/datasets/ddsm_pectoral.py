"""DDSM MLO mammograms with manual pectoral-muscle labels (../shared/data/mammo_ddsm) as tensors for training.

Images are 960 × 480 8-bit PNGs; labels are PNGs with 0 background, 1 fatty, 2 fibroglandular, 3 pectoral muscle.
The data README says the images are flipped so the chest wall is on the left, but 10 of the 50 (the nine B_36xx
cases and D_4597) have it on the RIGHT, image and label alike. We therefore canonicalise each case from its label:
when the pectoral muscle's mean column lies in the right half, image and label are flipped left-right. The fixed validation split is every 5th image in sorted
file-name order (10 of 50); the other 40 train.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image as PILImage

from uqseg.transforms.intensity import robust_unit_range

PECTORAL_LABEL = 3
WORK_SHAPE = (512, 256)  # rows, columns at which images are augmented (before padding and resizing to the grid)


def list_cases(root: Path) -> list[str]:
    return sorted(p.name for p in (Path(root) / "images").glob("*.png"))


def split(names: list[str]) -> tuple[list[str], list[str]]:
    """(train, val): every 5th name in sorted order is validation."""
    names = sorted(names)
    val = names[4::5]
    return [n for n in names if n not in val], val


def load_case(root: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(image float32 in 0..1 after the model's intensity normalisation, pectoral mask float32 0/1) at full size,
    both in canonical orientation (chest wall on the left)."""
    root = Path(root)
    img = np.asarray(PILImage.open(root / "images" / name), dtype=np.float32)
    muscle = (np.asarray(PILImage.open(root / "labels" / name)) == PECTORAL_LABEL).astype(np.float32)
    if chest_wall_on_right(muscle):
        img, muscle = img[:, ::-1].copy(), muscle[:, ::-1].copy()
    return robust_unit_range(img), muscle


def chest_wall_on_right(muscle: np.ndarray) -> bool:
    """True when the labelled pectoral muscle lies mostly in the right half of the image."""
    cols = np.nonzero(muscle)[1]
    return cols.size > 0 and cols.mean() > muscle.shape[1] / 2


def load_tensors(root: Path, names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and muscle masks resized to WORK_SHAPE: (N, 1, 512, 256) each; masks as area fractions in [0, 1]."""
    imgs, masks = [], []
    for n in names:
        i, m = load_case(root, n)
        imgs.append(torch.from_numpy(i)[None, None])
        masks.append(torch.from_numpy(m)[None, None])
    imgs = F.interpolate(torch.cat(imgs), size=WORK_SHAPE, mode="area")
    masks = F.interpolate(torch.cat(masks), size=WORK_SHAPE, mode="area")
    return imgs, masks
