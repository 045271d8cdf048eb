"""Augmentation for the breast / pectoral model (the list of Verboom et al., JMI 2024), batched in torch on working
images (0.4 mm, chest wall on the left, 0..1) and their class maps; every sample becomes a PATCH-sized crop.

Geometry — one resampling per sample (bilinear image, nearest label; outside the source: background, value 0):
- random crop with padding: the (scaled) image is placed in a fixed-size canvas: the chest-wall edge at
  −2 … +3 % of the canvas width from its left side (real images have the chest wall at the edge), the vertical
  offset uniform over all positions from "image top 10 % of the canvas below its top" to "image bottom 10 % above
  its bottom" — so a long image is cropped, a short one padded;
- scale 0.8–1.25 (log-uniform: unknown pixel sizes and breast sizes), rotation ±5° about the canvas centre;
- elastic deformation: a smooth random displacement field (a 5 × 4 grid of N(0, 5 px) offsets, bicubic up-sampled);
- flip: left-right with probability `P_HFLIP` (robustness to a wrong chest-wall decision);
- "pseudo-CC" crops (probability `P_PSEUDO_CC`): only the rows below the pectoral muscle (from 5 % of the height
  below its lowest row), flipped top-bottom with probability ½: breast tissue against the chest wall without a
  muscle, as in cranio-caudal views (the training data are all MLO).
Intensity — VOI-like LUT jitter: a random window (centre 0.3–0.7, width 0.5–1.2) through a LINEAR or SIGMOID
function (the DICOM VOI LUT functions), gamma 0.5–1.5 (log-uniform), Gaussian noise (σ 0–0.03), then the robust
range normalisation of the inference (p0.5 → 0, p99.5 → 1), so the network always sees what inference gives it.
The gamma and the noise are the shared `uqseg.transforms.augment` ones; the crop geometry (in pixels of the working
image, with an elastic field between the rotation and the scaling) and the VOI window are particular to this task.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from uqseg.transforms.augment import random_gamma, random_noise, uniform

PATCH = (512, 320)  # rows, columns of a training crop at 0.4 mm (multiples of 16)
P_HFLIP = 0.15
P_PSEUDO_CC = 0.2
ELASTIC_GRID = (5, 4)
ELASTIC_SIGMA_PX = 5.0
MAX_GAMMA, MAX_NOISE = 1.5, 0.03


def pseudo_cc_rows(label: torch.Tensor, gen: torch.Generator) -> slice | None:
    """Rows below the pectoral muscle (from 5 % of the height under its lowest row) or None when too few remain."""
    rows = torch.nonzero((label == 2).any(dim=1)).flatten()
    h = label.shape[0]
    start = int(rows.max()) + int(0.05 * h) if rows.numel() else 0
    return slice(start, h) if h - start >= 0.3 * h else None


def _sample_grid(src_hw, patch, scale, angle, x0, y0, elastic):
    """Source pixel coordinates (patch_h, patch_w, 2) → normalised grid for grid_sample (align_corners False)."""
    ph, pw = patch
    v, u = torch.meshgrid(torch.arange(ph, dtype=torch.float32), torch.arange(pw, dtype=torch.float32),
                          indexing="ij")
    cu, cv = (pw - 1) / 2, (ph - 1) / 2
    du, dv = u - cu, v - cv
    cos, sin = math.cos(angle), math.sin(angle)
    ru, rv = cos * du - sin * dv + cu, sin * du + cos * dv + cv  # rotation about the canvas centre
    ru, rv = ru + elastic[0], rv + elastic[1]
    sx, sy = (ru - x0) / scale, (rv - y0) / scale  # canvas → source pixels
    h, w = src_hw
    return torch.stack([(2 * sx + 1) / w - 1, (2 * sy + 1) / h - 1], dim=-1)


def augment_geometry(image: torch.Tensor, label: torch.Tensor, gen: torch.Generator, patch=PATCH,
                     p_pseudo_cc: float = P_PSEUDO_CC, p_hflip: float = P_HFLIP):
    """One sample: image (1, h, w), label (h, w) int → (1, *patch) float, (*patch) int64."""
    if uniform(gen, 1).item() < p_pseudo_cc:
        rows = pseudo_cc_rows(label, gen)
        if rows is not None:
            image, label = image[:, rows], label[rows]
            if uniform(gen, 1).item() < 0.5:
                image, label = image.flip(-2), label.flip(-2)
    h, w = label.shape
    ph, pw = patch
    scale = math.exp((2 * uniform(gen, 1).item() - 1) * math.log(1.25))
    angle = math.radians((2 * uniform(gen, 1).item() - 1) * 5.0)
    x0 = (-0.02 + 0.05 * uniform(gen, 1).item()) * pw
    a, b = 0.9 * ph - h * scale, 0.1 * ph  # image bottom ≥ 90 % of the canvas, image top ≤ 10 % of it
    lo, hi = min(a, b), max(a, b)  # (for an image shorter than 80 % of the canvas: fully inside, 10 % margins)
    y0 = lo + (hi - lo) * uniform(gen, 1).item()
    coarse = torch.randn(1, 2, *ELASTIC_GRID, generator=gen) * ELASTIC_SIGMA_PX
    elastic = F.interpolate(coarse, size=patch, mode="bicubic", align_corners=True)[0]
    grid = _sample_grid((h, w), patch, scale, angle, x0, y0, elastic)[None]
    img = F.grid_sample(image[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    lab = F.grid_sample(label[None, None].float(), grid, mode="nearest", padding_mode="zeros",
                        align_corners=False)[0, 0].long()
    if uniform(gen, 1).item() < p_hflip:
        img, lab = img.flip(-1), lab.flip(-1)
    return img, lab


def robust_normalise(x: torch.Tensor) -> torch.Tensor:
    """Per-sample (B, 1, H, W) robust range (p0.5 → 0, p99.5 → 1), clipped — as `uqseg.transforms.intensity.robust_unit_range`."""
    flat = x.flatten(1)[:, ::7]
    lo = torch.quantile(flat, 0.005, dim=1)[:, None, None, None]
    hi = torch.quantile(flat, 0.995, dim=1)[:, None, None, None]
    return ((x - lo) / (hi - lo).clamp_min(1e-6)).clamp(0, 1)


def augment_intensity(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    b = x.shape[0]
    c = 0.3 + 0.4 * uniform(gen, b, 1, 1, 1)
    w = 0.5 + 0.7 * uniform(gen, b, 1, 1, 1)
    linear = ((x - c) / w + 0.5).clamp(0, 1)
    sigmoid = torch.sigmoid(4 * (x - c) / w)
    use_sigmoid = uniform(gen, b, 1, 1, 1) < 0.5
    use_window = uniform(gen, b, 1, 1, 1) < 0.7
    y = torch.where(use_window, torch.where(use_sigmoid, sigmoid, linear), x)
    y = random_gamma(y, gen, MAX_GAMMA)
    return robust_normalise(random_noise(y, gen, MAX_NOISE))


def augment_batch(images: torch.Tensor, labels: torch.Tensor, gen: torch.Generator, patch=PATCH):
    """images (B, 1, h, w), labels (B, h, w) → augmented crops (B, 1, *patch), (B, *patch)."""
    pairs = [augment_geometry(i, l, gen, patch) for i, l in zip(images, labels)]
    imgs = torch.stack([p[0] for p in pairs])
    labs = torch.stack([p[1] for p in pairs])
    return augment_intensity(imgs, gen), labs
