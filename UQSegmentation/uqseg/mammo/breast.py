"""Breast / pectoral-muscle / background segmentation with MC-dropout uncertainty on one mammogram (CC or MLO, raw or
processed; after Verboom et al., JMI 2024, "maseg").

predict_breast(image, model) runs: input check → preprocessing (`breast_preprocess.prepare`: spacing → 0.4 mm,
window / raw log transform, robust normalisation, chest wall to the left) → zero padding to a multiple of 16 →
N MC-dropout samples (`mc_dropout.mc_dropout`; or one deterministic pass with `fast=True`) → post-processing of the
label map on the working grid → everything mapped back to the input's own pixel grid (un-flipped).

Post-processing (working grid, label of the mean softmax), in this order:
1. `postprocess`:
   - tissue (breast ∪ pectoral) is the largest 8-connected component of non-background pixels, with its holes filled
     (a hole becomes breast); other components (film labels, markers, digitiser stripes) become background;
   - the pectoral muscle is its largest 8-connected component among those that reach the chest-wall edge (a pixel
     within `CHEST_WALL_BAND_MM` of the image's chest-wall side: the muscle lies against the chest wall in every
     view), when that covers ≥ `MIN_PECTORAL_AREA_MM2`; other or smaller pectoral pixels become breast. "Pectoral
     found" means a component survived;
   - row fill: the muscle runs from the chest wall to its outer edge in every row it occupies, so the breast pixels
     of a row between the chest-wall edge and the muscle's outermost pixel in that row become pectoral (islands of
     "breast" the network leaves inside the muscle);
2. the skin line is refined from the image intensities within 4 mm of the tissue edge (`breast_skin_line`), then
   step 1 again;
3. on MLO views (view code MLO/ML/…, or no view code and a pectoral muscle found): a body part below the
   inframammary fold — a notch in the outline with the skin bulging out again below it — is cut off
   (`breast_fold`), then step 1 again.
The label map on the input grid is the arg-max of the (post-processed) class probabilities resized bilinearly to the
input pixels, so its boundaries are sub-working-pixel smooth.

Uncertainty maps (input grid, bilinear from the working grid): predictive entropy of the mean softmax (nats) and the
per-class variance of the labelled class's probability over the samples. The image score `image_uncertainty` is the
mean entropy over the working-grid pixels labelled breast or pectoral (after post-processing) — resolution
independent, in nats (0 … ln 3). With `fast=True` no samples are drawn: the maps are the softmax entropy of the one
deterministic pass and no variance; the score is reported as the same mean but is not an MC-dropout estimate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import ndimage

from uqseg.errors import InputError
from uqseg.io.image import Image
from uqseg.mammo.breast_fold import cut_below_fold
from uqseg.mammo.breast_model import BACKGROUND, BREAST, PECTORAL, BreastSegNet
from uqseg.mammo.breast_preprocess import Prepared, pad_to_multiple, prepare, to_input_grid
from uqseg.mammo.breast_skin_line import refine_skin_line
from uqseg.mammo.mc_dropout import DEFAULT_SAMPLES, deterministic_pass, entropy, mc_dropout
from uqseg.mammo.orientation import CC_VIEWS, MLO_VIEWS

MIN_PECTORAL_AREA_MM2 = 100.0  # 1 cm²: a smaller pectoral component is noise (and counts as "no pectoral")
CHEST_WALL_BAND_MM = 4.0  # a pectoral component must come this close to the chest-wall edge of the image
MIN_SIZE_PX = 32
PROJECTION_MODALITIES = {"CR", "DX"}  # accepted only with a mammography view code (CR/DX mammograms exist)
_EIGHT = np.ones((3, 3), bool)


@dataclass
class BreastResult:
    prepared: Prepared
    label: np.ndarray  # (H, W) uint8 on the input grid: 0 background, 1 breast, 2 pectoral
    entropy: np.ndarray | None  # (H, W) float32, nats (None when predicted with input_maps=False)
    variance: np.ndarray | None  # (H, W) float32: variance of the labelled class's probability (None when fast)
    samples: int  # MC samples drawn (0 = fast deterministic pass)
    image_uncertainty: float  # mean entropy over breast + pectoral on the working grid, nats
    work_label: np.ndarray = field(repr=False, default=None)  # (h, w) post-processed label, canonical orientation
    work_mean: np.ndarray = field(repr=False, default=None)  # (3, h, w) mean softmax
    work_variance: np.ndarray = field(repr=False, default=None)  # (3, h, w) per-class variance (None when fast)
    work_mutual_information: np.ndarray = field(repr=False, default=None)  # (h, w) (None when fast)
    timings_ms: dict = field(default_factory=dict)

    @property
    def work_pixel_area_mm2(self) -> float:
        sx, sy = self.prepared.work_spacing_mm
        return sx * sy

    @property
    def pectoral_area_mm2(self) -> float:
        return float((self.work_label == PECTORAL).sum() * self.work_pixel_area_mm2)

    @property
    def breast_area_mm2(self) -> float:
        return float((self.work_label == BREAST).sum() * self.work_pixel_area_mm2)

    @property
    def pectoral_found(self) -> bool:
        return bool((self.work_label == PECTORAL).any())

    def class_variance_means(self) -> dict | None:
        """Mean per-class variance over the tissue pixels (working grid), by class name."""
        if self.work_variance is None:
            return None
        tissue = self.work_label != BACKGROUND
        if not tissue.any():
            return {name: None for name in ("background", "breast", "pectoral")}
        return {name: float(self.work_variance[k][tissue].mean())
                for k, name in enumerate(("background", "breast", "pectoral"))}


def check_mammogram(image: Image) -> None:
    """Refuse what is clearly not a 2-D mammogram, with the reason (InputError)."""
    path = image.meta.get("path")
    if image.ndim != 2:
        raise InputError(path, f"is a {image.ndim}-D image; mammo-breast needs one 2-D mammogram")
    if min(image.shape) < MIN_SIZE_PX:
        raise InputError(path, f"is only {image.shape[0]}×{image.shape[1]} pixels; too small for a mammogram")
    modality = (image.meta.get("modality") or "").upper()
    view = (image.meta.get("view") or "").upper()
    if modality in ("", "MG", "OT"):
        return
    if modality in PROJECTION_MODALITIES:
        if view in CC_VIEWS or view in MLO_VIEWS:
            return
        raise InputError(path, f"is a {modality} radiograph (view {view or 'unknown'}), not a mammogram: mammo-breast "
                               "needs a mammogram (DICOM modality MG, or CR/DX with a CC/MLO view)")
    raise InputError(path, f"has modality {modality}, not a mammogram: mammo-breast needs a mammogram (MG)")


def postprocess(label: np.ndarray, pixel_area_mm2: float) -> np.ndarray:
    """Working-grid label map (canonical: chest wall on the left) → cleaned label map (module docstring)."""
    out = np.asarray(label, dtype=np.uint8).copy()
    tissue = out != BACKGROUND
    comps, n = ndimage.label(tissue, structure=_EIGHT)
    if n == 0:
        return out
    sizes = np.bincount(comps.ravel())[1:]
    keep = comps == (1 + int(np.argmax(sizes)))
    keep = ndimage.binary_fill_holes(keep)
    out[~keep] = BACKGROUND
    out[keep & (out == BACKGROUND)] = BREAST
    pect = out == PECTORAL
    comps, n = ndimage.label(pect, structure=_EIGHT)
    if n:
        band = max(1, int(np.ceil(CHEST_WALL_BAND_MM / np.sqrt(pixel_area_mm2))))
        at_wall = np.zeros(n + 1, bool)
        at_wall[np.unique(comps[:, :band])] = True
        sizes = np.bincount(comps.ravel(), minlength=n + 1).astype(float)
        sizes[~at_wall] = 0
        sizes[0] = 0
        best = int(np.argmax(sizes))
        keep = best > 0 and sizes[best] * pixel_area_mm2 >= MIN_PECTORAL_AREA_MM2
        out[pect & ((comps != best) | (not keep))] = BREAST
        if keep:
            fill_pectoral_rows(out)
    return out


def fill_pectoral_rows(label: np.ndarray) -> np.ndarray:
    """In place: in each row that holds pectoral muscle, the breast pixels between the chest-wall edge (column 0)
    and the muscle's outermost pixel become pectoral (module docstring, step 1)."""
    pect = label == PECTORAL
    rows = np.flatnonzero(pect.any(axis=1))
    if rows.size:
        w = label.shape[1]
        outer = w - 1 - np.argmax(pect[rows, ::-1], axis=1)
        inside = np.arange(w)[None, :] <= outer[:, None]
        block = label[rows]
        block[inside & (block == BREAST)] = PECTORAL
        label[rows] = block
    return label


