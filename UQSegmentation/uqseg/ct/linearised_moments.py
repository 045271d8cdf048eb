"""Closed-form moments of softmax(η), η ~ N(μ, Σ) (the logit distribution of Eq. 13), for voxels whose logit noise is
small: the delta method applied to the log-probabilities, with the log-normal moments of the result.

Why. Eq. (14) estimates p̄_c = E[softmax(η)_c] and Var[softmax(η)_c] from k samples. Where the logit noise is small
compared with the curvature of log-softmax (≈ 1 nat), the log-probabilities are nearly linear in η, and their
first-order Taylor expansion at μ gives both moments in closed form, with less error than k = 30 samples have
(measured on the shipped ct-organs model: `docs/ct-sampling.md`). `uqseg.ct.mc_estimate` uses these moments where
every class logit has a standard deviation ≤ `LINEARISED_MAX_STD` and samples everywhere else.

The maths, per voxel, with p = softmax(μ) and Σ the C×C logit covariance of the voxel (Eq. 5 / 7; nats²):
    log softmax(η)_c ≈ log p_c + (e_c − p)ᵀ (η − μ)            (delta method, first order)
so log softmax(η)_c is approximately Gaussian with mean log p_c and variance
    w_c = (e_c − p)ᵀ Σ (e_c − p)                                 (nats²)
and softmax(η)_c approximately log-normal:
    E ≈ p_c e^{w_c/2},   Var ≈ E² (e^{w_c} − 1).
The means are renormalised to sum to 1. For a small class (p_c ≪ 1) log p_c ≈ η_c − η_top is exactly linear, so the
log-normal form stays exact where the plain delta method on p_c (Var ≈ p_c² w_c) under-estimates; for the top class
w_c is small and both agree.

Σ = diag(d) + P Pᵀ is never formed: w_c = d_c (1 − 2 p_c) + Σ_j p_j² d_j + Σ_r ((e_c − p)ᵀ P_{:,r})², the last term
from the form's low-rank factor (`uqseg.ct.mc_estimate._LowRankSlabs.spread`). Two classes: with δ = η_1 − η_0 of
variance s² (the only thing softmax depends on), w_1 = p_0² s² and w_0 = p_1² s².
Arrays are any layout with the class axis at `axis` (probabilities, nats² for w).
"""

from __future__ import annotations

import torch

#: the largest standard deviation (nats) of any class logit of a voxel for which the closed form is used
LINEARISED_MAX_STD = 0.5


def diagonal_spread(p: torch.Tensor, d: torch.Tensor, axis: int = 1) -> torch.Tensor:
    """The diagonal part of w_c = (e_c − p)ᵀ diag(d) (e_c − p) = d_c (1 − 2 p_c) + Σ_j p_j² d_j."""
    return d * (1 - 2 * p) + (p * p * d).sum(axis, keepdim=True)


def binary_spread(p: torch.Tensor, difference_variance: torch.Tensor, axis: int = 1) -> torch.Tensor:
    """Two classes: w_c for c = 0, 1 from the variance s² of δ = η_1 − η_0 (shape of p without `axis`):
    w_0 = p_1² s², w_1 = p_0² s²."""
    return p.flip(axis).pow(2) * difference_variance.unsqueeze(axis)


def lognormal_moments(p: torch.Tensor, w: torch.Tensor, axis: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, variance) of softmax(η) from p = softmax(μ) and the log-probability variances w (module docstring):
    mean_c = p_c e^{w_c/2} / Σ_j p_j e^{w_j/2}, variance_c = mean_c² (e^{w_c} − 1)."""
    w = w.clamp_min(0)
    mean = p * (0.5 * w).exp()
    mean = mean / mean.sum(axis, keepdim=True)
    return mean, mean * mean * torch.expm1(w)
