"""Augmentation for the cxr-landmarks model, batched in torch on the cached G × G inputs and their landmarks (u ∈ [0, 1]
of the square input, (x, y)): the shared `uqseg.transforms.augment` (its docstring gives the frames and units) with
this recipe's ranges.

Geometry (image and nodes alike): rotation ±8°, isotropic scale 0.9–1.1, translation ±5 % of the side; the image is
resampled with zeros outside (like the model's black square padding) and the nodes move with it (`warp_points`).
Intensity: gamma 0.6–1.6 (log-uniform), contrast ×0.8–1.2 and brightness ±0.1, Gaussian noise σ ~ U(0, 0.05),
clipped to 0..1.
"""

from __future__ import annotations

import torch

from uqseg.transforms.augment import jitter_intensity, random_theta, warp, warp_points

MAX_GAMMA, CONTRAST, BRIGHTNESS, MAX_NOISE = 1.6, (0.8, 1.2), 0.1, 0.05


def random_affine(images: torch.Tensor, nodes: torch.Tensor, gen: torch.Generator,
                  max_deg: float = 8.0, scale=(0.9, 1.1), shift: float = 0.05):
    """images (B, 1, G, G), nodes (B, N, 2) in u ∈ [0, 1] → both transformed."""
    theta = random_theta(images.shape[0], gen, max_deg=max_deg, scale=scale, shift=shift)
    return warp(images, theta, "zeros"), warp_points(nodes, theta)


def random_intensity(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return jitter_intensity(images, gen, max_gamma=MAX_GAMMA, contrast=CONTRAST, brightness=BRIGHTNESS,
                            max_noise=MAX_NOISE)
