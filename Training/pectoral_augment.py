"""Augmentation for the pectoral-boundary model, batched in torch (images and muscle masks at the work resolution).

Geometry: rotation ±10°, isotropic scale 0.9–1.1, translation ±4 % (edge-replicating borders, so the muscle keeps
touching the chest wall). Intensity ("processing-style", after Zech et al.): random gamma 0.6–1.6, a random sigmoid
window (mimics vendor processing LUTs), contrast/brightness jitter, blur or unsharp masking, Gaussian noise, and
sometimes a bright film-edge stripe on the top, bottom or right border (digitised screen film has them).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(images: torch.Tensor, masks: torch.Tensor, gen: torch.Generator):
    b, _, h, w = images.shape
    ang = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(10)
    scale = 0.9 + 0.2 * torch.rand(b, generator=gen)
    shift = (torch.rand(b, 2, generator=gen) * 2 - 1) * 0.04 * 2  # normalised units
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    # rotation in pixel space expressed in normalised coordinates of a non-square image
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = cos
    theta[:, 0, 1] = -sin * h / w
    theta[:, 1, 0] = sin * w / h
    theta[:, 1, 1] = cos
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, images.shape, align_corners=False)
    img = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    msk = F.grid_sample(masks, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return img, msk


def random_intensity(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    b = images.shape[0]
    u = lambda *s: torch.rand(*s, generator=gen)  # noqa: E731
    x = images.clamp(0, 1)
    gamma = torch.exp((u(b, 1, 1, 1) * 2 - 1) * math.log(1.6))
    x = x**gamma
    use_sigmoid = u(b, 1, 1, 1) < 0.3
    centre = 0.3 + 0.4 * u(b, 1, 1, 1)
    width = 0.2 + 0.6 * u(b, 1, 1, 1)
    sig = torch.sigmoid((x - centre) / (width / 4))
    sig = (sig - sig.amin((2, 3), keepdim=True)) / (sig.amax((2, 3), keepdim=True) - sig.amin((2, 3), keepdim=True) + 1e-6)
    x = torch.where(use_sigmoid, sig, x)
    x = x * (0.8 + 0.4 * u(b, 1, 1, 1)) + (u(b, 1, 1, 1) - 0.5) * 0.2
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    mode = u(b, 1, 1, 1)
    x = torch.where(mode < 0.2, blurred, torch.where(mode > 0.8, x + 1.0 * (x - blurred), x))
    x = x + torch.randn(x.shape, generator=gen) * 0.04 * u(b, 1, 1, 1)
    # bright film-edge stripe
    h, w = x.shape[-2:]
    for i in range(b):
        if u(1).item() < 0.2:
            t = int(2 + 10 * u(1).item())
            side = int(3 * u(1).item())
            if side == 0:
                x[i, :, :t, :] = 1.0
            elif side == 1:
                x[i, :, -t:, :] = 1.0
            else:
                x[i, :, :, -t:] = 1.0
    return x.clamp(0, 1)
