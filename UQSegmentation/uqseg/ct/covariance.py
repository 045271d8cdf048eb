"""Gaussian logit distributions of a Stochastic Segmentation Network with four covariance forms (Kampen, Aspe et al.,
"Structured Covariance Modeling Using Learned Mixture-of-Bases for Uncertainty in 3D Segmentation", NLDL 2026;
Monteiro et al., "Stochastic Segmentation Networks", NeurIPS 2020).

Shapes and units. B batch, C classes, S = (Z, Y, X) the voxel grid of the network output (the working grid of
`uqseg.ct.preprocess`, array order z, y, x), N = Z·Y·X. The logit field η ∈ R^{C×N} (nats: the log-odds units of the
softmax) is Gaussian, η ~ N(μ, Σ), and every form writes Σ = P Pᵀ + diag(d) with d = exp(log_var) > 0:

- ``diagonal``:  Σ = diag(d); voxels and classes independent.
- ``lowrank`` (Eq. 3, Monteiro et al.):  P(x) ∈ R^{CN×R} predicted directly (C·R output channels), one global
  ε ∈ R^R, so Σ_{(c,n),(c',m)} = Σ_r P_{c,r}(n) P_{c',r}(m) + δ d_c(n).
- ``single_basis`` (Eq. 4–5):  a per-voxel scale vector a(n) ∈ R^R is predicted and projected by ONE learned basis
  B ∈ R^{C×R}: P_{(c,n),r} = B_{c,r} a_r(n) (R channels instead of C·R), one global ε ∈ R^R. The voxel block
  (Eq. 5) is Σ_n = B diag(a(n)²) Bᵀ + diag(d(n)); two voxels correlate through B diag(a(n) a(m)) Bᵀ.
- ``mixture_of_bases`` (Eq. 6–7):  M learned bases B_1…B_M; the grid is partitioned into blocks of P×P×P voxels
  (aligned to the origin of the volume, so a block is the same in every sliding window); a weighting head w(x) ∈ R^M
  is averaged over each block k and soft-maxed, π_k = softmax(mean_{n∈k} w(n)) (Eq. 6), giving the block's basis
  B̃_k = Σ_m π_{k,m} B_m; each block has its own ε_k ∈ R^R, so Σ is block-diagonal with (Eq. 7)
  Σ_n = B̃_k diag(a(n)²) B̃_kᵀ + diag(d(n)) and B̃_k diag(a(n) a(m)) B̃_kᵀ between two voxels of the same block.
- ``deterministic``: no covariance; the baseline network that predicts μ only.

Sampling is Eq. (13), reparameterised: η = μ + P ε + √d ⊙ ε_d with ε ~ N(0, I_R) (one per block for the mixture)
and ε_d ~ N(0, I_{CN}); k samples are drawn from one network output (sampling happens in logit space only).
The equations' shapes follow the issue's description of the paper; where the paper's text was not available to us,
the choices are stated here (block-wise noise for the mixture, weights pooled per block) and in the model card.

Noise can come from `torch.randn` (training) or from a `uqseg.ct.noise.NoiseField`, which draws the same ε_d for a
voxel and the same ε_k for a block whatever window it is drawn in, so that sliding-window samples stitch consistently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

FORMS = ("deterministic", "diagonal", "lowrank", "single_basis", "mixture_of_bases")


@dataclass
class LogitDistribution:
    """One network output: the parameters of N(μ, Σ) over the logits of a (B, C, Z, Y, X) grid.

    mean      (B, C, *S)   μ, nats
    log_var   (B, C, *S)   log d (already clamped by the network); None for ``deterministic``
    factor    ``lowrank``: (B, C, R, *S) the rows of P; ``single_basis`` / ``mixture_of_bases``: (B, R, *S) the scales a
    bases     (M, C, R)    the learned bases (M = 1 for ``single_basis``); None otherwise
    weight_logits (B, M, *S) w(x) of the mixture; None otherwise
    block     P, the block edge in voxels (``mixture_of_bases``)
    """

    form: str
    mean: torch.Tensor
    log_var: torch.Tensor | None = None
    factor: torch.Tensor | None = None
    bases: torch.Tensor | None = None
    weight_logits: torch.Tensor | None = None
    block: int = 4

    def __post_init__(self):
        if self.form not in FORMS:
            raise ValueError(f"unknown covariance form {self.form!r}; expected one of {FORMS}")

    # ---- shapes -------------------------------------------------------------------------------------------------
    @property
    def classes(self) -> int:
        return self.mean.shape[1]

    @property
    def spatial(self) -> tuple[int, ...]:
        return tuple(self.mean.shape[2:])

    @property
    def rank(self) -> int:
        if self.form == "lowrank":
            return self.factor.shape[2]
        if self.form in ("single_basis", "mixture_of_bases"):
            return self.factor.shape[1]
        return 0

    @property
    def variance(self) -> torch.Tensor:
        """d = exp(log_var), (B, C, *S), nats²."""
        return self.log_var.exp()

    def block_grid(self) -> tuple[int, int, int]:
        """Number of mixture blocks along (z, y, x); the grid must be a multiple of the block edge."""
        p = self.block
        if any(s % p for s in self.spatial):
            raise ValueError(f"grid {self.spatial} is not a multiple of the mixture block edge {p}")
        return tuple(s // p for s in self.spatial)

    # ---- the mixture's per-block bases (Eq. 6) -----------------------------------------------------------------
    def block_weights(self) -> torch.Tensor:
        """π (B, Kz, Ky, Kx, M): softmax over bases of the weighting head averaged over each P×P×P block (Eq. 6)."""
        self.block_grid()
        pooled = F.avg_pool3d(self.weight_logits, self.block)  # (B, M, Kz, Ky, Kx)
        return pooled.softmax(dim=1).permute(0, 2, 3, 4, 1)

    def block_bases(self) -> torch.Tensor:
        """B̃ (B, Kz, Ky, Kx, C, R) = Σ_m π_{k,m} B_m, the basis of every block (Eq. 6)."""
        return torch.einsum("bzyxm,mcr->bzyxcr", self.block_weights(), self.bases)

    def _blocked_scales(self) -> torch.Tensor:
        """a reshaped to (B, R, Kz, P, Ky, P, Kx, P)."""
        b, r = self.factor.shape[:2]
        kz, ky, kx = self.block_grid()
        p = self.block
        return self.factor.reshape(b, r, kz, p, ky, p, kx, p)

    # ---- Eq. (13): samples ---------------------------------------------------------------------------------------
    def low_rank_noise(self, eps: torch.Tensor) -> torch.Tensor:
        """P ε for k noise vectors: (k, B, C, *S).

        eps: ``lowrank`` / ``single_basis`` (k, R) — one global vector per sample (shared by the batch, the same
        draw for every voxel); ``mixture_of_bases`` (k, B, Kz, Ky, Kx, R) — one vector per block."""
        if self.form == "lowrank":
            return torch.einsum("bcr...,kr->kbc...", self.factor, eps)
        if self.form == "single_basis":
            g = self.bases[0][None] * eps[:, None, :]  # (k, C, R): B diag(ε_s)
            return torch.einsum("br...,kcr->kbc...", self.factor, g)
        if self.form == "mixture_of_bases":
            g = self.block_bases()[None] * eps[..., None, :]  # (k, B, Kz, Ky, Kx, C, R)
            a = self._blocked_scales()
            out = torch.einsum("brziyjxl,kbzyxcr->kbcziyjxl", a, g)
            k = eps.shape[0]
            return out.reshape(k, *self.mean.shape)
        raise ValueError(f"the {self.form} form has no low-rank part")

    def low_rank_noise_shape(self, k: int) -> tuple[int, ...]:
        if self.form in ("lowrank", "single_basis"):
            return (k, self.rank)
        if self.form == "mixture_of_bases":
            return (k, self.mean.shape[0], *self.block_grid(), self.rank)
        return ()

    def sample(self, k: int, generator: torch.Generator | None = None, noise=None,
               offset: tuple[int, int, int] = (0, 0, 0)) -> torch.Tensor:
        """k logit samples by Eq. (13), (k, B, C, *S), differentiable in the network outputs.

        noise: None → torch.randn (with `generator`); a `NoiseField` → the position-keyed draws of the voxels /
        blocks of a window whose first voxel is `offset` (z, y, x) in the whole volume."""
        mu = self.mean[None]
        if self.form == "deterministic":
            return mu.expand(k, *self.mean.shape)
        shape = (k, *self.mean.shape)
        if noise is None:
            eps_d = torch.randn(shape, generator=generator, device=mu.device, dtype=mu.dtype)
        else:
            eps_d = noise.voxel_noise(k, self.mean.shape, offset).to(mu.dtype)
        eta = mu + eps_d * (0.5 * self.log_var).exp()[None]
        if self.form == "diagonal":
            return eta
        if noise is None:
            eps = torch.randn(self.low_rank_noise_shape(k), generator=generator, device=mu.device, dtype=mu.dtype)
        elif self.form == "mixture_of_bases":
            eps = noise.block_noise(k, self.mean.shape[0], self.block_grid(), self.rank, offset, self.block)
        else:
            eps = noise.global_noise(k, self.rank)
        return eta + self.low_rank_noise(eps.to(mu.dtype))

    # ---- analytic covariance (Eq. 4/5/7) --------------------------------------------------------------------------
    def voxel_covariance(self) -> torch.Tensor:
        """Σ_n, the C×C covariance of the logits of each voxel: (B, *S, C, C) (Eq. 5 / Eq. 7; P_n P_nᵀ + diag d_n)."""
        b, c = self.mean.shape[:2]
        s = self.spatial
        if self.form == "deterministic":
            return torch.zeros(b, *s, c, c, dtype=self.mean.dtype, device=self.mean.device)
        d = self.variance.movedim(1, -1)  # (B, *S, C)
        cov = torch.diag_embed(d)
        if self.form == "diagonal":
            return cov
        if self.form == "lowrank":
            p = self.factor.permute(0, 3, 4, 5, 1, 2)  # (B, *S, C, R)
        elif self.form == "single_basis":
            a = self.factor.movedim(1, -1)  # (B, *S, R)
            p = self.bases[0] * a[..., None, :]
        else:
            bb = self.block_bases()  # (B, Kz, Ky, Kx, C, R)
            pz = self.block
            bb = bb.repeat_interleave(pz, 1).repeat_interleave(pz, 2).repeat_interleave(pz, 3)
            a = self.factor.movedim(1, -1)
            p = bb * a[..., None, :]
        return cov + p @ p.transpose(-1, -2)

    def marginal_variance(self) -> torch.Tensor:
        """Σ_n,cc, the variance of each class logit of each voxel: (B, C, *S), nats² (the diagonal of Eq. 5 / 7),
        without forming the C×C blocks."""
        if self.form == "deterministic":
            return torch.zeros_like(self.mean)
        d = self.variance
        if self.form == "diagonal":
            return d
        if self.form == "lowrank":
            return d + self.factor.pow(2).sum(2)
        if self.form == "single_basis":
            return d + torch.einsum("br...,cr->bc...", self.factor.pow(2), self.bases[0].pow(2))
        a2 = self._blocked_scales().pow(2)  # (B, R, Kz, P, Ky, P, Kx, P)
        out = torch.einsum("brziyjxl,bzyxcr->bcziyjxl", a2, self.block_bases().pow(2))
        return d + out.reshape(d.shape)

    def difference_variance(self, c1: int = 1, c0: int = 0) -> torch.Tensor:
        """Var[η_c1 − η_c0] of each voxel: (B, *S), nats² = Σ_n,c1c1 + Σ_n,c0c0 − 2 Σ_n,c1c0 (Eq. 5 / 7) — the
        spread of the logit difference that decides a two-class voxel, without forming the C×C blocks."""
        if self.form == "deterministic":
            return torch.zeros_like(self.mean[:, 0])
        d = self.variance[:, c1] + self.variance[:, c0]
        if self.form == "diagonal":
            return d
        if self.form == "lowrank":
            return d + (self.factor[:, c1] - self.factor[:, c0]).pow(2).sum(1)
        if self.form == "single_basis":
            w = (self.bases[0, c1] - self.bases[0, c0]).pow(2)
            return d + torch.einsum("br...,r->b...", self.factor.pow(2), w)
        bb = self.block_bases()
        w = (bb[..., c1, :] - bb[..., c0, :]).pow(2)  # (B, Kz, Ky, Kx, R)
        out = torch.einsum("brziyjxl,bzyxr->bziyjxl", self._blocked_scales().pow(2), w)
        return d + out.reshape(d.shape)

    def dense_factor(self) -> torch.Tensor:
        """P as a dense (B, C·N, R_total) matrix with rows ordered (c, z, y, x) — for tests on tiny grids.
        R_total = R (``lowrank``, ``single_basis``) or R·K (``mixture_of_bases``, K blocks, block-major columns)."""
        b, c = self.mean.shape[:2]
        n = math.prod(self.spatial)
        if self.form == "lowrank":
            return self.factor.reshape(b, c, self.rank, n).permute(0, 1, 3, 2).reshape(b, c * n, self.rank)
        if self.form == "single_basis":
            a = self.factor.reshape(b, self.rank, n)  # (B, R, N)
            return (self.bases[0][None, :, None, :] * a.transpose(1, 2)[:, None]).reshape(b, c * n, self.rank)
        if self.form == "mixture_of_bases":
            kz, ky, kx = self.block_grid()
            pz = self.block
            bb = self.block_bases()  # (B, Kz, Ky, Kx, C, R)
            r = self.rank
            k_index = torch.arange(kz * ky * kx, device=self.mean.device).reshape(kz, ky, kx)
            k_of_voxel = (k_index.repeat_interleave(pz, 0).repeat_interleave(pz, 1).repeat_interleave(pz, 2)
                          .reshape(n))
            a = self.factor.reshape(b, r, n).transpose(1, 2)  # (B, N, R)
            bbv = bb.reshape(b, -1, c, r)[:, k_of_voxel]  # (B, N, C, R)
            rows = bbv * a[:, :, None, :]  # (B, N, C, R)
            out = torch.zeros(b, c, n, kz * ky * kx, r, dtype=rows.dtype, device=rows.device)
            out[:, :, torch.arange(n), k_of_voxel] = rows.permute(0, 2, 1, 3)
            return out.reshape(b, c * n, -1)
        raise ValueError(f"the {self.form} form has no low-rank factor")

    # ---- Eq. (8): KL(N(μ, Σ) ‖ N(μ, I)) -------------------------------------------------------------------------
    def kl_to_unit(self) -> torch.Tensor:
        """KL(N(μ, Σ) ‖ N(μ, I)) = ½ (tr Σ − CN − log det Σ), per logit dimension (divided by C·N), batch mean.

        Exact for every form: tr Σ = Σ d + ‖P‖_F², log det Σ = Σ log d + log det(I_R + Pᵀ diag(d)⁻¹ P) (matrix
        determinant lemma), the R×R capacitance taken once for the global forms and per block for the mixture."""
        if self.form == "deterministic":
            return self.mean.new_zeros(())
        b, c = self.mean.shape[:2]
        dims = c * math.prod(self.spatial)
        d = self.variance
        trace = d.reshape(b, -1).sum(1)
        logdet = self.log_var.reshape(b, -1).sum(1)
        if self.form != "diagonal":
            inv_sqrt_d = (-0.5 * self.log_var)
            if self.form == "lowrank":
                u = self.factor * inv_sqrt_d.exp()[:, :, None]  # (B, C, R, *S)
                r = u.shape[2]
                u = u.movedim(2, -1).reshape(b, -1, r)  # (B, C·N, R)
                cap = u.transpose(1, 2) @ u  # (B, R, R)
                trace = trace + self.factor.pow(2).reshape(b, -1).sum(1)
            elif self.form == "single_basis":
                a = self.factor.reshape(b, self.rank, -1)  # (B, R, N)
                w = inv_sqrt_d.exp().reshape(b, c, -1)  # (B, C, N)
                v = self.bases[0][None, :, :, None] * a[:, None] * w[:, :, None]  # (B, C, R, N)
                v = v.permute(0, 1, 3, 2).reshape(b, -1, self.rank)
                cap = v.transpose(1, 2) @ v
                trace = trace + (self.bases[0].pow(2).sum(0)[None, :, None] * a.pow(2)).reshape(b, -1).sum(1)
            else:
                kz, ky, kx = self.block_grid()
                p = self.block
                r = self.rank
                a = self._blocked_scales().permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(b, kz * ky * kx, p**3, r)
                w = inv_sqrt_d.exp().reshape(b, c, kz, p, ky, p, kx, p).permute(0, 2, 4, 6, 3, 5, 7, 1)
                w = w.reshape(b, kz * ky * kx, p**3, c)
                bb = self.block_bases().reshape(b, kz * ky * kx, c, r)
                v = a[:, :, :, None, :] * bb[:, :, None] * w[..., None]  # (B, K, P³, C, R)
                v = v.reshape(b, kz * ky * kx, -1, r)
                cap = v.transpose(-1, -2) @ v  # (B, K, R, R)
                trace = trace + (a.pow(2)[:, :, :, None, :] * bb.pow(2)[:, :, None]).reshape(b, -1).sum(1)
            eye = torch.eye(cap.shape[-1], dtype=cap.dtype, device=cap.device)
            chol = torch.linalg.cholesky(cap + eye)
            logdet = logdet + 2 * chol.diagonal(dim1=-2, dim2=-1).log().reshape(b, -1).sum(1)
        return (0.5 * (trace - dims - logdet) / dims).mean()
