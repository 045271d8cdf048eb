"""Random augmentation of 2D images, batched in torch and driven by a seeded `torch.Generator` (the same generator and
the same calls give the same draws: every function documents the order in which it draws).

Coordinate frames
-----------------
- pixels: (row, column) indices of a (B, C, H, W) tensor; pixel centres at integers.
- normalised (`g`): the frame of `torch.nn.functional.affine_grid` / `grid_sample` with align_corners=False,
  as (x, y) = (column, row): g = (2 · index + 1) / size − 1, so −1 and +1 are the OUTER edges of the first and last
  pixel (not their centres); one image side spans 2 normalised units.
- unit (`u`): u = (g + 1) / 2 = (index + ½) / size ∈ [0, 1], (x, y) order; the frame of the cxr landmark targets.

The affine matrix
-----------------
`random_theta` gives `theta` (B, 2, 3) = [A | t] with which an OUTPUT point g_out samples the INPUT at
g_in = A · g_out + t (affine_grid's convention), A = R(φ) / s expressed in normalised units of an image whose
height / width is `aspect`:

    A = 1/s · [[cos φ,          −sin φ · aspect],
               [sin φ / aspect,  cos φ         ]]

so that the rotation is a rotation of the picture in pixel space (not a shear) also for non-square images. φ is in
radians (drawn from ±`max_deg` degrees; a positive φ turns the CONTENT counter-clockwise as displayed, rows
pointing down), s > 1 magnifies the content, and t (normalised units) moves the content by −t; `shift` is the
largest |t| as a fraction of the image side (t = ±2 · shift normalised units). A point of the input moves to g_out = A⁻¹ (g_in − t)
(`warp_points`).

Intensity (images in 0..1, every factor drawn per image)
---------------------------------------------------------
- `random_gamma`: x ← clip(x, 0, 1) ** γ, γ log-uniform in [1 / max_gamma, max_gamma];
- `random_contrast_brightness`: x ← x · c + b, c uniform in `contrast`, b uniform in ±`brightness` (intensity units);
- `random_noise`: x ← x + σ · N(0, 1) per pixel, σ uniform in [0, max_sigma] (intensity units);
- `jitter_intensity`: the three in that order, then clipped to 0..1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def uniform(gen: torch.Generator, *shape: int) -> torch.Tensor:
    """U(0, 1) draws of `shape` from `gen` (float32)."""
    return torch.rand(*shape, generator=gen)


def random_theta(batch: int, gen: torch.Generator, *, max_deg: float, scale: tuple[float, float],
                 shift: float, aspect: float = 1.0) -> torch.Tensor:
    """(batch, 2, 3) affine_grid matrices of a random rotation / isotropic scale / shift (module docstring).

    max_deg: largest rotation, degrees; scale: (lo, hi) range of the magnification s (uniform); shift: largest
    translation, fraction of the image side; aspect: height / width of the image's extent (pixels of equal size).
    Draws, in this order: the angles (batch), the scales (batch), the shifts (batch, 2) as (x, y)."""
    ang = (uniform(gen, batch) * 2 - 1) * math.radians(max_deg)
    s = scale[0] + (scale[1] - scale[0]) * uniform(gen, batch)
    t = (uniform(gen, batch, 2) * 2 - 1) * shift * 2  # one image side spans 2 normalised units
    theta = torch.zeros(batch, 2, 3)
    theta[:, 0, 0] = torch.cos(ang) / s
    theta[:, 0, 1] = -torch.sin(ang) * aspect / s
    theta[:, 1, 0] = torch.sin(ang) / aspect / s
    theta[:, 1, 1] = torch.cos(ang) / s
    theta[:, :, 2] = t
    return theta


def warp(x: torch.Tensor, theta: torch.Tensor, padding_mode: str = "zeros", mode: str = "bilinear") -> torch.Tensor:
    """Resample (B, C, H, W) maps with `theta` (B, 2, 3) (grid_sample, align_corners=False). padding_mode: 'zeros'
    (0 outside the input), 'border' (edge values replicated) or 'reflection'."""
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode=padding_mode, align_corners=False)


def warp_points(uv: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Where points (B, N, 2) of the input, as (x, y) in unit coordinates u ∈ [0, 1], land in the output that
    `warp(·, theta)` makes (same units): u_out = (A⁻¹ (g_in − t) + 1) / 2 with g_in = 2 u − 1."""
    a, t = theta[:, :, :2].to(uv.dtype), theta[:, :, 2].to(uv.dtype)
    g_in = 2 * uv - 1
    g_out = torch.linalg.solve(a, (g_in - t[:, None, :]).transpose(1, 2)).transpose(1, 2)
    return (g_out + 1) / 2


def random_gamma(x: torch.Tensor, gen: torch.Generator, max_gamma: float) -> torch.Tensor:
    """clip(x, 0, 1) ** γ per image of (B, C, H, W), γ log-uniform in [1 / max_gamma, max_gamma]. Draws (B, 1, 1, 1)."""
    gamma = torch.exp((uniform(gen, x.shape[0], 1, 1, 1) * 2 - 1) * math.log(max_gamma))
    return x.clamp(0, 1) ** gamma


def random_contrast_brightness(x: torch.Tensor, gen: torch.Generator, contrast: tuple[float, float],
                               brightness: float) -> torch.Tensor:
    """x · c + b per image, c ~ U(contrast), b ~ U(−brightness, +brightness) (intensity units). Draws c then b,
    each (B, 1, 1, 1)."""
    b = x.shape[0]
    c = contrast[0] + (contrast[1] - contrast[0]) * uniform(gen, b, 1, 1, 1)
    return x * c + (uniform(gen, b, 1, 1, 1) * 2 - 1) * brightness


def random_noise(x: torch.Tensor, gen: torch.Generator, max_sigma: float) -> torch.Tensor:
    """x + σ · N(0, 1) per pixel, σ ~ U(0, max_sigma) per image (intensity units). Draws the normal field (x.shape),
    then σ (B, 1, 1, 1)."""
    return x + torch.randn(x.shape, generator=gen) * max_sigma * uniform(gen, x.shape[0], 1, 1, 1)


def jitter_intensity(x: torch.Tensor, gen: torch.Generator, *, max_gamma: float, contrast: tuple[float, float],
                     brightness: float, max_noise: float) -> torch.Tensor:
    """`random_gamma` → `random_contrast_brightness` → `random_noise`, clipped to 0..1 (module docstring)."""
    x = random_gamma(x, gen, max_gamma)
    x = random_contrast_brightness(x, gen, contrast, brightness)
    return random_noise(x, gen, max_noise).clamp(0, 1)
