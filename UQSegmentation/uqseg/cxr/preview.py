"""PNG preview of a cxr-landmarks result (a matplotlib Figure on the Agg canvas, no pyplot state): the radiograph
in grey, each organ's mean contour as a thin closed line in its organ colour, the 120 nodes as dots coloured by their
std (½ (σ_x + σ_y), input px) with a colour bar, and a caption (image uncertainty, latent σ, ood flag). Axes are
input pixel indices."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uqseg.cxr.graph import organ_slices
from uqseg.transforms.intensity import robust_unit_range
from uqseg.io.write import write_png_atomically

ORGAN_COLOURS = {"right_lung": (0.25, 0.65, 1.0), "left_lung": (0.3, 0.9, 0.4), "heart": (1.0, 0.35, 0.35)}
CMAP = "plasma"
MAX_INCHES = 7.0


def render_landmark_preview(image: np.ndarray, mean: np.ndarray, node_std: np.ndarray, path: Path,
                            title: str = "", vmax: float | None = None) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    h, w = image.shape
    scale = MAX_INCHES / max(h, w)
    fig = Figure(figsize=(w * scale + 1.6, h * scale + 0.8), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(robust_unit_range(image, sampling="uniform"), cmap="gray", vmin=0, vmax=1, interpolation="antialiased")
    for organ, sl in organ_slices().items():
        ring = np.vstack([mean[sl], mean[sl][:1]])
        ax.plot(ring[:, 0], ring[:, 1], "-", color=ORGAN_COLOURS[organ], lw=1.0, alpha=0.9)
    vmax = vmax if vmax is not None else max(float(np.max(node_std)), 1e-6)
    dots = ax.scatter(mean[:, 0], mean[:, 1], c=node_std, cmap=CMAP, vmin=0.0, vmax=vmax, s=14,
                      edgecolors="black", linewidths=0.3, zorder=3)
    bar = fig.colorbar(dots, ax=ax, fraction=0.046, pad=0.02)
    bar.set_label("node std ½(σx+σy) [input px]")
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    return write_png_atomically(path, lambda tmp: fig.savefig(tmp, format="png"))
