"""PNG preview of a mammo-breast result (a matplotlib Figure on the Agg canvas, no pyplot state): the mammogram in
grey, the predictive-entropy map as a translucent inferno overlay — transparent below `threshold` (the model card's
display threshold: where its validation error rate reaches 5 %, marked on the colour bar) and increasingly opaque
above it; without a threshold, opacity rises from 0 to full at half the maximum entropy — the outline of the breast (tissue: breast ∪ pectoral) in cyan and of the pectoral
muscle in orange, a colour bar in nats (0 … ln 3), and a caption. Large images are shown down-sampled (at most
`MAX_ROWS` rows; nearest for labels, area for the image and the entropy)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from uqseg.io.write import write_png_atomically
from uqseg.mammo.breast_model import BACKGROUND, PECTORAL
from uqseg.transforms.intensity import robust_unit_range

MAX_ROWS = 900
MAX_INCHES = 7.5
TISSUE_COLOUR = (0.2, 0.9, 1.0)
PECTORAL_COLOUR = (1.0, 0.55, 0.1)
CMAP = "inferno"
ENTROPY_MAX = math.log(3.0)


def _shrink(a: np.ndarray, shape, mode: str) -> np.ndarray:
    t = torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32)[None, None]
    if tuple(t.shape[-2:]) == tuple(shape):
        return t[0, 0].numpy()
    return F.interpolate(t, size=tuple(shape), mode=mode)[0, 0].numpy()


def render_breast_preview(image: np.ndarray, label: np.ndarray, entropy: np.ndarray, path: Path,
                          title: str = "", threshold: float | None = None) -> Path:
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    h, w = image.shape
    k = min(1.0, MAX_ROWS / h)
    shape = (max(1, round(h * k)), max(1, round(w * k)))
    grey = _shrink(robust_unit_range(image), shape, "area")
    ent = _shrink(entropy, shape, "area")
    lab = _shrink(label.astype(np.float32), shape, "nearest").astype(np.uint8)

    scale = MAX_INCHES / max(shape)
    fig = Figure(figsize=(shape[1] * scale + 1.5, shape[0] * scale + 0.9), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    extent = (-0.5, w - 0.5, h - 0.5, -0.5)  # axes in input pixel indices
    ax.imshow(grey, cmap="gray", vmin=0, vmax=1, extent=extent, interpolation="antialiased")
    norm = Normalize(0.0, ENTROPY_MAX)
    rgba = colormaps[CMAP](norm(ent))
    if threshold is None:
        rgba[..., 3] = np.clip(ent / (0.5 * ENTROPY_MAX), 0.0, 1.0) * 0.85
    else:
        above = np.clip((ent - threshold) / max(ENTROPY_MAX - threshold, 1e-6), 0.0, 1.0)
        rgba[..., 3] = np.where(ent >= threshold, 0.45 + 0.45 * above, 0.0)
    ax.imshow(rgba, extent=extent, interpolation="nearest")
    ys = (np.arange(shape[0]) + 0.5) / k - 0.5
    xs = (np.arange(shape[1]) + 0.5) / k - 0.5
    for mask, colour in ((lab != BACKGROUND, TISSUE_COLOUR), (lab == PECTORAL, PECTORAL_COLOUR)):
        if mask.any() and not mask.all():
            ax.contour(xs, ys, mask.astype(np.float32), levels=[0.5], colors=[colour], linewidths=1.1)
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=CMAP), ax=ax, fraction=0.046, pad=0.02)
    bar.set_label("predictive entropy [nats]" + ("" if threshold is None else "; shown above the white line"),
                  fontsize=8)
    if threshold is not None:
        bar.ax.axhline(threshold, color="white", lw=1.5)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_title(title, fontsize=7.5)
    ax.tick_params(labelsize=7)
    handles = [ax.plot([], [], color=TISSUE_COLOUR, lw=1.5, label="breast")[0],
               ax.plot([], [], color=PECTORAL_COLOUR, lw=1.5, label="pectoral")[0]]
    ax.legend(handles=handles, loc="best", fontsize=7, framealpha=0.6)
    fig.tight_layout()
    return write_png_atomically(path, lambda tmp: fig.savefig(tmp, format="png"))
