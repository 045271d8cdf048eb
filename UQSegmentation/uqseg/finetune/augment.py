"""Light augmentation for fine-tuning on a few corrected cases: the shared transforms (`uqseg.transforms.augment`,
which documents the coordinate frames and units) with milder ranges than the training recipes' — fine-tuning
starts from a trained model and should adapt it to the corrections, not re-learn invariances. Batched torch; a
seeded generator makes it reproducible.

Geometry: rotation ±`MAX_DEG` degrees (in pixel space, also for non-square images), isotropic scale `SCALE`,
translation ±`SHIFT` of the image side; `warp_points` moves (u, v) ∈ [0, 1] points with the image.
Intensity (images in 0..1): gamma `GAMMA` (log-uniform), contrast ×`CONTRAST`, brightness ±`BRIGHTNESS`, Gaussian
noise of σ ~ U(0, `NOISE`), clipped to 0..1.
"""

from __future__ import annotations

import torch

from uqseg.transforms import augment as T
from uqseg.transforms.augment import warp, warp_points

MAX_DEG = 5.0  # degrees
SCALE = (0.95, 1.05)
SHIFT = 0.02  # fraction of the image side
GAMMA = 1.25  # gamma in [1/GAMMA, GAMMA]
CONTRAST = (0.9, 1.1)
BRIGHTNESS = 0.05  # intensity units (0..1 images)
NOISE = 0.02  # largest noise σ, intensity units


def random_theta(batch: int, gen: torch.Generator, aspect: float = 1.0) -> torch.Tensor:
    """(batch, 2, 3) affine_grid matrices of a random rotation / scale / shift. aspect: height / width of the image
    (its physical extent), so that the rotation is a rotation of the picture and not a shear."""
    return T.random_theta(batch, gen, max_deg=MAX_DEG, scale=SCALE, shift=SHIFT, aspect=aspect)


def jitter_intensity(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random gamma, contrast, brightness and noise per image of (B, 1, H, W) in 0..1."""
    return T.jitter_intensity(x, gen, max_gamma=GAMMA, contrast=CONTRAST, brightness=BRIGHTNESS, max_noise=NOISE)


__all__ = ["random_theta", "warp", "warp_points", "jitter_intensity"]
