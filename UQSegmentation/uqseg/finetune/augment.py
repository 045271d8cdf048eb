"""Light augmentation for fine-tuning on a few corrected cases (batched torch; a seeded generator makes it
reproducible). Milder than the training recipes' augmentation: fine-tuning starts from a trained model and should
adapt it to the corrections, not re-learn invariances.

Geometry: rotation ±`MAX_DEG` degrees (in pixel space, also for non-square images), isotropic scale `SCALE`,
translation ±`SHIFT` of the image side. With `affine_grid` (align_corners=False) an output point g_out, normalised to
[−1, 1], samples the input at g_in = A g_out + t; a point of the input therefore moves to g_out = A⁻¹ (g_in − t)
(`warp_points`, in u = (g + 1) / 2 coordinates ∈ [0, 1]).
Intensity (images in 0..1): gamma `GAMMA` (log-uniform), contrast ×`CONTRAST`, brightness ±`BRIGHTNESS`, Gaussian
noise of σ ~ U(0, `NOISE`), clipped to 0..1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

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
    u = lambda *s: torch.rand(*s, generator=gen)  # noqa: E731
    ang = (u(batch) * 2 - 1) * math.radians(MAX_DEG)
    s = SCALE[0] + (SCALE[1] - SCALE[0]) * u(batch)
    t = (u(batch, 2) * 2 - 1) * SHIFT * 2  # normalised units span 2 per side
    theta = torch.zeros(batch, 2, 3)
    theta[:, 0, 0] = torch.cos(ang) / s
    theta[:, 0, 1] = -torch.sin(ang) * aspect / s
    theta[:, 1, 0] = torch.sin(ang) / aspect / s
    theta[:, 1, 1] = torch.cos(ang) / s
    theta[:, :, 2] = t
    return theta


def warp(x: torch.Tensor, theta: torch.Tensor, padding_mode: str = "zeros") -> torch.Tensor:
    """Resample (B, C, H, W) maps with `theta` (bilinear, align_corners=False)."""
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)


def warp_points(uv: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Where points (B, N, 2) given as (u, v) ∈ [0, 1] of the input land in the warped output (same units)."""
    a, t = theta[:, :, :2].to(uv.dtype), theta[:, :, 2].to(uv.dtype)
    g_in = 2 * uv - 1
    g_out = torch.linalg.solve(a, (g_in - t[:, None, :]).transpose(1, 2)).transpose(1, 2)
    return (g_out + 1) / 2


def jitter_intensity(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random gamma, contrast, brightness and noise per image of (B, 1, H, W) in 0..1."""
    b = x.shape[0]
    u = lambda *s: torch.rand(*s, generator=gen)  # noqa: E731
    y = x.clamp(0, 1) ** torch.exp((u(b, 1, 1, 1) * 2 - 1) * math.log(GAMMA))
    y = y * (CONTRAST[0] + (CONTRAST[1] - CONTRAST[0]) * u(b, 1, 1, 1)) + (u(b, 1, 1, 1) * 2 - 1) * BRIGHTNESS
    y = y + torch.randn(y.shape, generator=gen) * NOISE * u(b, 1, 1, 1)
    return y.clamp(0, 1)
