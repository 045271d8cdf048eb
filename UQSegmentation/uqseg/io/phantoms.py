"""Deterministic synthetic MLO-like mammograms with a known pectoral-muscle boundary (numpy only).

`mlo_phantom` draws, in pixel coordinates ``[row, col]`` of an image with the chest wall on the left:
- a dark background (≈ 5) and a breast (≈ 70–170) whose skin line is a smooth curve: at the top (axilla) the
  breast reaches ≈ 0.52·W, bulges out to ≈ 0.90·W at ≈ 0.6·H and curves back to the chest wall at ≈ 0.97·H;
  intensity falls off over the last few % of W before the skin line (thinner compressed tissue);
- fibroglandular texture: smoothed Gaussian noise at two scales, denser towards the middle of the breast;
- the pectoral muscle (≈ 200–225): a triangle in the top-left corner whose edge is a gently convex curve from
  (row 0, col ≈ 0.45·W) to (row ≈ 0.55·H, col 0); the edge is blurred by about one pixel;
- optionally (`dense_occlusion`) a bright dense blob centred on the muscle edge at about 45 % of its height, as
  bright as the muscle, hiding the edge there (the "occluded boundary" case);
- optionally (`skin_fold`) a fainter second edge parallel to the muscle edge, ≈ 25 px (scaled with W / 480) to the
  right of it along each row (a skin fold that a detector can confuse with the muscle edge: a second mode);
- mild pixel noise.
The seed drives the texture, the noise and small jitters of the geometry (muscle end points ±3 %, blob position).
`chest_wall="right"` returns the exact left/right mirror: image and mask flipped, boundary columns W − 1 − col.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uqseg.io.picture import write_png

__all__ = ["mlo_phantom", "write_png", "write_phantom_png"]


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """White noise low-pass filtered with a Gaussian of `sigma` pixels (periodic, via FFT), scaled to unit std."""
    noise = rng.standard_normal(shape)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    transfer = np.exp(-2.0 * (np.pi * sigma) ** 2 * (fx**2 + fy**2))
    smooth = np.fft.irfft2(np.fft.rfft2(noise) * transfer, s=shape)
    return smooth / (smooth.std() + 1e-12)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _skin_line(rows: np.ndarray, height: int, width: int) -> np.ndarray:
    """Column of the skin line for each row (chest wall on the left); ≤ 0 where the breast has ended."""
    t = rows / height
    top, peak, bottom = 0.52, 0.90, 0.97  # reach at row 0, maximum reach, row where the breast ends (fractions)
    t_peak = 0.60
    upper = top + (peak - top) * np.sin(0.5 * np.pi * np.clip(t / t_peak, 0.0, 1.0))
    lower = peak * np.sqrt(np.clip(1.0 - ((t - t_peak) / (bottom - t_peak)) ** 2, 0.0, None))
    return width * np.where(t <= t_peak, upper, lower)


def mlo_phantom(
    shape: tuple[int, int] = (960, 480),
    *,
    seed: int = 0,
    dense_occlusion: bool = True,
    skin_fold: bool = True,
    chest_wall: str = "left",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A synthetic MLO mammogram with its pectoral boundary (see the module docstring for what is drawn).

    Parameters: `shape` (rows, cols) in pixels; `seed` makes the result reproducible; `chest_wall` "left" or
    "right" (the mirror image).

    Returns ``(image, boundary, mask)``:
    - `image`: float32 ``[row, col]``, values 0..255 (bright = dense tissue);
    - `boundary`: float64 ``(rows,)``, for each row the column (pixel-centre coordinates) where the muscle ends:
      with the chest wall on the left, pixels whose centre column is < boundary[r] are muscle, so row r has
      ``ceil(boundary[r])`` muscle pixels starting at column 0; with the chest wall on the right the boundary is
      ``W - 1 - b`` and the muscle pixels are those with column > boundary[r]. NaN in rows without muscle;
    - `mask`: uint8 ``[row, col]``, 1 = pectoral muscle, 0 elsewhere, consistent with `boundary` as above.
    """
    if chest_wall not in ("left", "right"):
        raise ValueError(f"chest_wall must be 'left' or 'right', got {chest_wall!r}")
    height, width = (int(n) for n in shape)
    if height < 32 or width < 32:
        raise ValueError(f"shape must be at least 32×32 pixels, got {shape}")
    # Independent streams, so that switching an option on or off changes only that option's part of the image.
    streams = np.random.SeedSequence(seed).spawn(4)
    geometry_rng, texture_rng, blob_rng, noise_rng = (np.random.default_rng(stream) for stream in streams)
    rows = np.arange(height, dtype=np.float64)[:, None]
    cols = np.arange(width, dtype=np.float64)[None, :]

    # Pectoral boundary: convex curve from (0, top_col) to (end_row, 0).
    top_col = width * (0.45 + geometry_rng.uniform(-0.03, 0.03))
    end_row = height * (0.55 + geometry_rng.uniform(-0.03, 0.03))
    u = rows[:, 0] / end_row
    edge = top_col * (1.0 - u) * (1.0 + 0.25 * u)  # the (1 + 0.25 u) factor bows the edge outwards
    boundary = np.where(u < 1.0, edge, np.nan)
    boundary[boundary <= 0] = np.nan

    # Breast region and its thickness fall-off towards the skin line.
    skin = _skin_line(rows, height, width)  # (rows, 1)
    depth = skin - cols  # > 0 inside the breast, in pixels from the skin line
    falloff = 0.06 * width
    breast = _sigmoid(depth / 1.0)
    thickness = np.clip(depth / falloff, 0.0, 1.0) ** 0.5

    # Tissue: fatty base + fibroglandular texture, denser in the central breast.
    centre = np.exp(-(((rows - 0.55 * height) / (0.30 * height)) ** 2) - ((cols - 0.40 * width) / (0.30 * width)) ** 2)
    fine, coarse = (_smooth_noise(texture_rng, (height, width), sigma) for sigma in (3.0, 12.0))
    texture = 0.6 * fine + 0.8 * coarse
    glandular = _sigmoid(4.0 * (0.8 * centre - 0.35 + 0.3 * texture))  # soft 0..1, no flat clipped patches
    tissue = (70.0 + 100.0 * glandular) * (0.55 + 0.45 * thickness)
    image = 5.0 + (tissue - 5.0) * breast

    # Pectoral muscle: bright, brighter towards the corner, faint striations, edge blurred by ≈ 1 px.
    b_filled = np.nan_to_num(boundary, nan=-10.0)[:, None]
    muscle_weight = _sigmoid((b_filled - cols) / 0.6)
    muscle = 200.0 + 25.0 * np.exp(-(rows / (0.4 * height) + cols / (0.4 * width))) + 4.0 * texture
    image = image * (1.0 - muscle_weight) + muscle * muscle_weight

    if skin_fold:
        offset = 25.0 * width / 480.0
        fold_band = _sigmoid((b_filled + offset - cols) / 1.2) * (1.0 - muscle_weight) * breast
        image = image + 28.0 * fold_band * (b_filled > 0)

    if dense_occlusion:
        blob_row = end_row * (0.45 + blob_rng.uniform(-0.05, 0.05))
        blob_col = top_col * (1.0 - blob_row / end_row) * (1.0 + 0.25 * blob_row / end_row) + 0.02 * width
        r_row, r_col = 0.07 * height, 0.09 * width
        blob = np.exp(-0.5 * (((rows - blob_row) / r_row) ** 2 + ((cols - blob_col) / r_col) ** 2) ** 1.5)
        blob_level = 208.0 + 6.0 * _smooth_noise(blob_rng, (height, width), 2.0)
        image = image * (1.0 - 0.95 * blob) + blob_level * 0.95 * blob

    image = image + 1.5 * noise_rng.standard_normal((height, width))
    image = np.clip(image, 0.0, 255.0).astype(np.float32)
    mask = (cols < np.nan_to_num(boundary, nan=-1.0)[:, None]).astype(np.uint8)

    if chest_wall == "right":
        image = np.ascontiguousarray(image[:, ::-1])
        mask = np.ascontiguousarray(mask[:, ::-1])
        boundary = (width - 1) - boundary
    return image, boundary, mask


def write_phantom_png(path: str | Path, **kwargs) -> tuple[Path, np.ndarray, np.ndarray]:
    """Write `mlo_phantom(**kwargs)`'s image as an 8-bit PNG; returns (path, boundary, mask)."""
    image, boundary, mask = mlo_phantom(**kwargs)
    return write_png(path, image, bits=8), boundary, mask
