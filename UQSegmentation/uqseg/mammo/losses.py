"""Losses of the heteroscedastic heatmap regression (Zech et al., MIDL 2026, Section 2).

All inputs are per row on the 256-column network grid: μ, σ² (…, H) from Eq. (1), the target column y (…, H), the
row distributions p (…, H, W), and a boolean `valid` (…, H) marking the rows that carry a label (muscle present, or
the label extrapolated into the padding). Every loss is the mean over valid rows. Units: grid columns.
"""

from __future__ import annotations

import math

import torch

FIXED_TEMPLATE_VAR = 10.0  # σ² of the template used with the MAE / MSE baselines (grid columns²)


def _masked_mean(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    valid = valid.to(x.dtype)
    return (x * valid).sum() / valid.sum().clamp_min(1.0)


def gaussian_nll(mean, var, target, valid):
    """Eq. (3): −log N(y | μ, σ²) = ½ log(2π σ²) + (y − μ)² / (2σ²)."""
    var = torch.where(valid, var, torch.ones_like(var))  # unlabelled rows: keep their gradients finite
    nll = 0.5 * torch.log(2 * math.pi * var) + (target - mean) ** 2 / (2 * var)
    return _masked_mean(torch.where(valid, nll, torch.zeros_like(nll)), valid)


def laplace_nll(mean, var, target, valid):
    """Eq. (4): −log Laplace(y | μ, b) = log(2b) + |y − μ| / b with the scale b = sqrt(σ²/2) (same variance)."""
    b = torch.sqrt(torch.where(valid, var, torch.ones_like(var)) / 2)  # unlabelled rows: finite gradients
    nll = torch.log(2 * b) + (target - mean).abs() / b
    return _masked_mean(torch.where(valid, nll, torch.zeros_like(nll)), valid)


def mae(mean, var, target, valid):
    """Baseline: mean absolute error |y − μ| (σ² is not trained)."""
    return _masked_mean(torch.where(valid, (target - mean).abs(), torch.zeros_like(mean)), valid)


def mse(mean, var, target, valid):
    """Baseline: mean squared error (y − μ)² (σ² is not trained)."""
    return _masked_mean(torch.where(valid, (target - mean) ** 2, torch.zeros_like(mean)), valid)


def template(mean: torch.Tensor, var: torch.Tensor, width: int, kind: str) -> torch.Tensor:
    """A discretised, normalised Gaussian or Laplace row template with the given (μ, σ²): (…, H) → (…, H, width).

    Gaussian: q(j) ∝ exp(−(j − μ)² / (2σ²)); Laplace: q(j) ∝ exp(−|j − μ| / b), b = sqrt(σ²/2)."""
    cols = torch.arange(width, dtype=mean.dtype, device=mean.device)
    d = cols - mean.unsqueeze(-1)
    v = var.unsqueeze(-1)
    if kind == "gaussian":
        logq = -(d**2) / (2 * v)
    elif kind == "laplace":
        logq = -d.abs() / torch.sqrt(v / 2)
    else:
        raise ValueError(f"unknown template kind {kind!r}")
    return torch.softmax(logq, dim=-1)


def js_divergence(p: torch.Tensor, q: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Jensen–Shannon divergence (nats) between distributions over the last axis: ½KL(p‖m) + ½KL(q‖m), m = (p+q)/2."""
    m = 0.5 * (p + q)
    kl_pm = (p * (torch.log(p + eps) - torch.log(m + eps))).sum(-1)
    kl_qm = (q * (torch.log(q + eps) - torch.log(m + eps))).sum(-1)
    return 0.5 * (kl_pm + kl_qm)


def js_regulariser(prob, mean, var, valid, kind: str):
    """Eq. (5): JS between each row's softmax and a template of the row's own (μ, σ²), mean over valid rows."""
    js = js_divergence(prob, template(mean, var, prob.shape[-1], kind))
    return _masked_mean(torch.where(valid, js, torch.zeros_like(js)), valid)


# name → (data term, template kind for the regulariser, whether the template uses the fixed variance)
LOSSES = {
    "nll_laplace": (laplace_nll, "laplace", False),
    "nll_gaussian": (gaussian_nll, "gaussian", False),
    "mae": (mae, "laplace", True),
    "mse": (mse, "gaussian", True),
}


def heatmap_loss(prob, mean, var, target, valid, name: str = "nll_laplace", js_weight: float = 10.0):
    """The training objective: data term + λ · JS regulariser (Eq. 5). Returns (total, data term, JS term)."""
    data_term, kind, fixed = LOSSES[name]
    data = data_term(mean, var, target, valid)
    tvar = torch.full_like(var, FIXED_TEMPLATE_VAR) if fixed else var
    js = js_regulariser(prob, mean, tvar, valid, kind) if js_weight > 0 else torch.zeros((), device=prob.device)
    return data + js_weight * js, data, js