def is_mlo(image: Image, label: np.ndarray) -> bool:
    """An MLO view: its DICOM view code says so, or it has none (a PNG) and a pectoral muscle was found."""
    view = (image.meta.get("view") or "").upper()
    if view:
        return view in MLO_VIEWS
    return bool((label == PECTORAL).any())


def clean_label(label: np.ndarray, prep: Prepared, mlo: bool | None = None, image: Image | None = None) -> np.ndarray:
    """The post-processing of the module docstring (steps 1–3) of a working-grid label map. `mlo` says whether the
    fold cut applies; None decides it from `image` (`is_mlo`)."""
    sx, sy = prep.work_spacing_mm
    area, pixel_mm = sx * sy, float(np.sqrt(sx * sy))
    out = postprocess(label, area)
    out = postprocess(refine_skin_line(out, prep.array, pixel_mm), area)
    if mlo is None:
        mlo = image is not None and is_mlo(image, out)
    if mlo:
        cut, row = cut_below_fold(out, pixel_mm)
        if row is not None:
            out = postprocess(cut, area)
    return out


def _probabilities_matching(mean: torch.Tensor, label: np.ndarray) -> torch.Tensor:
    """The mean softmax with the pixels the post-processing relabelled replaced by the one-hot of their new label."""
    lab = torch.from_numpy(label.astype(np.int64))
    changed = lab != mean.argmax(dim=0)
    if not changed.any():
        return mean
    onehot = torch.nn.functional.one_hot(lab, mean.shape[0]).permute(2, 0, 1).to(mean.dtype)
    return torch.where(changed[None], onehot, mean)


