"""Out-of-distribution map for ct-organs: the Mahalanobis distance of the network's bottleneck features to a
class-conditional Gaussian with a tied covariance fitted on the TRAINING patients (Lee et al., "A Simple Unified
Framework for Detecting Out-of-Distribution Samples and Adversarial Attacks", NeurIPS 2018, Eq. 2; for
segmentation networks González et al., "Distance-based detection of out-of-distribution silent failures for
Covid-19 lung lesion segmentation", Medical Image Analysis 2022, who take the distance of the encoder's last
features to their training distribution).

Features: the output of the DynUNet bottleneck (width filters[-1]) of each sliding window, one feature vector per
bottleneck cell (a cell covers prod(strides) working-grid voxels, e.g. 4 × 8 × 8 voxels = 8 × 16 × 16 mm at 2 mm,
and sees far more through its receptive field: the anatomy around it).
Fit (`fit_gaussian`, Lee et al. Eq. 1): a class of every training cell (the majority label of its voxels:
background or an organ), class means μ_c and ONE covariance Σ = (1/N) Σ_c Σ_{i∈c} (f_i − μ_c)(f_i − μ_c)ᵀ, shrunk
towards its mean variance (Σ ← (1 − s) Σ + s · tr(Σ)/D · I, s = `shrinkage`) so that it stays invertible with few
cells.
Score (Eq. 2): M(f) = min_c sqrt((f − μ_c)ᵀ Σ⁻¹ (f − μ_c)), dimensionless (a Mahalanobis distance in feature
space); computed per cell as ||Lᵀf − Lᵀμ_c|| with L the Cholesky factor of Σ⁻¹ (Σ⁻¹ = L Lᵀ), then trilinearly
up-sampled to the window's voxels and stitched over windows like the probabilities (uqseg.ct.inference).
Threshold: a high percentile (card: `ood.threshold_percentile`) of the map over the training patients' body voxels
(HU > −500), computed through the same inference pipeline (Training/fit_ood_ct.py) — never on test data.

Stored beside the weights as `ood.safetensors`: `means` (C, D), `whitening` (D, D) = L, `threshold` (1,),
`percentile` (1,); the card's `ood` section names the file and says how it was made.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

BODY_HU = -500.0


@dataclass
class FeatureGaussian:
    """Class-conditional Gaussian with a tied covariance in bottleneck-feature space (module docstring)."""

    means: torch.Tensor  # (C, D)
    whitening: torch.Tensor  # (D, D) = L, Σ⁻¹ = L Lᵀ
    threshold: float | None = None  # Mahalanobis distance above which a voxel is out of distribution
    percentile: float | None = None

    def to(self, device) -> "FeatureGaussian":
        return FeatureGaussian(self.means.to(device), self.whitening.to(device), self.threshold, self.percentile)

    @property
    def dims(self) -> int:
        return int(self.means.shape[1])

    def save(self, path: Path) -> None:
        from safetensors.torch import save_file

        t = {"means": self.means.float().cpu().contiguous(), "whitening": self.whitening.float().cpu().contiguous()}
        if self.threshold is not None:
            t["threshold"] = torch.tensor([float(self.threshold)])
        if self.percentile is not None:
            t["percentile"] = torch.tensor([float(self.percentile)])
        save_file(t, str(path))

    @classmethod
    def load(cls, path: Path) -> "FeatureGaussian":
        from safetensors.torch import load_file

        t = load_file(str(path))
        return cls(t["means"].float(), t["whitening"].float(),
                   float(t["threshold"][0]) if "threshold" in t else None,
                   float(t["percentile"][0]) if "percentile" in t else None)


class BottleneckTap:
    """Keeps the bottleneck output of the last forward pass of a StochasticSegNet3d (a forward hook on the DynUNet's
    `bottleneck` block, which its skip layers call once per pass). Use as a context manager."""

    def __init__(self, model):
        self.model, self.features, self._handle = model, None, None

    def __enter__(self) -> "BottleneckTap":
        def hook(_module, _inp, out):
            self.features = out

        self._handle = self.model.backbone.bottleneck.register_forward_hook(hook)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()
        self.features = None


def cell_size(model) -> tuple[int, int, int]:
    """Working-grid voxels (z, y, x) per bottleneck cell: the product of the strides along each axis."""
    return tuple(int(np.prod([s[a] for s in model.strides])) for a in range(3))


def mahalanobis(features: torch.Tensor, gaussian: FeatureGaussian) -> torch.Tensor:
    """(B, D, z, y, x) features → (B, z, y, x) min over classes of the Mahalanobis distance (Eq. 2 of Lee et al.)."""
    b, d = features.shape[:2]
    f = features.float().movedim(1, -1).reshape(-1, d)  # (N, D)
    w = gaussian.whitening.to(f)
    g = f @ w  # (N, D): Lᵀ f as rows
    gm = gaussian.means.to(f) @ w  # (C, D)
    d2 = (g * g).sum(1, keepdim=True) - 2 * g @ gm.T + (gm * gm).sum(1)[None]
    return d2.clamp_min(0).min(1).values.sqrt().reshape(b, *features.shape[2:])


def ood_window_map(features: torch.Tensor, gaussian: FeatureGaussian, size) -> torch.Tensor:
    """The (B, 1, *size) voxel map of one window: the cells' distances up-sampled trilinearly to the window."""
    score = mahalanobis(features, gaussian)[:, None]
    return F.interpolate(score, size=tuple(int(s) for s in size), mode="trilinear", align_corners=False)


def cell_classes(label: np.ndarray, cell: tuple[int, int, int], classes: int) -> np.ndarray:
    """Majority label of every cell of a (z, y, x) label window whose shape is a multiple of `cell`."""
    onehot = F.one_hot(torch.from_numpy(label.astype(np.int64)), classes).movedim(-1, 0)[None].float()
    frac = F.avg_pool3d(onehot, cell, cell)[0]
    return frac.argmax(0).numpy()


def fit_gaussian(features: list[np.ndarray], classes: list[np.ndarray], n_classes: int,
                 shrinkage: float = 0.05) -> FeatureGaussian:
    """Lee et al. Eq. 1: class means and the tied covariance of (N_i, D) feature rows with their (N_i,) classes;
    Σ shrunk towards tr(Σ)/D · I by `shrinkage`. A class without cells gets the overall mean (it then only makes
    distances smaller, never flags)."""
    f = np.concatenate(features).astype(np.float64)
    c = np.concatenate(classes).astype(np.int64)
    d = f.shape[1]
    means = np.tile(f.mean(0), (n_classes, 1))
    centred = np.empty_like(f)
    for k in range(n_classes):
        m = c == k
        if m.any():
            means[k] = f[m].mean(0)
            centred[m] = f[m] - means[k]
    cov = centred.T @ centred / len(f)
    cov = (1 - shrinkage) * cov + shrinkage * np.trace(cov) / d * np.eye(d)
    prec = np.linalg.inv(cov)
    prec = (prec + prec.T) / 2
    whitening = np.linalg.cholesky(prec)  # Σ⁻¹ = L Lᵀ
    return FeatureGaussian(torch.from_numpy(means).float(), torch.from_numpy(whitening).float())


def organ_ood_fractions(work_ood: np.ndarray, work_label: np.ndarray, organs: list[str],
                        threshold: float) -> dict:
    """Per organ: the share of its predicted working-grid voxels whose OOD score exceeds `threshold` (None when the
    organ is not predicted)."""
    out = {}
    for i, name in enumerate(organs, start=1):
        m = work_label == i
        out[name] = round(float((work_ood[m] > threshold).mean()), 4) if m.any() else None
    return out
