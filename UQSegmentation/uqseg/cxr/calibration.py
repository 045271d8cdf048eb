"""Per-node calibration of the cxr-landmarks std (issue 19, point 2): a monotone map per node index, fitted on
validation images, that makes the std a user sees point at the node that is wrong.

The latent sampling of the HybridGNet VAE gives every node a population std (σ_x, σ_y) over N decoded samples; its
node std ½ (σ_x + σ_y) ranks nodes poorly against their error (pooled Spearman 0.19 on the 21 JSRT val images): nodes
of the heart and of the lung bases are wrong far more often than their std says. The calibration is one monotone
increasing affine map per node index i,

    σ'_x = offset_i + scale_i · σ_x,   σ'_y = offset_i + scale_i · σ_y     (scale_i > 0, offset_i ≥ 0)

so the calibrated node std is ½ (σ'_x + σ'_y) = offset_i + scale_i · ½ (σ_x + σ_y), still increasing in the MC std
of that node. The shipped form is the pure per-node scale (offset 0) unless the card says otherwise; every form
here is fitted so that the calibrated per-axis std matches the per-axis spread of node i's error on the fitting
images (Euclidean error e of a 2-D isotropic Gaussian with per-axis σ: E[e²] = 2σ², E[e] = σ √(π/2)).

Forms (`FITS`, each (S, E) → (scale, offset) with S, E of shape (images, nodes): node std and node error):
- `scale_rms`: scale_i = sqrt(mean_n E² / (2 mean_n S²)) — the ratio of RMS error to RMS std;
- `scale_lsq`: the least-squares slope through the origin of E on S, / √(π/2);
- `affine`: least squares E ≈ a_i + b_i S per node, b_i ≥ 0 and a_i ≥ 0 (clipped, then refitted), / √(π/2);
- `affine_shared_slope`: one slope b ≥ 0 for all nodes, a per-node intercept a_i ≥ 0, / √(π/2).

The file (`node_calibration.json` beside the weights, named by the card's `node_calibration.file` with its
`sha256`, checked like the weights by `uqseg.models.registry.checked_file`): {"nodes": 120, "scale": [120 numbers],
"offset": [120 numbers], "form": ...}. A card without a `node_calibration` section loads as before (raw std).

Cross-validation (`cross_validated`, `nested_cross_validated`): the calibration is fitted on some images and scored
on the others; the held-out calibrated stds of every fold are pooled and their Spearman with the errors over all
(node, image) pairs is the honest estimate (the issue's definition).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from uqseg.metrics import spearman

NODES = 120
FILE_FORMAT = "uqseg-cxr-node-calibration-1"
_MEAN_ERROR_PER_SIGMA = math.sqrt(math.pi / 2.0)  # E|e| / σ for a 2-D isotropic Gaussian (Rayleigh mean)


@dataclass(frozen=True)
class NodeCalibration:
    """σ' = offset + scale · σ per node index, both axes (module docstring)."""

    scale: np.ndarray  # (120,) > 0
    offset: np.ndarray  # (120,) >= 0
    form: str = "scale_rms"
    file: str | None = None  # the file it was read from (for messages and summary.json)

    def apply(self, std: np.ndarray) -> np.ndarray:
        """(120, 2) raw per-axis std → calibrated (120, 2), same units."""
        std = np.asarray(std, dtype=np.float64)
        return self.offset[:, None] + self.scale[:, None] * std

    def apply_node_std(self, node_std: np.ndarray) -> np.ndarray:
        """(..., 120) raw node std ½ (σ_x + σ_y) → calibrated, same units (equal to ½ of the calibrated axes)."""
        return self.offset + self.scale * np.asarray(node_std, dtype=np.float64)

    def to_json(self) -> dict:
        return {"format": FILE_FORMAT, "form": self.form, "nodes": NODES,
                "scale": [round(float(v), 6) for v in self.scale],
                "offset": [round(float(v), 6) for v in self.offset]}

    def save(self, path: Path) -> Path:
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n")
        return Path(path)


def parse(data, where: str) -> NodeCalibration:
    """NodeCalibration from the file's JSON object; ValueError (one line, without `where`) when it is not one."""
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    arrays = {}
    for key in ("scale", "offset"):
        v = data.get(key)
        try:
            a = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{key!r} is not a list of numbers") from None
        if a.shape != (NODES,):
            raise ValueError(f"{key!r} has shape {list(a.shape)}, the model has {NODES} nodes")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{key!r} holds NaN or infinite values")
        arrays[key] = a
    if not np.all(arrays["scale"] > 0):
        raise ValueError("'scale' must be > 0 for every node (the map must stay increasing in the std)")
    if not np.all(arrays["offset"] >= 0):
        raise ValueError("'offset' must be >= 0 for every node (a std cannot be negative)")
    return NodeCalibration(arrays["scale"], arrays["offset"], str(data.get("form", "scale_rms")), where)


def load_calibration(card) -> NodeCalibration | None:
    """The card's node calibration (`node_calibration.file` inside the model folder, sha256 `node_calibration.sha256`
    checked like the weights), or None when the card has no `node_calibration` section (models before 1.1.0).
    Every failure is a `ModelError` with one line naming the file."""
    from uqseg.models.registry import ModelError, checked_file

    spec = card.card.get("node_calibration") or {}
    if not spec.get("file"):
        return None
    path = card.folder / spec["file"]
    checked_file(card, path, spec.get("sha256"), "node calibration", "node_calibration.sha256")
    try:
        return parse(json.loads(path.read_text(encoding="utf-8")), str(path))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ModelError(f"{path}: not a node calibration for {card.id} ({' '.join(str(e).split())[:200]})") from None


