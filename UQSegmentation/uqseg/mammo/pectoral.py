"""Pectoral-muscle boundary with heteroscedastic uncertainty on one MLO mammogram (Zech et al., MIDL 2026).

predict_pectoral(image, model) runs: view check → canonical orientation (chest wall left) → intensity normalisation →
ramp padding + resize to the 256×256 grid → one network pass → row moments (Eq. 1–2) and multimodality → map back to
every row of the input image in the input's own pixel coordinates (un-flipped).

Muscle rows: a grid row holds muscle when its mean boundary lies inside the image (image column ≥ 0); the muscle is
the contiguous run of such rows that starts at the first one from the top (the pectoral muscle is one region that
begins at the top of an MLO view). Rows whose mean falls left of the image (in the padding) have no muscle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from uqseg.io.image import Image
from uqseg.mammo import boundary_grid as bg
from uqseg.mammo.heatmap import find_modes_rows, row_softmax
from uqseg.transforms.intensity import robust_unit_range
from uqseg.mammo.orientation import canonicalise, require_mlo
from uqseg.mammo.pectoral_model import PectoralHeatmapNet


@dataclass
class PectoralResult:
    """The boundary in the input image's pixel coordinates (columns and rows are pixel-centre indices).

    rows, mean_col, std_col, multimodal: one entry per input row that holds muscle. Pixels of row `rows[i]` with
    column c < mean_col[i] (canonical side) are muscle; after un-flipping, the muscle lies on the chest-wall side.
    `grid_*`: the raw per-row decoding on the 256 grid (canonical orientation), kept for correction tools."""

    shape: tuple[int, int]
    rows: np.ndarray
    mean_col: np.ndarray
    std_col: np.ndarray
    multimodal: np.ndarray
    flipped: bool
    orientation_source: str
    image_uncertainty: float  # mean σ over muscle rows, input pixels (NaN when no muscle row)
    image_uncertainty_grid: float  # the same in grid columns (resolution-independent; used for the ood flag)
    grid_mean: np.ndarray = field(repr=False, default=None)
    grid_var: np.ndarray = field(repr=False, default=None)
    grid_prob: np.ndarray = field(repr=False, default=None)
    grid_modes: list = field(repr=False, default_factory=list)
    grid_muscle: np.ndarray = field(repr=False, default=None)

    @property
    def is_multimodal(self) -> bool:
        return bool(self.multimodal.any())

    def muscle_mask(self) -> np.ndarray:
        """uint8 (H, W) mask of the muscle in input pixels."""
        h, w = self.shape
        b = np.full(h, np.nan)
        b[self.rows] = self.mean_col if not self.flipped else (w - 1) - self.mean_col
        m = bg.mask_from_boundary(b, w)
        return np.ascontiguousarray(m[:, ::-1]) if self.flipped else m


def network_input(canonical: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(robust_unit_range(canonical))[None, None]
    return bg.to_grid(x)


def muscle_grid_rows(mean_img_cols: np.ndarray) -> np.ndarray:
    """bool (G,): the contiguous run of grid rows, from the first one whose boundary is inside the image."""
    inside = mean_img_cols >= 0
    out = np.zeros_like(inside)
    idx = np.flatnonzero(inside)
    if idx.size:
        r = idx[0]
        while r < inside.size and inside[r]:
            out[r] = True
            r += 1
    return out


def grid_rows_to_input(mean_g, var_g, multi_g, muscle, shape, flipped):
    """The muscle grid rows `muscle` of a canonical 256-grid decoding → every input row they cover:
    (rows, mean_col, std_col, multimodal) in input pixel coordinates (un-flipped when `flipped`); mean and σ are
    interpolated linearly between grid rows, the multimodal flag taken from the nearest grid row."""
    h, w = shape
    g = mean_g.shape[0]
    if not muscle.any():
        return np.zeros(0, int), np.zeros(0), np.zeros(0), np.zeros(0, bool)
    x_img = bg.grid_col_to_image(mean_g, w, g)
    s_img = np.sqrt(var_g) * bg.col_scale(w, g)
    r_grid = np.arange(g)
    y = np.arange(h)
    ry = bg.image_row_to_grid(y, h, g)
    first, last = np.flatnonzero(muscle)[[0, -1]]
    sel = (ry >= first - 0.5) & (ry <= last + 0.5)
    rows = y[sel]
    mean = np.interp(ry[sel], r_grid[muscle], x_img[muscle])
    std = np.interp(ry[sel], r_grid[muscle], s_img[muscle])
    multi = multi_g[np.clip(np.rint(ry[sel]).astype(int), first, last)]
    if flipped:
        mean = (w - 1) - mean
    return rows, mean, std, multi


def decode_to_input(mean_g, var_g, prob_g, shape, flipped, source) -> PectoralResult:
    h, w = shape
    g = mean_g.shape[0]
    muscle = muscle_grid_rows(bg.grid_col_to_image(mean_g, w, g))
    modes = find_modes_rows(prob_g)
    multi_g = np.array([len(m) >= 2 for m in modes])
    rows, mean, std, multi = grid_rows_to_input(mean_g, var_g, multi_g, muscle, shape, flipped)
    unc = float(std.mean()) if std.size else float("nan")
    unc_g = float(np.sqrt(var_g[muscle]).mean()) if muscle.any() else float("nan")
    return PectoralResult((h, w), rows, mean, std, multi, flipped, source, unc, unc_g,
                          mean_g, var_g, prob_g, modes, muscle)


@torch.no_grad()
def predict_pectoral(image: Image, model: PectoralHeatmapNet, device: torch.device | str = "cpu") -> PectoralResult:
    if image.ndim != 2:
        raise ValueError("predict_pectoral needs a 2-D image")
    require_mlo(image)
    canonical, flipped, source = canonicalise(image)
    model.eval()
    mean, var, prob = model.decode(network_input(canonical).to(device))
    return decode_to_input(mean[0].cpu().numpy().astype(np.float64), var[0].cpu().numpy().astype(np.float64),
                           prob[0].cpu().numpy(), canonical.shape, flipped, source)


@torch.no_grad()
def predict_pectoral_boundary_only(image: Image, model: PectoralHeatmapNet,
                                   device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """The same pipeline as `predict_pectoral` without its uncertainty outputs — the baseline `uqseg bench` times it
    against: orientation, network pass, each row's mean column (Eq. 1, first moment only), the muscle rows and the
    mapping back to the input, but no σ² (second moment), no multimodality (mode search) and no row distributions
    kept. Returns (rows, mean_col) in input pixel indices, equal to `predict_pectoral`'s rows and mean_col."""
    if image.ndim != 2:
        raise ValueError("predict_pectoral needs a 2-D image")
    require_mlo(image)
    canonical, flipped, source = canonicalise(image)
    model.eval()
    prob = row_softmax(model(network_input(canonical).to(device))[:, 0])
    cols = torch.arange(prob.shape[-1], dtype=prob.dtype, device=prob.device)
    mean_g = (prob[0] * cols).sum(-1).cpu().numpy().astype(np.float64)
    h, w = canonical.shape
    muscle = muscle_grid_rows(bg.grid_col_to_image(mean_g, w, mean_g.shape[0]))
    zeros = np.zeros_like(mean_g)
    rows, mean, _, _ = grid_rows_to_input(mean_g, zeros, np.zeros(mean_g.shape, bool), muscle, (h, w), flipped)
    return rows, mean

