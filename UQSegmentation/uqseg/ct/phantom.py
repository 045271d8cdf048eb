"""A synthetic 3-D CT phantom: an organ-like blob whose boundary is clear on one side and faint / missing on the
other, where the true surface is NOT determined by the image.

`organ_phantom(shape, seed)` returns (hu, label, ambiguous), (z, y, x) arrays on a grid of `SPACING_MM` voxels:
- body: a water-like ellipsoid (0 HU, smooth texture, noise σ 10 HU) in air (−1000 HU);
- organ: a lobulated blob of +80 HU; its true surface on the ambiguous side (x > centre + 0.3 · radius) lies at a
  random radius factor 1 + δ, δ ~ U(−0.3, 0.3) drawn per seed, while the image there shows no edge: the blob's
  contrast fades to the level of a touching neighbour of the same intensity, which continues where the organ stops
  (so the edge is faint where the contrast fades and missing where the two meet). Across seeds the image on that side
  is (up to noise) the same while the label moves: the ambiguity is real, aleatoric, and a stochastic model trained
  on many seeds should put its variance there;
- `label`: the true organ (uint8 1/0); `ambiguous`: the voxels of the ambiguous side lying between the smallest and
  largest possible surface (where the label differs between seeds).
The clear side (x < centre) has a sharp 80 HU edge whose position is fixed.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

SPACING_MM = 2.0
ORGAN_HU = 80.0
DELTA = 0.3


def organ_phantom(shape: tuple[int, int, int] = (16, 32, 32), seed: int = 0):
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij")
    cz, cy, cx = [(s - 1) / 2 for s in shape]
    body = ((z - cz) / (0.6 * shape[0])) ** 2 + ((y - cy) / (0.48 * shape[1])) ** 2 + \
        ((x - cx) / (0.49 * shape[2])) ** 2 < 1
    r = 0.26 * min(shape[1], shape[2])
    rz = 0.3 * shape[0]
    theta = np.arctan2(y - cy, x - cx)
    lobes = 1 + 0.06 * np.cos(3 * theta)
    dist = np.sqrt(((x - cx) / lobes) ** 2 + ((y - cy) / lobes) ** 2 + ((z - cz) * r / rz) ** 2)
    side = (x - cx) > 0.3 * r
    delta = rng.uniform(-DELTA, DELTA)
    surface = np.where(side, r * (1 + delta), r)
    organ = dist < surface
    # the image: a sharp edge at r on the clear side; on the ambiguous side a plateau of organ intensity that
    # continues out to the widest possible surface and then fades slowly (independent of delta)
    outer = r * (1 + DELTA)
    ramp = np.clip((outer + 0.35 * r - dist) / (0.35 * r), 0, 1)
    hu = np.where(body, 0.0, -1000.0).astype(np.float32)
    hu += np.where(side, ramp * ORGAN_HU, np.where(dist < r, ORGAN_HU, 0.0)).astype(np.float32)
    texture = ndimage.gaussian_filter(rng.normal(0, 1, shape), 1.0) * 15
    hu += np.where(body, texture + rng.normal(0, 10, shape), 0).astype(np.float32)
    label = organ.astype(np.uint8)
    ambiguous = side & (dist >= r * (1 - DELTA)) & (dist < outer) & body
    return hu.astype(np.float32), label, ambiguous
