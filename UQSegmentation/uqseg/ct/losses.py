"""Training loss of the stochastic segmentation network, Eq. (11)–(12) of Kampen, Aspe et al. (NLDL 2026).

    L = 1/k Σ_s [ CE(softmax(η_s), y) + SoftDice(softmax(η_s), y) ]          (Eq. 11–12, k samples of Eq. 13)
        + λ_KL · KL(N(μ, Σ) ‖ N(μ, I))                                       (Eq. 8, per logit dimension)
        + λ_orth · ‖𝔅 𝔅ᵀ − I‖²_F / (M·C)²                                   (Eq. 9, 𝔅 = the M·C basis rows)
        + λ_w · mean_k H(π_k)                                                (Eq. 10, entropy of the block weights)

- CE: mean over voxels of −log softmax(η_s)_y (nats); voxels labelled `ignore_index` do not count.
- SoftDice: 1 − mean over the foreground classes c ≥ 1 of (2 Σ p_c y_c + s) / (Σ p_c + Σ y_c + s), sums over the
  batch and all voxels (s = 1 smoothing, so a class absent from label and prediction scores 1).
- the orthogonality term wants the rows of all bases orthonormal: each basis spans its own C-dimensional subspace of
  R^R, different bases different ones (needs M·C ≤ R: 3 × 2 ≤ 16 by default).
- the entropy term pushes each block to choose one basis (low entropy of π_k).
The deterministic baseline uses the same CE + SoftDice on μ (k = 1, no regularisers).
Defaults: k = 10 training samples, λ_KL = 1e-3, λ_orth = 1e-2, λ_w = 1e-3 (ours; see the model card).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from uqseg.ct.covariance import LogitDistribution


@dataclass
class LossWeights:
    samples: int = 10
    kl: float = 1e-3
    orthogonality: float = 1e-2
    weight_entropy: float = 1e-3


def cross_entropy(logits: torch.Tensor, label: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """Mean voxel CE of logits (B, C, *S) against an integer label (B, *S), nats."""
    return F.cross_entropy(logits, label.long(), ignore_index=ignore_index)


def soft_dice_loss(prob: torch.Tensor, label: torch.Tensor, ignore_index: int = 255, smooth: float = 1.0) -> torch.Tensor:
    """1 − mean foreground soft Dice of probabilities (B, C, *S) against a label (B, *S) (sums over batch + voxels)."""
    c = prob.shape[1]
    valid = (label != ignore_index)
    onehot = F.one_hot(torch.where(valid, label, 0).long(), c).movedim(-1, 1).to(prob.dtype)
    w = valid[:, None].to(prob.dtype)
    dims = [0] + list(range(2, prob.ndim))
    inter = (prob * onehot * w).sum(dims)
    denom = (prob * w).sum(dims) + (onehot * w).sum(dims)
    dice = (2 * inter + smooth) / (denom + smooth)
    return 1 - dice[1:].mean()


def orthogonality(bases: torch.Tensor) -> torch.Tensor:
    """Eq. (9): ‖𝔅 𝔅ᵀ − I‖²_F / (M·C)² with 𝔅 the (M·C, R) stack of the bases' rows."""
    rows = bases.reshape(-1, bases.shape[-1])
    gram = rows @ rows.T
    eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    return (gram - eye).pow(2).sum() / gram.shape[0] ** 2


def weight_entropy(dist: LogitDistribution) -> torch.Tensor:
    """Eq. (10): mean over blocks of the entropy (nats) of the basis weights π_k."""
    pi = dist.block_weights()
    return -torch.xlogy(pi, pi).sum(-1).mean()


def ssn_loss(dist: LogitDistribution, label: torch.Tensor, weights: LossWeights = LossWeights(),
             generator: torch.Generator | None = None, ignore_index: int = 255) -> tuple[torch.Tensor, dict]:
    """Eq. (11)–(12) for one batch; returns (loss, its terms as floats for logging)."""
    if dist.form == "deterministic":
        ce = cross_entropy(dist.mean, label, ignore_index)
        dice = soft_dice_loss(dist.mean.softmax(1), label, ignore_index)
        return ce + dice, {"ce": float(ce.detach()), "dice": float(dice.detach())}
    eta = dist.sample(weights.samples, generator=generator)  # (k, B, C, *S)
    k = eta.shape[0]
    ce = sum(cross_entropy(eta[s], label, ignore_index) for s in range(k)) / k
    dice = sum(soft_dice_loss(eta[s].softmax(1), label, ignore_index) for s in range(k)) / k
    kl = dist.kl_to_unit()
    loss = ce + dice + weights.kl * kl
    terms = {"ce": float(ce.detach()), "dice": float(dice.detach()), "kl": float(kl.detach())}
    if dist.form in ("single_basis", "mixture_of_bases"):
        orth = orthogonality(dist.bases)
        loss = loss + weights.orthogonality * orth
        terms["orth"] = float(orth.detach())
    if dist.form == "mixture_of_bases":
        went = weight_entropy(dist)
        loss = loss + weights.weight_entropy * went
        terms["weight_entropy"] = float(went.detach())
    return loss, terms