# ------------------------------------------------------------------------------------------------------- fitting
def _check(S, E):
    S, E = np.asarray(S, dtype=np.float64), np.asarray(E, dtype=np.float64)
    if S.ndim != 2 or S.shape != E.shape or S.shape[0] < 2:
        raise ValueError(f"S and E must be (images >= 2, nodes) of one shape, got {S.shape} and {E.shape}")
    return S, E


def fit_scale_rms(S, E):
    S, E = _check(S, E)
    scale = np.sqrt((E ** 2).mean(0) / (2.0 * np.maximum((S ** 2).mean(0), 1e-12)))
    return np.maximum(scale, 1e-6), np.zeros(S.shape[1])


def fit_scale_lsq(S, E):
    S, E = _check(S, E)
    scale = (S * E).sum(0) / np.maximum((S ** 2).sum(0), 1e-12) / _MEAN_ERROR_PER_SIGMA
    return np.maximum(scale, 1e-6), np.zeros(S.shape[1])


def fit_affine(S, E, min_slope: float = 1e-6):
    """Per node E ≈ a + b S, b ≥ min_slope, a ≥ 0 (least squares under those bounds: at most two cases each)."""
    S, E = _check(S, E)
    sm, em = S.mean(0), E.mean(0)
    var = ((S - sm) ** 2).sum(0)
    b = ((S - sm) * (E - em)).sum(0) / np.maximum(var, 1e-12)
    b = np.maximum(b, min_slope)
    a = em - b * sm
    neg = a < 0  # the intercept bound is active: the best line through the origin
    b[neg] = np.maximum((S[:, neg] * E[:, neg]).sum(0) / np.maximum((S[:, neg] ** 2).sum(0), 1e-12), min_slope)
    a[neg] = 0.0
    return b / _MEAN_ERROR_PER_SIGMA, a / _MEAN_ERROR_PER_SIGMA


def fit_affine_shared_slope(S, E, min_slope: float = 1e-6):
    """E ≈ a_i + b S with one slope b ≥ min_slope over all nodes (within-node least squares) and a_i ≥ 0."""
    S, E = _check(S, E)
    sm, em = S.mean(0), E.mean(0)
    b = max(float(((S - sm) * (E - em)).sum() / max(((S - sm) ** 2).sum(), 1e-12)), min_slope)
    a = np.maximum(em - b * sm, 0.0)
    return np.full(S.shape[1], b / _MEAN_ERROR_PER_SIGMA), a / _MEAN_ERROR_PER_SIGMA


FITS: dict[str, Callable] = {"scale_rms": fit_scale_rms, "scale_lsq": fit_scale_lsq, "affine": fit_affine,
                             "affine_shared_slope": fit_affine_shared_slope}


def calibrated_node_std(fit: Callable, S_fit, E_fit, S_apply) -> np.ndarray:
    """Fit on (S_fit, E_fit), apply to S_apply (images, nodes): the calibrated node std."""
    scale, offset = fit(S_fit, E_fit)
    return offset + scale * np.asarray(S_apply, dtype=np.float64)


# ------------------------------------------------------------------------------------------------ cross-validation
def contiguous_folds(n: int, k: int) -> list[np.ndarray]:
    """k folds of consecutive indices 0..n−1 (sizes differing by at most one)."""
    if not 2 <= k <= n:
        raise ValueError(f"need 2 <= folds <= images, got {k} folds of {n} images")
    return [np.asarray(p) for p in np.array_split(np.arange(n), k)]


def held_out_predictions(fit: Callable, S, E, folds) -> np.ndarray:
    """(images, nodes) calibrated node std, each image's from the map fitted on the images of the other folds."""
    S, E = _check(S, E)
    out = np.full(S.shape, np.nan)
    for test in folds:
        train = np.setdiff1d(np.arange(S.shape[0]), test)
        out[test] = calibrated_node_std(fit, S[train], E[train], S[test])
    if np.isnan(out).any():
        raise ValueError("the folds do not cover every image")
    return out


def pooled_spearman(node_std, error) -> float:
    """The issue's number: Spearman over every (node, image) pair pooled."""
    return spearman(np.asarray(node_std).reshape(-1), np.asarray(error).reshape(-1))


def cross_validated(fit: Callable, S, E, folds) -> float:
    """Pooled Spearman of the held-out calibrated stds (every image scored by a map that never saw it)."""
    return pooled_spearman(held_out_predictions(fit, S, E, folds), E)


def nested_cross_validated(fits: dict, S, E, outer_folds, inner_k: int) -> dict:
    """The honest estimate of "choose the form by cross-validation, then fit it": in every outer fold the form is
    chosen by an inner `inner_k`-fold CV on the outer training images only (raw std among the candidates, key
    'raw'), fitted on all of them and applied to the held-out images; the held-out stds are pooled.
    Returns {'spearman': pooled, 'chosen': [form per outer fold], 'held_out': (images, nodes)}."""
    S, E = _check(S, E)
    held, chosen = np.full(S.shape, np.nan), []
    for test in outer_folds:
        train = np.setdiff1d(np.arange(S.shape[0]), test)
        inner = contiguous_folds(len(train), inner_k)
        scores = {"raw": pooled_spearman(S[train], E[train])}
        scores.update({name: cross_validated(f, S[train], E[train], inner) for name, f in fits.items()})
        best = max(scores, key=lambda k: scores[k])
        chosen.append(best)
        held[test] = S[test] if best == "raw" else calibrated_node_std(fits[best], S[train], E[train], S[test])
    return {"spearman": pooled_spearman(held, E), "chosen": chosen, "held_out": held}
