"""Patch sampling and augmentation for the ct-organs model (heavy, because the shipped model sees one patient).

`sample_patch(volume, label, patch, rng, foreground=1/3)` cuts a region of `patch` + `MARGIN` voxels (z, y, x) from
the working-grid volume (normalised HU, (z, y, x)) and its label: with probability `foreground` centred on a voxel of
a randomly chosen organ present in the volume (foreground oversampling as in nnU-Net, every organ equally likely so
small ones are seen), otherwise anywhere. Outside the volume the image is padded with −1 (air after normalisation)
and the label with `IGNORE` (not counted by the loss).

`augment(image, label, patch, seed)` (MONAI, one resampling): rotation (±15° in-plane about z, ±3° about x and y),
scaling 0.85–1.15 per axis, a smooth elastic deformation, output centred at `patch`; then gamma 0.7–1.5, intensity
scale ±10 % and shift ±0.1 (≈ ±30 HU), Gaussian noise (σ ≤ 0.05) and, sometimes, Gaussian blur. No mirroring: the
organs are sided.
`build_augmentation(patch, scanner=True)` (issue 18: a model that must hold on another patient and scanner) adds
after those: a coarser acquisition — `RandSimulateLowResolutiond`, down-sampled by 0.5–1.0 and back (spacing
jitter on top of the 0.85–1.15 scaling), p = 0.25; a second intensity change of ±15 % scale and ±0.15 shift
(≈ ±45 HU: another scanner's calibration / contrast phase), p = 0.3; scanner noise of σ ≤ 0.1 (≈ 30 HU), p = 0.3.
`device` runs the resampling on that torch device (the GPU training machine).
"""

from __future__ import annotations

import numpy as np
import torch
from monai.transforms import (Compose, Rand3DElasticd, RandAdjustContrastd, RandGaussianNoised,
                              RandGaussianSmoothd, RandScaleIntensityd, RandShiftIntensityd,
                              RandSimulateLowResolutiond)

IGNORE = 255
MARGIN = (2, 32, 32)


def sample_patch(volume: np.ndarray, label: np.ndarray, patch: tuple[int, int, int], rng: np.random.Generator,
                 foreground: float = 1 / 3, z_range: tuple[int, int] | None = None):
    """(image, label) regions of size patch + MARGIN around a sampled centre; `z_range` = (z0, z1) restricts the
    centre AND the content to those slices (the rest of the region is padding / IGNORE)."""
    z0, z1 = z_range or (0, volume.shape[0])
    size = [p + m for p, m in zip(patch, MARGIN)]
    organs = [c for c in np.unique(label[z0:z1]) if c not in (0, IGNORE)]
    if organs and rng.random() < foreground:
        organ = rng.choice(organs)
        zz, yy, xx = np.nonzero(label[z0:z1] == organ)
        i = rng.integers(zz.size)
        centre = (zz[i] + z0, yy[i], xx[i])
    else:
        centre = (rng.integers(z0, z1), rng.integers(volume.shape[1]), rng.integers(volume.shape[2]))
    img = np.full(size, -1.0, np.float32)
    lab = np.full(size, IGNORE, np.uint8)
    src, dst = [], []
    for axis, (c, s) in enumerate(zip(centre, size)):
        lo = int(c) - s // 2
        lim_lo, lim_hi = (z0, z1) if axis == 0 else (0, volume.shape[axis])
        a, b = max(lo, lim_lo), min(lo + s, lim_hi)
        src.append(slice(a, b))
        dst.append(slice(a - lo, b - lo))
    img[tuple(dst)] = volume[tuple(src)]
    lab[tuple(dst)] = label[tuple(src)]
    return img, lab


def build_augmentation(patch: tuple[int, int, int], scanner: bool = False, device=None) -> Compose:
    extra = [
        RandSimulateLowResolutiond(keys="image", zoom_range=(0.5, 1.0), prob=0.25),
        RandScaleIntensityd(keys="image", factors=0.15, prob=0.3),
        RandShiftIntensityd(keys="image", offsets=0.15, prob=0.3),
        RandGaussianNoised(keys="image", std=0.1, prob=0.3),
    ] if scanner else []
    return Compose([
        Rand3DElasticd(keys=("image", "label"), sigma_range=(6, 9), magnitude_range=(0, 3), prob=1.0,
                       rotate_range=(0.26, 0.05, 0.05), scale_range=(0.15, 0.15, 0.15), spatial_size=patch,
                       mode=("bilinear", "nearest"), padding_mode=("border", "zeros"), device=device),
        RandAdjustContrastd(keys="image", gamma=(0.7, 1.5), prob=0.5),
        RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
        RandShiftIntensityd(keys="image", offsets=0.1, prob=0.5),
        RandGaussianNoised(keys="image", std=0.05, prob=0.5),
        RandGaussianSmoothd(keys="image", sigma_x=(0.5, 1.0), sigma_y=(0.5, 1.0), sigma_z=(0.5, 1.0), prob=0.2),
        *extra,
    ])


def augment(transform: Compose, image: np.ndarray, label: np.ndarray, seed: int,
            device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """One augmented (1, *patch) image and (*patch) label tensor. Label padding outside the region stays IGNORE:
    the label is shifted by one before resampling so that zero-padding means 'outside'. With `device` the region
    goes there first and the tensors come back on it."""
    transform.set_random_state(seed=seed)
    shifted = np.where(label == IGNORE, 0, label.astype(np.int16) + 1).astype(np.float32)
    if device is None:
        out = transform({"image": image[None], "label": shifted[None]})
        img = torch.as_tensor(np.asarray(out["image"]), dtype=torch.float32)
        lab = torch.as_tensor(np.asarray(out["label"]))[0].round().long() - 1
    else:
        out = transform({"image": torch.as_tensor(image[None]).to(device),
                         "label": torch.as_tensor(shifted[None]).to(device)})
        img = torch.as_tensor(out["image"], dtype=torch.float32)
        lab = torch.as_tensor(out["label"])[0].round().long() - 1
    lab[lab < 0] = IGNORE
    return img, lab
