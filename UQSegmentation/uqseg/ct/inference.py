"""ct-organs inference: a CT `Image` → mean class probabilities (Eq. 14), predictive variance, entropy and labels on
the input's own voxel grid.

Steps: resample onto the model's axis-aligned working grid (`uqseg.ct.preprocess`), HU window → [−1, 1], pad to the
network's size multiple, MONAI sliding-window inference (`monai.inferers.sliding_window_inference`, Gaussian
importance weights, `overlap`) in which every window runs the network ONCE and draws its k samples in logit space
(`uqseg.ct.mc_estimate.mc_moments`) from a position-keyed `NoiseField`, so a voxel in two windows gets the same
sample draws in both; per window p̄_c = E[softmax(η)_c] (Eq. 14) and Var_c = E[p_c²] − p̄_c², and the windows'
p̄ and Var are stitched (importance-weighted means — averaging variances rather than second moments keeps the small
differences between two windows' network outputs near their edges out of the variance); then on the working grid
H = −Σ_c p̄_c ln p̄_c (nats) and label = arg-max_c p̄_c.
Mapped back to the input grid (same size, spacing, origin, direction): the class probabilities trilinearly (label =
their arg-max there), the organ probability 1 − p̄_background, the summed organ variance Σ_{c≥1} Var_c, the
entropy; kept samples' labels by nearest neighbour. `samples=0` is the deterministic pass (softmax(μ), no
sampling): the same pipeline, which `uqseg bench` times against k = 30.
Window size: `roi` voxels (z, y, x), clipped to the padded volume, a multiple of the size multiple and the noise
tile; the overlap is chosen so the window stride stays a multiple of them too (so windows and tiles align).
Out-of-distribution map (`ood`, a `uqseg.ct.ood.ContextKnn`): the k-NN distance of each working-grid cell's
intensity-context descriptor to the training patients' (`uqseg.ct.ood.ood_map`), computed once from the working-grid
HU (not per window or sample) — `work_ood` on the working grid, `ood` on the input grid (trilinear).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from uqseg.ct.mc_estimate import class_argmax, mc_moments
from uqseg.ct.network import StochasticSegNet3d
from uqseg.ct.noise import NoiseField
from uqseg.ct.ood import ContextKnn, ood_map
from uqseg.ct.preprocess import (WorkingGrid, normalise_hu, pad_to_multiple, to_input_grid, to_working_grid,
                                 working_grid)
from uqseg.io.image import Image
from uqseg.metrics.information import entropy_term

DEFAULT_SAMPLES = 30
DEFAULT_ROI = (64, 192, 192)
DEFAULT_OVERLAP = 0.25
#: noise tile (z, y, x) voxels: the unit of position-keyed draws and of the sparse sampling
NOISE_TILE = (8, 16, 16)


@dataclass
class CtPrediction:
    organs: list[str]  # class c ≥ 1 is organs[c − 1]
    samples: int
    grid: WorkingGrid
    # on the working grid (z, y, x)
    work_hu: np.ndarray = field(repr=False)  # float32 HU resampled onto the working grid
    work_probability: np.ndarray = field(repr=False)  # (C, ...) p̄_c
    work_variance: np.ndarray = field(repr=False)  # (C, ...) Var_c
    work_label: np.ndarray = field(repr=False)  # uint8
    # on the input grid
    label: np.ndarray = field(repr=False)  # uint8, 0 background, c = organs[c − 1]
    organ_probability: np.ndarray = field(repr=False)  # float32 1 − p̄_0
    variance: np.ndarray = field(repr=False)  # float32 Σ_{c≥1} Var_c
    entropy: np.ndarray = field(repr=False)  # float32 nats
    kept_labels: np.ndarray | None = field(repr=False, default=None)  # (keep, ...) uint8 sample labels
    active_fraction: float = 0.0
    windows: int = 1
    timings_ms: dict = field(default_factory=dict)
    work_ood: np.ndarray | None = field(repr=False, default=None)  # k-NN context distance (uqseg.ct.ood) on the working grid
    ood: np.ndarray | None = field(repr=False, default=None)  # the same on the input grid


def _window(padded_shape, roi, multiple) -> tuple[tuple[int, ...], float]:
    """(roi, overlap): roi clipped to the volume and rounded to `multiple`; overlap such that the stride
    roi·(1 − overlap) is a multiple of `multiple` too."""
    roi = tuple(min(int(r) // m * m or m, s) for r, s, m in zip(roi, padded_shape, multiple))
    overlaps = []
    for r, m in zip(roi, multiple):
        stride = max(m, int(r * (1 - DEFAULT_OVERLAP)) // m * m)
        overlaps.append(1 - stride / r)
    return roi, tuple(overlaps)


@torch.inference_mode()
def predict_ct(image: Image, model: StochasticSegNet3d, spacing_mm: float, hu_window, organs: list[str],
               device: torch.device | str = "cpu", samples: int = DEFAULT_SAMPLES, seed: int = 0, keep: int = 0,
               roi=DEFAULT_ROI, sparse: bool = True, progress=None, noise_tile=NOISE_TILE,
               ood: ContextKnn | None = None) -> CtPrediction:
    from monai.inferers import sliding_window_inference

    device = torch.device(device)
    t0 = time.perf_counter()
    grid = working_grid(image, spacing_mm)
    work_hu = to_working_grid(image, grid)
    x = normalise_hu(work_hu, hu_window)
    noise = NoiseField(seed=seed, device=device, tile=noise_tile,
                       layout_block=model.block if model.form == "mixture_of_bases" else 4)
    multiple = tuple(math.lcm(m, t) for m, t in zip(model.size_multiple, noise.tile))
    padded, shape = pad_to_multiple(x, multiple)
    roi_, overlap = _window(padded.shape, roi, multiple)
    t1 = time.perf_counter()
    c = model.classes
    # at most one kept label map per drawn sample (more would be uninitialised memory: `--samples 1` used to write
    # label maps with values of no segment)
    kept_n = min(int(keep), int(samples)) if samples > 0 else 0
    stats = {"windows": 0, "active": 0.0}

    def predictor(window: torch.Tensor, coords) -> torch.Tensor:
        dist = model(window)
        offset = tuple(int(s.start) for s in coords[0][2:])
        m = mc_moments(dist, samples, noise, offset, keep=kept_n, sparse=sparse)
        stats["windows"] += 1
        stats["active"] += m.active_fraction
        if progress is not None:
            progress(stats["windows"])
        # the window's own variance: stitching averages variances, not second moments, so that two windows whose
        # network outputs differ slightly near their edges add no between-window spread (a seam) to the variance
        parts = [m.mean, m.variance] + ([m.kept.float()] if kept_n else [])
        return torch.cat(parts)[None]

    inp = torch.from_numpy(padded)[None, None].to(device)
    out = sliding_window_inference(inp, roi_, 1, predictor, overlap=overlap, mode="gaussian", with_coord=True)
    out = out[0, :, : shape[0], : shape[1], : shape[2]].float().cpu()
    t2 = time.perf_counter()
    mean = out[:c].clamp(0, 1)
    mean = mean / mean.sum(0, keepdim=True).clamp_min(1e-12)
    var = out[c: 2 * c].clamp_min(0)
    work_label = class_argmax(mean).numpy()
    mean_np, var_np = mean.numpy(), var.numpy()
    # back onto the input grid
    best = np.full(image.shape, -1.0, np.float32)
    label = np.zeros(image.shape, np.uint8)
    entropy = np.zeros(image.shape, np.float32)
    for ci in range(c):
        p = to_input_grid(mean_np[ci], grid, image)
        better = p > best
        label[better] = ci
        best[better] = p[better]
        entropy += entropy_term(p)
        if ci == 0:
            organ_p = 1 - p
    variance = to_input_grid(var_np[1:].sum(0), grid, image)
    kept = None
    if kept_n:
        kept = to_input_grid(out[2 * c: 2 * c + kept_n].round().to(torch.uint8).numpy(), grid, image, label=True)
    work_ood = ood_in = None
    if ood is not None:
        work_ood = ood_map(work_hu, ood)
        ood_in = to_input_grid(work_ood, grid, image).astype(np.float32)
    t3 = time.perf_counter()
    return CtPrediction(
        organs=list(organs), samples=samples, grid=grid, work_hu=work_hu, work_probability=mean_np, work_variance=var_np,
        work_label=work_label, label=label, organ_probability=np.clip(organ_p, 0, 1).astype(np.float32),
        variance=variance.astype(np.float32), entropy=np.clip(entropy, 0, None).astype(np.float32),
        kept_labels=kept, active_fraction=round(stats["active"] / max(1, stats["windows"]), 4),
        windows=stats["windows"], work_ood=work_ood, ood=ood_in,
        timings_ms={"preprocess": round((t1 - t0) * 1000, 1), "network_and_sampling": round((t2 - t1) * 1000, 1),
                    "map_back": round((t3 - t2) * 1000, 1)})
