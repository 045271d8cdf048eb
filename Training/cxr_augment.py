"""Augmentation for the cxr-landmarks model, batched in torch on the cached G × G inputs and their landmarks.

Geometry (applied to image and nodes alike): rotation ±8°, isotropic scale 0.9–1.1, translation ±5 % of the side;
the image is resampled with `grid_sample` (zeros outside, like the model's black square padding). With
`affine_grid`, an output point g_out (normalised to [−1, 1], align_corners=False) samples the input at
g_in = A g_out + t, so a landmark moves to g_out = A⁻¹ (g_in − t); in u = (g + 1)/2 coordinates.
Intensity: gamma 0.6–1.6 (log-uniform), contrast ×0.8–1.2 and brightness ±0.1, Gaussian noise σ ~ U(0, 0.05).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(images: torch.Tensor, nodes: torch.Tensor, gen: torch.Generator,
                  max_deg: float = 8.0, scale=(0.9, 1.1), shift: float = 0.05):
    """images (B, 1, G, G), nodes (B, N, 2) in u ∈ [0, 1] → both transformed."""
    b = images.shape[0]
    ang = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(max_deg)
    s = scale[0] + (scale[1] - scale[0]) * torch.rand(b, generator=gen)
    t = (torch.rand(b, 2, generator=gen) * 2 - 1) * shift * 2  # in [-1, 1] units
    a = torch.stack([torch.stack([torch.cos(ang), -torch.sin(ang)], -1),
                     torch.stack([torch.sin(ang), torch.cos(ang)], -1)], 1) / s[:, None, None]
    theta = torch.cat([a, t[:, :, None]], dim=2)
    grid = F.affine_grid(theta, images.shape, align_corners=False)
    img = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    g_in = 2 * nodes - 1
    g_out = torch.linalg.solve(a, (g_in - t[:, None, :]).transpose(1, 2)).transpose(1, 2)
    return img, (g_out + 1) / 2


def random_intensity(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    b = images.shape[0]
    u = lambda *s: torch.rand(*s, generator=gen)  # noqa: E731
    x = images.clamp(0, 1) ** torch.exp((u(b, 1, 1, 1) * 2 - 1) * math.log(1.6))
    x = x * (0.8 + 0.4 * u(b, 1, 1, 1)) + (u(b, 1, 1, 1) - 0.5) * 0.2
    x = x + torch.randn(x.shape, generator=gen) * 0.05 * u(b, 1, 1, 1)
    return x.clamp(0, 1)
