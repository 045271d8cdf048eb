"""Row-wise heatmap decoding of the pectoral boundary (Zech et al., MIDL 2026, Section 2).

The network gives one logit map L (B, H, W) on the 256×256 network grid. Each row r is a distribution over columns:

    p_r(j) = softmax_j L[r, j]                                   (Eq. 2)
    μ_r    = Σ_j j · p_r(j)                                      (Eq. 1, soft-argmax)
    σ²_r   = Σ_j (j − μ_r)² · p_r(j)                             (Eq. 1, second central moment)

j is the column index of a pixel centre on the network grid, so μ and σ are in network-grid columns.
"""

from __future__ import annotations

import numpy as np
import torch


def row_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Eq. (2): softmax over the last (column) axis; logits (..., H, W) → probabilities of the same shape."""
    return torch.softmax(logits, dim=-1)


def row_moments(prob: torch.Tensor, var_floor: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. (1): mean and variance of each row's distribution over columns. prob (..., H, W) → μ, σ² (..., H).

    `var_floor` (grid columns²) is added to σ² so the likelihoods stay finite for a one-pixel-sharp row."""
    cols = torch.arange(prob.shape[-1], dtype=prob.dtype, device=prob.device)
    mean = (prob * cols).sum(-1)
    var = (prob * (cols - mean.unsqueeze(-1)) ** 2).sum(-1)
    return mean, var + var_floor


# Multimodality rule (documented in the model card and README):
# a row's distribution is smoothed with a 3-tap box filter; a local maximum is a *peak* when it holds at least
# PEAK_MIN_SHARE of the row's largest peak height, and two peaks count as separate modes only when they are at least
# PEAK_MIN_SEPARATION columns apart and the lowest point between them drops below PEAK_VALLEY_RATIO times the smaller
# peak. A row is multimodal when it has two or more such modes; an image when any of its muscle rows is.
PEAK_MIN_SHARE = 0.25
PEAK_MIN_SEPARATION = 5
PEAK_VALLEY_RATIO = 0.5


def find_modes(p: np.ndarray) -> list[int]:
    """Column indices of the significant modes of one row's distribution p (W,), strongest first (rule above)."""
    p = np.asarray(p, dtype=np.float64)
    s = np.convolve(np.pad(p, 1, mode="edge"), np.ones(3) / 3, mode="valid")
    interior = (s[1:-1] >= s[:-2]) & (s[1:-1] > s[2:])
    candidates = list(np.flatnonzero(interior) + 1)
    if s[0] > s[1]:
        candidates.insert(0, 0)
    if s[-1] > s[-2]:
        candidates.append(len(s) - 1)
    if not candidates:
        return [int(np.argmax(s))]
    top = max(s[c] for c in candidates)
    candidates = [c for c in candidates if s[c] >= PEAK_MIN_SHARE * top]
    modes: list[int] = []
    for c in sorted(candidates, key=lambda c: -s[c]):
        separate = True
        for m in modes:
            lo, hi = sorted((c, m))
            if hi - lo < PEAK_MIN_SEPARATION or s[lo : hi + 1].min() >= PEAK_VALLEY_RATIO * min(s[c], s[m]):
                separate = False
                break
        if separate:
            modes.append(int(c))
    return modes


def multimodal_rows(prob: np.ndarray) -> np.ndarray:
    """prob (H, W) → bool (H,): rows with two or more significant modes."""
    return np.array([len(find_modes(row)) >= 2 for row in np.asarray(prob)], dtype=bool)