def _argmax3(p: torch.Tensor) -> np.ndarray:
    """Arg-max over 3 class maps (3, H, W) → uint8 (H, W), by comparisons (much faster than argmax over dim 0)."""
    p0, p1, p2 = p[0], p[1], p[2]
    out = torch.zeros(p.shape[1:], dtype=torch.uint8)
    out[(p1 > p0) & (p1 >= p2)] = BREAST
    out[(p2 > p0) & (p2 > p1)] = PECTORAL
    return out.numpy()


@torch.no_grad()
def predict_breast(image: Image, model: BreastSegNet, device: torch.device | str = "cpu", *,
                   samples: int = DEFAULT_SAMPLES, seed: int = 0, fast: bool = False,
                   share_features: bool = True, input_maps: bool = True) -> BreastResult:
    """Segment one mammogram (module docstring). `input_maps=False` skips mapping the entropy and variance onto
    the input grid (they are then None / empty; the label map and the working-grid maps are still there)."""
    check_mammogram(image)
    t0 = time.perf_counter()
    prep = prepare(image)
    x, (h, w) = pad_to_multiple(torch.from_numpy(prep.array)[None, None])
    x = x.to(device)
    t1 = time.perf_counter()
    if fast:
        mean = deterministic_pass(model, x)[:, :h, :w].cpu()
        var = mi = None
        ent = entropy(mean, axis=0)
        n = 0
    else:
        stats = mc_dropout(model, x, samples, seed=seed, share_features=share_features)
        mean, var = stats.mean[:, :h, :w].cpu(), stats.variance[:, :h, :w].cpu()
        ent, mi = stats.entropy[:h, :w].cpu(), stats.mutual_information[:h, :w].cpu()
        n = samples
    t2 = time.perf_counter()
    label = clean_label(mean.argmax(dim=0).numpy(), prep, image=image)
    tissue = label != BACKGROUND
    score = float(ent.numpy()[tissue].mean()) if tissue.any() else float("nan")
    probs = _probabilities_matching(mean, label)
    label_in = _argmax3(to_input_grid(probs, prep))
    entropy_in = to_input_grid(ent, prep).clamp_min(0.0).numpy() if input_maps else None
    variance_in = None
    if var is not None and input_maps:
        chosen = torch.gather(var, 0, torch.from_numpy(label.astype(np.int64))[None])[0]
        variance_in = to_input_grid(chosen, prep).clamp_min(0.0).numpy()
    t3 = time.perf_counter()
    timings = {"preprocess": round((t1 - t0) * 1000, 1), "network": round((t2 - t1) * 1000, 1),
               "map_back": round((t3 - t2) * 1000, 1)}
    return BreastResult(prep, label_in, None if entropy_in is None else entropy_in.astype(np.float32),
                        None if variance_in is None else variance_in.astype(np.float32), n, score,
                        work_label=label, work_mean=mean.numpy(),
                        work_variance=None if var is None else var.numpy(),
                        work_mutual_information=None if mi is None else mi.numpy(), timings_ms=timings)
