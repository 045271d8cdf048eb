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
log-normal form stays exact where the plain delta method on p_c (Var ≈ p_c² w_c) under-estimates. For the top class
t it is the complement 1 − p_t = Σ_{c≠t} p_c that is small, so its variance is that of log-normal 1 − p_t, with
    w_rest = Var[log(1 − softmax(η)_t)] ≈ p_t² (e_t − π)ᵀ Σ (e_t − π),   π_c = p_c / (1 − p_t) for c ≠ t, π_t = 0
(two classes: w_rest = w of the other class, so both classes get the same variance, as they must).
Second order. The log-normal form is exact to second order in the noise only where p_c ≪ 1; at p ≈ ½ (a boundary
voxel) the next term of the expansion lowers the variance. For two classes, δ ~ N(m, s²) and p = σ(m), the delta
method to O(s⁴) gives Var[σ(δ)] ≈ σ'² s² (1 + s² (1 − 6σ' + ½ (1 − 2p)²)) with σ' = p(1 − p), the log-normal form
σ'² s² (1 + 1.5 (1 − p)² s²); each variance is therefore multiplied by 1 + s² g(p), g(p) = 1.5 − 8 p (1 − p)
− 1.5 (1 − p)² (p the smaller side: the class's own p, or 1 − p_t for the top class), so that the result is exact
to O(s⁴) for two classes; for C classes s_c² is the variance of the class's one-vs-rest log-odds, w_c / (1 − p_c)².
Against quadrature (two classes, m from −12 to 12 nats) the largest relative error of the variance at s = 0.5 falls
from 20 % to 10 % with it, the median from 0.4 % to 0.1 %.

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


def diagonal_quadratic(u: torch.Tensor, d: torch.Tensor, axis: int = 1) -> torch.Tensor:
    """The diagonal part of uᵀ Σ u = Σ_c u_c² d_c (keepdim)."""
    return (u * u * d).sum(axis, keepdim=True)


def binary_spread(p: torch.Tensor, difference_variance: torch.Tensor, axis: int = 1) -> torch.Tensor:
    """Two classes: w_c for c = 0, 1 from the variance s² of δ = η_1 − η_0 (shape of p without `axis`):
    w_0 = p_1² s², w_1 = p_0² s²."""
    return p.flip(axis).pow(2) * difference_variance.unsqueeze(axis)


def rest_direction(p: torch.Tensor, axis: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For the top class t (the first of tied ones): (is_top, q, u) with q = Σ_{c≠t} p_c = 1 − p_t (summed, so that it
    does not round to 0 next to p_t ≈ 1) and u = e_t − π, π_c = p_c / q for c ≠ t (π_t = 0): the gradient of
    log(1 − softmax(η)_t) at μ is −p_t u, so its variance is w_rest = p_t² uᵀ Σ u."""
    is_top = p == p.amax(axis, keepdim=True)
    is_top &= is_top.cumsum(axis) == 1
    rest = p.masked_fill(is_top, 0.0)
    q = rest.sum(axis, keepdim=True)
    u = torch.where(is_top, torch.ones_like(p), -rest / q.clamp_min(torch.finfo(p.dtype).tiny))
    return is_top, q, u


def _second_order_gain(p_small: torch.Tensor) -> torch.Tensor:
    """g(p) = 1.5 − 8 p (1 − p) − 1.5 (1 − p)²: the s² coefficient of (second-order variance) / (log-normal variance)
    for σ(δ), δ ~ N(m, s²), p = σ(m) the smaller side (module docstring): 0 as p → 0, −0.875 at p = ½."""
    q = 1 - p_small
    return 1.5 - 8 * p_small * q - 1.5 * q * q


def lognormal_moments(p: torch.Tensor, w: torch.Tensor, w_rest: torch.Tensor, is_top: torch.Tensor,
                      axis: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, variance) of softmax(η) from p = softmax(μ) and the log-probability variances w (module docstring):
    mean_c = p_c e^{w_c/2} / Σ_j p_j e^{w_j/2}; variance_c = mean_c² (e^{w_c} − 1) for c ≠ t, and for the top class t
    (`is_top`) the variance of the small complement 1 − p_t, log-normal the same way: m_rest² (e^{w_rest} − 1) with
    m_rest = Σ_{c≠t} mean_c and w_rest (keepdim shape) from `rest_direction` — next to p_t ≈ 1 the complement, not
    p_t, is what is log-linear; for two classes both classes get the same variance, as they must. Each variance is
    then multiplied by the second-order factor max(¼, 1 + s_c² g(p_c)) (`_second_order_gain`; s_c² the variance of
    the class's one-vs-rest log-odds: w_c / (1 − p_c)², for the top class w_rest / p_t², with p_c its smaller side)."""
    w = w.clamp_min(0)
    w_rest = w_rest.clamp_min(0)
    mean = (0.5 * w).exp_().mul_(p)
    mean = mean.div_(mean.sum(axis, keepdim=True))
    # every class as if it were not the top one, then the top class's entries replaced (keepdim arrays)
    q = 1 - p
    s2 = w / (q * q)
    variance = torch.expm1(w).mul_(mean).mul_(mean).mul_((1 + s2 * _second_order_gain(p)).clamp_min_(0.25))
    p_top = p.masked_fill(~is_top, 0.0).sum(axis, keepdim=True)
    p_rest = p.masked_fill(is_top, 0.0).sum(axis, keepdim=True)  # 1 − p_t without the rounding next to p_t ≈ 1
    m_rest = mean.masked_fill(is_top, 0.0).sum(axis, keepdim=True)
    top_gain = (1 + w_rest / (p_top * p_top) * _second_order_gain(p_rest)).clamp_min_(0.25)
    top_var = m_rest * m_rest * torch.expm1(w_rest) * top_gain
    return mean, torch.where(is_top, top_var, variance)
