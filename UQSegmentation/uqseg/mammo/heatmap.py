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
    return find_modes_rows(np.asarray(p)[None])[0]


def find_modes_rows(prob: np.ndarray) -> list[list[int]]:
    """`find_modes` of every row of prob (H, W), vectorised over rows: the smoothing, the local maxima and the
    PEAK_MIN_SHARE cut for all rows at once; the pairwise separation test only where a row keeps two or more
    candidates (few rows: most rows hold one peak)."""
    prob = np.asarray(prob, dtype=np.float64)
    padded = np.pad(prob, ((0, 0), (1, 1)), mode="edge")
    s = (padded[:, :-2] + padded[:, 1:-1] + padded[:, 2:]) / 3.0  # 3-tap box filter, edges repeated
    peak = np.zeros(s.shape, bool)
    peak[:, 1:-1] = (s[:, 1:-1] >= s[:, :-2]) & (s[:, 1:-1] > s[:, 2:])
    peak[:, 0] = s[:, 0] > s[:, 1]
    peak[:, -1] = s[:, -1] > s[:, -2]
    top = np.where(peak, s, -np.inf).max(axis=1)
    keep = peak & (s >= PEAK_MIN_SHARE * top[:, None])
    out: list[list[int]] = []
    for r in range(s.shape[0]):
        candidates = np.flatnonzero(keep[r])
        if not peak[r].any():
            out.append([int(np.argmax(s[r]))])
        elif candidates.size == 1:
            out.append([int(candidates[0])])
        else:
            out.append(_separate_modes(s[r], candidates))
    return out


def _separate_modes(s: np.ndarray, candidates: np.ndarray) -> list[int]:
    """Strongest first, a candidate is a new mode when it is ≥ PEAK_MIN_SEPARATION columns from every mode kept and
    the smoothed row drops below PEAK_VALLEY_RATIO × the smaller peak between them."""
    modes: list[int] = []
    for c in candidates[np.argsort(-s[candidates], kind="stable")]:
        separate = True
        for m in modes:
            lo, hi = sorted((int(c), m))
            if hi - lo < PEAK_MIN_SEPARATION or s[lo : hi + 1].min() >= PEAK_VALLEY_RATIO * min(s[c], s[m]):
                separate = False
                break
        if separate:
            modes.append(int(c))
    return modes


def multimodal_rows(prob: np.ndarray) -> np.ndarray:
    """prob (H, W) → bool (H,): rows with two or more significant modes."""
    return np.array([len(m) >= 2 for m in find_modes_rows(prob)], dtype=bool)
