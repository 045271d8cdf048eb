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

`STRONG` (issue 19, chosen or rejected by 4-fold cross-validation on the 40 training images, see train_pectoral.py):
wider geometry (rotation ±15°, scale 0.8–1.25 — up-scaling crops the image —, shift ±8 %), gamma 0.5–2.0, the
sigmoid window with probability 0.5, and two steps the standard ranges skip: a film-vs-digital characteristic curve
(p 0.4: log1p(k·x) / log1p(k), the flat toe-less response of processed digital images, or expm1(k·x) / expm1(k), the
toe of screen film; k log-uniform in 2–30, either with probability ½) and a Gaussian blur of σ 0.5–2 pixels (p 0.25:
a coarser detector or digitiser); contrast ×0.7–1.3, brightness ±0.15, noise σ up to 0.06. With `STANDARD` the random
draws are those of the original recipe, step for step (its weights are reproduced bit for bit).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from uqseg.transforms.augment import (random_contrast_brightness, random_gamma, random_noise, random_theta,
                                      uniform, warp)


@dataclass(frozen=True)
class Ranges:
    """One augmentation setting (module docstring); probabilities per image, intensities in 0..1 units."""

    max_deg: float
    scale: tuple[float, float]
    shift: float
    max_gamma: float
    sigmoid_p: float
    contrast: tuple[float, float]
    brightness: float
    max_noise: float
    tone_curve_p: float = 0.0
    gauss_blur_p: float = 0.0


STANDARD = Ranges(10.0, (0.9, 1.1), 0.04, 1.6, 0.3, (0.8, 1.2), 0.1, 0.04)
STRONG = Ranges(15.0, (0.8, 1.25), 0.08, 2.0, 0.5, (0.7, 1.3), 0.15, 0.06, tone_curve_p=0.4, gauss_blur_p=0.25)
SETTINGS = {"standard": STANDARD, "strong": STRONG}


def random_affine(images: torch.Tensor, masks: torch.Tensor, gen: torch.Generator, r: Ranges = STANDARD):
    """images and masks (B, 1, H, W) → both warped by the same random matrix per sample."""
    b, _, h, w = images.shape
    theta = random_theta(b, gen, max_deg=r.max_deg, scale=r.scale, shift=r.shift, aspect=h / w)
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


def tone_curve(x: torch.Tensor, gen: torch.Generator, p: float) -> torch.Tensor:
    """With probability p per image: a digital-like log curve or a film-like exponential toe (module docstring);
    0 and 1 stay fixed."""
    b = x.shape[0]
    use = uniform(gen, b, 1, 1, 1) < p
    k = torch.exp(torch.log(torch.tensor(2.0)) + uniform(gen, b, 1, 1, 1) * torch.log(torch.tensor(15.0)))
    digital = uniform(gen, b, 1, 1, 1) < 0.5
    xc = x.clamp(0, 1)
    curved = torch.where(digital, torch.log1p(k * xc) / torch.log1p(k), torch.expm1(k * xc) / torch.expm1(k))
    return torch.where(use, curved, x)


def gaussian_blur(x: torch.Tensor, gen: torch.Generator, p: float) -> torch.Tensor:
    """With probability p per image: a separable Gaussian blur of σ 0.5–2 pixels (replicated borders)."""
    out = x.clone()
    for i in range(x.shape[0]):
        if uniform(gen, 1).item() < p:
            sigma = 0.5 + 1.5 * uniform(gen, 1).item()
            r = int(3 * sigma + 0.5)
            t = torch.arange(-r, r + 1, dtype=x.dtype)
            k = torch.exp(-0.5 * (t / sigma) ** 2)
            k = k / k.sum()
            y = F.pad(x[i:i + 1], (r, r, r, r), mode="replicate")
            y = F.conv2d(y, k.view(1, 1, 1, -1))
            out[i:i + 1] = F.conv2d(y, k.view(1, 1, -1, 1))
    return out


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


def random_intensity(images: torch.Tensor, gen: torch.Generator, r: Ranges = STANDARD) -> torch.Tensor:
    x = random_gamma(images, gen, r.max_gamma)
    x = sigmoid_window(x, gen, r.sigmoid_p)
    if r.tone_curve_p:
        x = tone_curve(x, gen, r.tone_curve_p)
    x = random_contrast_brightness(x, gen, r.contrast, r.brightness)
    x = blur_or_sharpen(x, gen)
    if r.gauss_blur_p:
        x = gaussian_blur(x, gen, r.gauss_blur_p)
    x = random_noise(x, gen, r.max_noise)
    return film_edge_stripes(x, gen).clamp(0, 1)
