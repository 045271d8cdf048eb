"""Boundary-weighted class-weighted cross-entropy for the breast / pectoral model (a fine-tuning option of
train_breast.py): the pixels near a reference boundary — the skin line (tissue / background) and the muscle edge
(pectoral / breast) — count more, so that the network places those edges where the reference has them instead of
averaging over the wide, faint periphery.

Per pixel: w = 1 + β · exp(−d² / (2 σ²)), d = the distance (pixels) to the nearest pixel whose 4-neighbourhood holds
another class in the (augmented) reference; the loss is Σ w · w_class · CE / Σ w · w_class (the normalisation of
torch's weighted cross-entropy, so β = 0 is exactly the plain class-weighted loss).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage


def boundary_weights(labels: torch.Tensor, beta: float, sigma_px: float) -> torch.Tensor:
    """(B, H, W) int labels → (B, H, W) float weights (module docstring)."""
    lab = labels.numpy()
    edge = np.zeros(lab.shape, bool)
    edge[:, 1:, :] |= lab[:, 1:, :] != lab[:, :-1, :]
    edge[:, :-1, :] |= lab[:, 1:, :] != lab[:, :-1, :]
    edge[:, :, 1:] |= lab[:, :, 1:] != lab[:, :, :-1]
    edge[:, :, :-1] |= lab[:, :, 1:] != lab[:, :, :-1]
    out = np.ones(lab.shape, np.float32)
    for i in range(lab.shape[0]):
        if edge[i].any():
            d = ndimage.distance_transform_edt(~edge[i])
            out[i] += beta * np.exp(-(d**2) / (2 * sigma_px**2)).astype(np.float32)
    return torch.from_numpy(out)


def boundary_weighted_ce(logits: torch.Tensor, labels: torch.Tensor, class_weights: torch.Tensor, beta: float,
                         sigma_px: float) -> torch.Tensor:
    per_pixel = F.cross_entropy(logits, labels, reduction="none")  # (B, H, W)
    w = boundary_weights(labels, beta, sigma_px) * class_weights[labels]
    return (w * per_pixel).sum() / w.sum()
