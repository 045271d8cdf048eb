"""Augmentation for the pectoral-boundary model, batched in torch (images and muscle masks at the work resolution,
512 × 256, chest wall on the left, intensities 0..1). The shared maths is `uqseg.transforms.augment` (its docstring
gives the coordinate frames and units); what is particular to this task stays here.

Geometry: rotation ±10°, isotropic scale 0.9–1.1, translation ±4 % of the side, image and mask alike, with
edge-replicating borders (so the muscle keeps touching the chest wall).
Intensity ("processing-style", after Zech et al.), in this order: gamma 0.6–1.6 (log-uniform); with probability 0.3 a
random sigmoid window (centre 0.3–0.7, width 0.2–0.8, rescaled to 0..1: mimics vendor processing LUTs); contrast
×0.8–1.2 and brightness ±0.1; blur (3 × 3 box, p 0.2) or unsharp masking (amount 1, p 0.2); Gaussian noise
σ ~ U(0, 0.04); and with probability 0.2 per image a bright film-edge stripe of 2–11 rows / columns on the top,
bottom or right border (digitised screen film has them); clipped to 0..1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from uqseg.transforms.augment import (random_contrast_brightness, random_gamma, random_noise, random_theta,
                                      uniform, warp)

MAX_DEG, SCALE, SHIFT = 10.0, (0.9, 1.1), 0.04
MAX_GAMMA, CONTRAST, BRIGHTNESS, MAX_NOISE = 1.6, (0.8, 1.2), 0.1, 0.04


def random_affine(images: torch.Tensor, masks: torch.Tensor, gen: torch.Generator):
    """images and masks (B, 1, H, W) → both warped by the same random matrix per sample."""
    b, _, h, w = images.shape
    theta = random_theta(b, gen, max_deg=MAX_DEG, scale=SCALE, shift=SHIFT, aspect=h / w)
    return warp(images, theta, "border"), warp(masks, theta, "border")


def sigmoid_window(x: torch.Tensor, gen: torch.Generator, p: float = 0.3) -> torch.Tensor:
    """With probability p per image: sigmoid((x − centre) / (width / 4)) rescaled to the image's 0..1."""
    b = x.shape[0]
    use = uniform(gen, b, 1, 1, 1) < p
    centre = 0.3 + 0.4 * uniform(gen, b, 1, 1, 1)
    width = 0.2 + 0.6 * uniform(gen, b, 1, 1, 1)
    sig = torch.sigmoid((x - centre) / (width / 4))
    lo, hi = sig.amin((2, 3), keepdim=True), sig.amax((2, 3), keepdim=True)
    return torch.where(use, (sig - lo) / (hi - lo + 1e-6), x)


def blur_or_sharpen(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """3 × 3 box blur (p 0.2), unsharp masking x + (x − blur) (p 0.2), else unchanged."""
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    mode = uniform(gen, x.shape[0], 1, 1, 1)
    return torch.where(mode < 0.2, blurred, torch.where(mode > 0.8, x + 1.0 * (x - blurred), x))


def film_edge_stripes(x: torch.Tensor, gen: torch.Generator, p: float = 0.2) -> torch.Tensor:
    """In place: per image with probability p, a bright (1.0) stripe of 2–11 pixels on the top, bottom or right."""
    for i in range(x.shape[0]):
        if uniform(gen, 1).item() < p:
            t = int(2 + 10 * uniform(gen, 1).item())
            side = int(3 * uniform(gen, 1).item())
            if side == 0:
                x[i, :, :t, :] = 1.0
            elif side == 1:
                x[i, :, -t:, :] = 1.0
            else:
                x[i, :, :, -t:] = 1.0
    return x


def random_intensity(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    x = random_gamma(images, gen, MAX_GAMMA)
    x = sigmoid_window(x, gen)
    x = random_contrast_brightness(x, gen, CONTRAST, BRIGHTNESS)
    x = blur_or_sharpen(x, gen)
    x = random_noise(x, gen, MAX_NOISE)
    return film_edge_stripes(x, gen).clamp(0, 1)
