"""PNG preview of a ct-organs result: one axial slice of the working grid (axis-aligned LPS, shown in the
radiological convention: patient right on the image left, anterior up) — the CT in a soft-tissue window (W 400 /
L 40 HU), the predictive variance Σ_c Var[p_c] as a translucent inferno overlay (transparent below `threshold`), the
outline of each predicted organ in its segment colour, a colour bar in probability² and a caption. The slice is the
one holding the most integrated variance inside the predicted organs (the place to look first)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uqseg.io.write import write_png_atomically

WINDOW = (40.0, 400.0)  # level, width (HU)
CMAP = "inferno"


def most_uncertain_slice(label: np.ndarray, variance: np.ndarray) -> int:
    """Index z of the axial working-grid slice with the largest summed variance over organ voxels (dilated by the
    boundary shell: variance sits on the boundary); the middle slice when nothing is predicted."""
    from scipy import ndimage

    organ = ndimage.binary_dilation(label > 0, iterations=2)
    score = (variance * organ).reshape(variance.shape[0], -1).sum(1)
    return int(np.argmax(score)) if score.max() > 0 else variance.shape[0] // 2


def render_ct_preview(hu: np.ndarray, label: np.ndarray, variance: np.ndarray, organs: list[str],
                      colours: list[tuple[float, float, float]], spacing_mm: float, path: Path, title: str = "",
                      threshold: float | None = None, z: int | None = None) -> Path:
    """hu, label, variance: (z, y, x) working-grid arrays; organs[i] has label i + 1 and outline colours[i]."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    z = most_uncertain_slice(label, variance) if z is None else z
    level, width = WINDOW
    grey = np.clip((hu[z] - (level - width / 2)) / width, 0, 1)
    var = variance[z]
    vmax = max(float(variance.max()), 1e-6)
    ny, nx = grey.shape
    extent = (-0.5 * spacing_mm, (nx - 0.5) * spacing_mm, (ny - 0.5) * spacing_mm, -0.5 * spacing_mm)
    fig = Figure(figsize=(7.2, 6.6 * ny / max(nx, 1) + 0.8), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(grey, cmap="gray", vmin=0, vmax=1, extent=extent, interpolation="antialiased")
    norm = Normalize(0.0, vmax)
    rgba = colormaps[CMAP](norm(var))
    lo = 0.0 if threshold is None else threshold
    rgba[..., 3] = np.where(var > lo, 0.35 + 0.55 * np.clip((var - lo) / max(vmax - lo, 1e-9), 0, 1), 0.0)
    ax.imshow(rgba, extent=extent, interpolation="nearest")
    xs = (np.arange(nx)) * spacing_mm
    ys = (np.arange(ny)) * spacing_mm
    handles = []
    for i, (organ, colour) in enumerate(zip(organs, colours), start=1):
        mask = label[z] == i
        if mask.any():
            ax.contour(xs, ys, mask.astype(np.float32), levels=[0.5], colors=[colour], linewidths=1.2)
            handles.append(ax.plot([], [], color=colour, lw=1.5, label=organ)[0])
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=CMAP), ax=ax, fraction=0.046, pad=0.02)
    bar.set_label("predictive variance Σ Var[p] (probability²)" + ("" if threshold is None else
                                                                    "; shown above the white line"), fontsize=8)
    if threshold is not None:
        bar.ax.axhline(threshold, color="white", lw=1.5)
    ax.set_title(f"{title}\naxial working-grid slice {z} (patient right on the left)", fontsize=7.5)
    ax.set_xlabel("x [mm] (→ patient left)", fontsize=7)
    ax.set_ylabel("y [mm] (→ posterior)", fontsize=7)
    ax.tick_params(labelsize=7)
    if handles:
        ax.legend(handles=handles, loc="lower right", fontsize=7, framealpha=0.6)
    fig.tight_layout()
    return write_png_atomically(path, lambda tmp: fig.savefig(tmp, format="png"))
