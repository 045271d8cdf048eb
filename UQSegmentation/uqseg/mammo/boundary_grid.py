"""The network grid of the pectoral model and the image-boundary handling of Zech et al. (MIDL 2026, Section 3).

A canonical image (chest wall on the LEFT) of H rows × W columns is edge-padded on the left by P = round(W/4)
columns whose values ramp linearly from the edge column's value (next to the image) down to zero (outermost column),
then resized to the G × G network grid (G = 256). The boundary label is linearly extrapolated into that padding, so
the boundary continues smoothly past the image's left edge; a row whose boundary falls left of the image has no muscle.

Coordinates: columns and rows are pixel-centre indices (pixel k spans [k − ½, k + ½]). A boundary at column x means:
pixels with centre column c < x are muscle. On the network grid the same holds in grid columns.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

GRID = 256


def pad_width(width: int) -> int:
    """P: the number of padding columns for an image `width` columns wide (a quarter of it)."""
    return int(round(width / 4))


def pad_with_ramp(image: torch.Tensor, pad: int) -> torch.Tensor:
    """Left-pad (…, H, W) → (…, H, W + pad): the edge column repeated, times a linear ramp k/(pad+1), k = 1 at the
    outermost column … pad next to the image (the straight line that reaches 0 one column outside the padding)."""
    if pad <= 0:
        return image
    ramp = torch.arange(1, pad + 1, dtype=image.dtype, device=image.device) / (pad + 1)
    left = image[..., :1] * ramp
    return torch.cat([left, image], dim=-1)


def to_grid(image: torch.Tensor, grid: int = GRID) -> torch.Tensor:
    """Canonical image (B, 1, H, W) → padded, resized network input (B, 1, grid, grid) (anti-aliased bilinear)."""
    padded = pad_with_ramp(image, pad_width(image.shape[-1]))
    return F.interpolate(padded, size=(grid, grid), mode="bilinear", align_corners=False, antialias=True)


def image_col_to_grid(x, width: int, grid: int = GRID):
    """Image column (pixel-centre coordinates, may be negative inside the padding) → network-grid column."""
    pad = pad_width(width)
    return (np.asarray(x, dtype=np.float64) + pad + 0.5) * grid / (width + pad) - 0.5


def grid_col_to_image(g, width: int, grid: int = GRID):
    """Network-grid column → image column (pixel-centre coordinates; < −½ means left of the image)."""
    pad = pad_width(width)
    return (np.asarray(g, dtype=np.float64) + 0.5) * (width + pad) / grid - 0.5 - pad


def col_scale(width: int, grid: int = GRID) -> float:
    """Image columns per grid column: multiply a σ in grid columns by this to get it in image pixels."""
    return (width + pad_width(width)) / grid


def grid_row_to_image(r, height: int, grid: int = GRID):
    return (np.asarray(r, dtype=np.float64) + 0.5) * height / grid - 0.5


def image_row_to_grid(y, height: int, grid: int = GRID):
    return (np.asarray(y, dtype=np.float64) + 0.5) * grid / height - 0.5


def boundary_from_mask(muscle: np.ndarray) -> np.ndarray:
    """Muscle mask (H, W) of a canonical image, values in [0, 1] (binary, or a bilinearly resampled fraction) →
    boundary column per row (H,), NaN where the row has no muscle touching the chest wall.

    The boundary is the first non-muscle column: the length of the muscle run from column 0 (pixels ≥ ½ muscle),
    with partial pixels in and just after the run counted by their fraction, in pixel-centre coordinates (length − ½). A row whose
    muscle fills the whole width has no boundary inside the image and is NaN as well."""
    m = np.asarray(muscle, dtype=np.float64)
    inside = m >= 0.5
    run = np.cumprod(inside, axis=1).sum(axis=1)
    h, w = m.shape
    nxt = np.where(run < w, m[np.arange(h), np.minimum(run, w - 1)], 0.0)
    in_run = np.arange(w)[None, :] < run[:, None]
    length = (m * in_run).sum(axis=1) + nxt  # partial pixels count by their fraction, inside and after the run
    out = length - 0.5
    out[(run == 0) | (run >= w)] = np.nan
    return out


def extrapolate_boundary(boundary: np.ndarray, min_col: float, fit_rows: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Continue the boundary below the muscle's last row into the padding (Section 3).

    boundary (H,) in image columns, NaN where there is no muscle. The muscle is taken as the contiguous run of rows
    starting at its first labelled row. A straight line fitted to the last `fit_rows` rows of that run (default: a
    tenth of the run, at least 5) is continued down the following rows while it stays at or right of `min_col`
    (the outer edge of the padding, e.g. −P − ½). Returns (labels, extrapolated) — labels (H,) with the extrapolated
    values filled in, and a bool mask (H,) of the rows that were filled. A run that does not slope towards the chest
    wall (fit slope ≥ 0) is not extrapolated."""
    b = np.asarray(boundary, dtype=np.float64).copy()
    filled = np.zeros(b.shape, dtype=bool)
    rows = np.flatnonzero(~np.isnan(b))
    if rows.size < 2:
        return b, filled
    start = rows[0]
    end = start
    while end + 1 < b.size and not np.isnan(b[end + 1]):
        end += 1
    n = fit_rows or max(5, (end - start + 1) // 10)
    lo = max(start, end - n + 1)
    ys = np.arange(lo, end + 1)
    if ys.size < 2:
        return b, filled
    slope, icpt = np.polyfit(ys, b[ys], 1)
    if slope >= 0:
        return b, filled
    y = end + 1
    while y < b.size and np.isnan(b[y]):
        x = slope * y + icpt
        if x < min_col:
            break
        b[y] = x
        filled[y] = True
        y += 1
    return b, filled


def mask_from_boundary(boundary: np.ndarray, width: int) -> np.ndarray:
    """Boundary (H,) in image columns (NaN = no muscle) → uint8 muscle mask (H, W): pixel centre c < boundary."""
    cols = np.arange(width)[None, :]
    b = np.nan_to_num(np.asarray(boundary, dtype=np.float64), nan=-np.inf)[:, None]
    return (cols < b).astype(np.uint8)


def grid_targets(muscle: np.ndarray, grid: int = GRID) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training targets on the network grid from a canonical muscle mask (H, W), H a multiple of `grid`.

    Returns (target, valid, present), each (grid,): the boundary in grid columns per grid row (the mean of the image
    rows it covers), `valid` where a label exists (muscle rows and rows extrapolated into the padding), `present`
    where the muscle is really in the image (the rows the metrics use)."""
    h, w = muscle.shape
    b = boundary_from_mask(muscle)
    present_rows = ~np.isnan(b)
    b, _ = extrapolate_boundary(b, min_col=-pad_width(w) - 0.5)
    k = h // grid
    rows = b.reshape(grid, k)
    target_img = rows.mean(axis=1)  # NaN if any covered row is NaN
    valid = ~np.isnan(target_img)
    present = present_rows.reshape(grid, k).all(axis=1) & valid
    target = np.where(valid, image_col_to_grid(np.nan_to_num(target_img), w, grid), 0.0)
    return target.astype(np.float32), valid, present
