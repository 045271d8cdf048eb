"""The predictive distribution of Eq. (14): p(t | x) ≈ 1/k Σ_s softmax(η_s), η_s from Eq. (13), drawn from ONE
network output, with the per-voxel predictive variance Var[softmax(η)_c] — sampled only where samples are needed.

`mc_moments(dist, k, noise, offset, keep)` returns, for one window (batch 1) of a `LogitDistribution`:
- mean (C, *S): p̄_c, the estimate of Eq. (14) (probabilities);
- variance (C, *S): Var_c (probability²); the caller's stitching averages both;
- kept (keep, *S) uint8: the arg-max labels of the first `keep` samples (for "accept the alternative");
- active_fraction: the share of noise tiles that were sampled.

Where the moments come from (`sparse=True`, the default), voxel by voxel:
1. the closed form of `uqseg.ct.linearised_moments` (delta method on the log-probabilities, log-normal moments)
   where every class logit's std is ≤ LINEARISED_MAX_STD = 0.5 nats (two classes: the std of δ = η_1 − η_0 is
   ≤ √2 · 0.5) — there it is more accurate than k = 30 samples (on the shipped ct-organs model, the summed organ
   variance of a 128 × 128 × 32 window against 1000 samples: median / 95th-percentile relative error 0.04 / 0.12,
   against 0.22 / 0.65 for 30 samples; docs/ct-sampling.md);
2. softmax(μ) and zero variance where the voxel is *settled* (below);
3. the k samples' moments everywhere else.
The noise tiles holding a voxel of case 3 are sampled — and, when `keep` > 0, also those holding a voxel whose label
some sample could change (margin 0 in the rule below), so that the kept sample labels are those of real samples
everywhere; voxels of a sampled tile that fall under case 1 or 2 keep those moments. `sparse=False` samples every
voxel and takes the samples' moments everywhere: the pure Monte-Carlo reference.

Settled. A voxel is settled when its top class t (arg-max of μ) beats every other class c by
    μ_t − μ_c ≥ SETTLED_MARGIN + SETTLED_Z · (s_t + s_c),      s_c² = Σ_n,cc (the marginal logit variance)
— for C = 2 by |μ_1 − μ_0| ≥ SETTLED_MARGIN + SETTLED_Z · s_δ with s_δ² = Var[η_1 − η_0] (≤ (s_0 + s_1)²) —
(SETTLED_MARGIN = 10 nats, SETTLED_Z = 5): then in every sample, except with probability ≤ (C−1)·Φ(−5) ≈ 3e-7
per class, η_t − η_c ≥ 10 and p_t ≥ 1/(1 + (C−1) e^{−10}), so softmax(μ) agrees with the MC mean to within
(C−1)·e^{−10} ≈ 2e-4 and the variance is below 1e-7. With SETTLED_MARGIN replaced by 0 the same rule says that no
sample can change the voxel's label (except with probability ≈ 3e-7).

Samples. η_s = loc + n_s with n_s the noise part of Eq. (13) (diagonal √d ε_d plus the low-rank part of the form).
The `NoiseField` draws antithetic pairs: of the k samples only m = ⌈k/2⌉ noise parts n_s are computed, and sample
m + s is loc − n_s — exactly what `LogitDistribution.sample` returns with the same field (tested). C > 2 classes:
η_s as `LogitDistribution.sample` draws it (the same position-keyed ε_d, ε_k, global ε). C = 2 (one organ): only
the logit difference δ = η_1 − η_0 enters softmax(η)_1 = σ(δ), and δ is Gaussian with mean μ_1 − μ_0, diagonal part
√(d_0 + d_1) ε (one normal per voxel instead of two) and low-rank part (P_1 − P_0) ε (the difference of the two basis
rows). These draws have exactly the law of the general ones (not the same numbers) and halve the cost again.

Layout. The window is processed a slab of noise-tile rows at a time (the tiles at one z tile position and a few
consecutive y ones, about `SLAB_VOXELS` voxels), so that every rearrangement stays in the CPU cache; inside a slab
everything is computed block by block in the order of the noise draws, (blocks, samples, channels, voxels of a
block) — blocks of `noise.layout_block`³ voxels (the mixture block for that form), tile by tile — so the low-rank
part of a block is one small matrix product (samples × R) @ (R × voxels) and nothing of size k × voxels is ever
transposed; the closed form's low-rank terms are per-block products of the same kind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from uqseg.ct.covariance import LogitDistribution
from uqseg.ct.linearised_moments import (LINEARISED_MAX_STD, binary_spread, diagonal_quadratic, diagonal_spread,
                                         lognormal_moments, rest_direction)
from uqseg.ct.noise import VOXEL_STREAM, NoiseField

SETTLED_MARGIN = 10.0
SETTLED_Z = 5.0
#: voxels processed together (whole rows of noise tiles): the temporaries of all samples stay in the CPU cache
SLAB_VOXELS = 32768


@dataclass
class WindowMoments:
    mean: torch.Tensor  # (C, *S) probabilities
    variance: torch.Tensor  # (C, *S) probability²
    kept: torch.Tensor | None  # (keep, *S) uint8
    active_fraction: float


def _unsettled_difference(delta: torch.Tensor, std: torch.Tensor, margin: float = SETTLED_MARGIN) -> torch.Tensor:
    """Two classes: δ = μ_1 − μ_0 and s_δ (any layout) → bool, not settled (`margin` = 0: some sample could flip
    the label)."""
    return delta.abs() - SETTLED_Z * std < margin


def _top_class_gap(mu: torch.Tensor, std: torch.Tensor, axis: int) -> torch.Tensor:
    """C classes along `axis`: min over c ≠ t of μ_t − μ_c − SETTLED_Z (s_t + s_c), t the top class (axis removed);
    −inf where two classes tie for the top. (Max and masks rather than arg-max: torch's arg-max over a strided
    axis is slow on the CPU.)"""
    top = mu.amax(axis, keepdim=True)
    is_top = mu == top
    s_top = torch.where(is_top, std, torch.zeros_like(std)).amax(axis, keepdim=True)
    gap = (top - mu - SETTLED_Z * (s_top + std)).masked_fill(is_top, float("inf")).amin(axis)
    return gap.masked_fill(is_top.sum(axis) > 1, float("-inf"))


def _unsettled_classes(mu: torch.Tensor, std: torch.Tensor, axis: int, margin: float = SETTLED_MARGIN) -> torch.Tensor:
    """C classes along `axis`: μ and the marginal stds s_c → bool (axis removed), not settled (`margin` = 0: some
    sample could flip the label)."""
    return _top_class_gap(mu, std, axis) < margin


def unsettled_voxels(dist: LogitDistribution, margin: float = SETTLED_MARGIN) -> torch.Tensor:
    """bool (*S) for batch item 0: the voxels that are not settled (module docstring; `margin` = 0: whose label
    some sample could change). The reference on the voxel grid; `mc_moments` applies the same rule block by block."""
    mu = dist.mean[0]
    if dist.form == "deterministic":
        return torch.zeros(mu.shape[1:], dtype=torch.bool, device=mu.device)
    if mu.shape[0] == 2:
        return _unsettled_difference(mu[1] - mu[0], dist.difference_variance()[0].clamp_min(0).sqrt(), margin)
    return _unsettled_classes(mu, dist.marginal_variance()[0].clamp_min(0).sqrt(), 0, margin)


def closed_form_voxels(dist: LogitDistribution) -> torch.Tensor:
    """bool (*S) for batch item 0: the voxels whose moments are the closed form (`uqseg.ct.linearised_moments`):
    every class logit's std ≤ LINEARISED_MAX_STD (two classes: the std of δ = η_1 − η_0 ≤ √2 · LINEARISED_MAX_STD)."""
    if dist.mean.shape[1] == 2:
        return dist.difference_variance()[0].clamp_min(0).sqrt() <= math.sqrt(2) * LINEARISED_MAX_STD
    return dist.marginal_variance()[0].clamp_min(0).sqrt().amax(0) <= LINEARISED_MAX_STD


def voxels_to_sample(dist: LogitDistribution, keep_labels: bool) -> torch.Tensor:
    """bool (*S) for batch item 0: the voxels that `mc_moments(sparse=True)` needs samples for — neither closed
    form nor settled, or (`keep_labels`) a label that some sample could change. The reference on the voxel grid."""
    need = ~(closed_form_voxels(dist) | ~unsettled_voxels(dist))
    return need | unsettled_voxels(dist, 0.0) if keep_labels else need


def class_argmax(x: torch.Tensor, axis: int = 0) -> torch.Tensor:
    """uint8 arg-max over `axis` (the classes) by comparisons (torch's arg-max over a strided axis is slow on the
    CPU); ties go to the lower class, as torch.argmax."""
    best = x.select(axis, 0)
    label = torch.zeros(best.shape, dtype=torch.uint8, device=x.device)
    for c in range(1, x.shape[axis]):
        xc = x.select(axis, c)
        better = xc > best
        label.masked_fill_(better, c)
        best = torch.where(better, xc, best)
    return label


def _tiles(shape, tile):
    if any(s % t for s, t in zip(shape, tile)):
        raise ValueError(f"window {tuple(shape)} is not a multiple of the noise tile {tile}")
    return tuple(s // t for s, t in zip(shape, tile))


def _block_view(x: torch.Tensor, tile, block: int) -> torch.Tensor:
    """A view of (L, Z, Y, X) as (tiles z, y, x, blocks of a tile bz, by, bx, L, voxels of a block pz, py, px): the
    order of the noise draws (`NoiseField.tile_draws`); `x` may be a strided view."""
    lead = x.shape[0]
    (nz, ny, nx), (tz, ty, tx), p = _tiles(x.shape[1:], tile), tile, block
    return x.view(lead, nz, tz // p, p, ny, ty // p, p, nx, tx // p, p).permute(1, 4, 7, 2, 5, 8, 0, 3, 6, 9)


def _to_blocks(x: torch.Tensor, tile, block: int) -> torch.Tensor:
    """(L, Z, Y, X) → (nb, L, P³): the P³-blocks, tiles in (z, y, x) order, inside a tile its blocks in (z, y, x)
    order, inside a block its voxels in (z, y, x) order (`_block_view`)."""
    return _block_view(x, tile, block).reshape(-1, x.shape[0], block ** 3)


def _from_blocks(values: torch.Tensor, out: torch.Tensor, tile, block: int, tile_ids: torch.Tensor) -> None:
    """Write (nb, L, P³) block values of the listed tiles (the `_to_blocks` order) into out (L, Z, Y, X), which
    may be a strided view."""
    view = _block_view(out, tile, block)
    nz, ny, nx = view.shape[:3]
    vals = values.reshape(-1, *view.shape[3:])  # (tiles, bz, by, bx, L, pz, py, px)
    if tile_ids.numel() == nz * ny * nx:
        view.copy_(vals.reshape(view.shape))
    else:
        zi, yi, xi = torch.unravel_index(tile_ids, (nz, ny, nx))
        view[zi, yi, xi] = vals


def _slab_of_grid(g: torch.Tensor, zs: slice, ys: slice, tile_blocks) -> torch.Tensor:
    """A per-block array (Kz, Ky, Kx, ...) → the blocks of the voxel slab [zs, ys, :] (whole tiles) in the
    `_to_blocks` order: (nb, ...)."""
    tzp, typ, txp = tile_blocks
    part = g[zs, ys]
    rest = part.shape[3:]
    kz, ky, kx = part.shape[:3]
    part = part.reshape(kz // tzp, tzp, ky // typ, typ, kx // txp, txp, *rest)
    part = part.permute(0, 2, 4, 1, 3, 5, *range(6, 6 + len(rest)))
    return part.reshape(-1, *rest)


class _LowRankSlabs:
    """The low-rank part P ε of Eq. (13) for the m drawn samples of one window, a slab at a time, in the block
    layout: `start_slab` picks a slab of tile rows; `marginal()` is its contribution to the logit variance of each
    channel (nb, ch, P³); `add(n, blocks)` adds it to the noise parts n (nb', m, ch, P³) of the listed blocks (None = all).
    For a binary model the channel is the logit difference: (P_1 − P_0) ε."""

    def __init__(self, dist: LogitDistribution, noise: NoiseField, k: int, offset, binary: bool):
        self.form, self.tile, self.block = dist.form, noise.tile, noise.layout_block
        self.tile_blocks = tuple(t // self.block for t in self.tile)
        if self.form == "diagonal":
            return
        rank = dist.rank
        m = noise.distinct(k)
        if self.form == "lowrank":
            f = dist.factor[0].float()  # (C, R, *S)
            f = (f[1] - f[0])[None] if binary else f
            self.channels = f.shape[0]
            self.factor = f.reshape(-1, *f.shape[2:])  # (ch·R, *S)
            self.eps = noise.global_noise(k, rank, distinct_only=True).float()  # (m, R)
            return
        self.factor = dist.factor[0].float()  # (R, *S) the scales a(x)
        if self.form == "single_basis":
            basis = dist.bases[0].float()  # (C, R)
            basis = (basis[1] - basis[0])[None] if binary else basis
            eps = noise.global_noise(k, rank, distinct_only=True).float()
            self.g = (eps[:, None, :] * basis[None]).reshape(-1, rank)  # (m·ch, R): B diag(ε_s)
            self.basis, self.basis2 = basis, basis.pow(2)
            return
        bb = dist.block_bases()[0].float()  # (Kz, Ky, Kx, C, R), Eq. 6
        bb = (bb[..., 1, :] - bb[..., 0, :])[..., None, :] if binary else bb
        self.bb_grid, self.bb2_grid = bb, bb.pow(2)
        self.g_grid = None  # drawn when a slab of the window is first sampled (`_block_products`)
        self._draw = lambda: noise.block_noise(k, 1, dist.block_grid(), rank, offset, dist.block, distinct_only=True)

    def start_slab(self, zs: slice, ys: slice) -> None:
        """Select the voxel slab [zs, ys, :] (whole tiles)."""
        if self.form == "diagonal":
            return
        self.f_slab = _to_blocks(self.factor[:, zs, ys], self.tile, self.block)  # (nb, R or ch·R, P³)
        self.a2 = self.f_slab.pow(2)
        if self.form == "mixture_of_bases":
            p = self.block
            self.bz, self.by = slice(zs.start // p, zs.stop // p), slice(ys.start // p, ys.stop // p)
            self.bb_slab = _slab_of_grid(self.bb_grid, self.bz, self.by, self.tile_blocks)  # (nb, ch, R)
            self.bb2_slab = _slab_of_grid(self.bb2_grid, self.bz, self.by, self.tile_blocks)

    def _block_products(self) -> torch.Tensor:
        """Mixture: B̃_k diag(ε_{k,s}) of the slab's blocks for the m drawn samples, (nb, m·ch, R)."""
        if self.g_grid is None:
            eps = self._draw()[:, 0]  # (m, Kz, Ky, Kx, R)
            self.g_grid = eps.permute(1, 2, 3, 0, 4)[..., None, :] * self.bb_grid[..., None, :, :]  # (Kz, Ky, Kx, m, ch, R)
        g = _slab_of_grid(self.g_grid, self.bz, self.by, self.tile_blocks)  # (nb, m, ch, R)
        return g.reshape(g.shape[0], -1, g.shape[-1])

    def marginal(self) -> torch.Tensor | None:
        if self.form == "diagonal":
            return None
        a2 = self.a2
        if self.form == "lowrank":
            return a2.view(a2.shape[0], self.channels, -1, a2.shape[-1]).sum(2)
        if self.form == "single_basis":
            return torch.matmul(self.basis2, a2)
        return torch.bmm(self.bb2_slab, a2)

    def spread(self, p: torch.Tensor) -> torch.Tensor | None:
        """The low-rank part of w_c = (e_c − p)ᵀ Σ (e_c − p) (`uqseg.ct.linearised_moments`) for the slab's blocks,
        p (nb, C, P³) = softmax(μ): Σ_r ((e_c − p)ᵀ P_{:,r})², (nb, C, P³). C > 2 classes only (for two classes the
        marginal variance of the difference is all that is needed)."""
        if self.form == "diagonal":
            return None
        a2 = self.a2
        if self.form == "lowrank":
            f = self.f_slab.view(a2.shape[0], self.channels, -1, a2.shape[-1])  # (nb, C, R, P³)
            return (f - (p[:, :, None] * f).sum(1, keepdim=True)).pow(2).sum(2)
        if self.form == "single_basis":  # P_cr = B_cr a_r; b̄_r = Σ_j p_j B_jr
            b_bar = torch.einsum("cr,bcv->brv", self.basis, p)
            u = a2 * b_bar
            return torch.matmul(self.basis2, a2) - 2 * torch.matmul(self.basis, u) + (u * b_bar).sum(1, keepdim=True)
        b_bar = torch.bmm(self.bb_slab.transpose(1, 2), p)  # (nb, R, P³)
        u = a2 * b_bar
        return torch.bmm(self.bb2_slab, a2) - 2 * torch.bmm(self.bb_slab, u) + (u * b_bar).sum(1, keepdim=True)

    def quadratic(self, u: torch.Tensor) -> torch.Tensor | None:
        """The low-rank part of uᵀ Σ u = Σ_r (uᵀ P_{:,r})² for one direction u (nb, C, P³) per voxel: (nb, 1, P³).
        C > 2 classes only."""
        if self.form == "diagonal":
            return None
        if self.form == "lowrank":
            f = self.f_slab.view(u.shape[0], self.channels, -1, u.shape[-1])  # (nb, C, R, P³)
            return (u[:, :, None] * f).sum(1).pow(2).sum(1, keepdim=True)
        proj = (torch.einsum("cr,bcv->brv", self.basis, u) if self.form == "single_basis"
                else torch.bmm(self.bb_slab.transpose(1, 2), u))  # (nb, R, P³): Bᵀ u
        return (self.a2 * proj * proj).sum(1, keepdim=True)

    def add(self, n: torch.Tensor, blocks: torch.Tensor | None) -> None:
        if self.form == "diagonal":
            return
        f = self.f_slab if blocks is None else self.f_slab[blocks]
        flat = n.view(n.shape[0], -1, n.shape[-1])  # (nb', m·ch, P³)
        if self.form == "lowrank":
            n += torch.einsum("bcrv,sr->bscv", f.view(f.shape[0], self.channels, -1, f.shape[-1]), self.eps)
        elif self.form == "single_basis":
            flat += torch.matmul(self.g, f)
        else:
            g = self._block_products()
            flat.baddbmm_(g if blocks is None else g[blocks], f)


def _closed_form_slab(loc: torch.Tensor, dvar: torch.Tensor, low_rank: "_LowRankSlabs", binary: bool,
                      keep_labels: bool):
    """The moments that need no samples, for a slab's blocks. loc, dvar (nb, ch, P³): μ and d (for two classes:
    the mean and diagonal variance of δ = η_1 − η_0). Returns
    - mean, variance (nb, C, P³): the closed form of `uqseg.ct.linearised_moments` where every class logit's std is
      ≤ LINEARISED_MAX_STD (two classes: s_δ ≤ √2 · LINEARISED_MAX_STD), softmax(μ) and 0 elsewhere;
    - exact (nb, P³): voxels where those values stand (the closed form holds, or the voxel is settled); the others
      need samples for their moments;
    - open_label (nb, P³), with `keep_labels` (else None): voxels whose label some sample could change — their
      kept labels must come from real samples."""
    lr = low_rank.marginal()
    total = (dvar if lr is None else dvar + lr).clamp_min(0)
    std = total.sqrt()
    if binary:
        delta, s = loc[:, 0], std[:, 0]
        p1 = torch.sigmoid(delta)
        p = torch.stack([1 - p1, p1], 1)
        w = binary_spread(p, total[:, 0])
        is_top, q, _ = rest_direction(p)
        w_rest = w.flip(1).masked_fill(~is_top, 0.0).amax(1, keepdim=True)  # the other class's w
        linear = s <= math.sqrt(2) * LINEARISED_MAX_STD
        settled = ~_unsettled_difference(delta, s)
        open_label = _unsettled_difference(delta, s, 0.0)
    else:
        p = loc.softmax(1)
        w = diagonal_spread(p, dvar)
        low = low_rank.spread(p)
        w = w if low is None else w + low
        is_top, q, u = rest_direction(p)
        low = low_rank.quadratic(u)
        w_rest = diagonal_quadratic(u, dvar) if low is None else diagonal_quadratic(u, dvar) + low
        top_p = p.amax(1, keepdim=True)
        w_rest = top_p * top_p * w_rest
        linear = std.amax(1) <= LINEARISED_MAX_STD
        gap = _top_class_gap(loc, std, 1)
        settled, open_label = gap >= SETTLED_MARGIN, gap < 0
    closed_mean, closed_var = lognormal_moments(p, w, w_rest, is_top)
    on = linear[:, None]
    mean = torch.where(on, closed_mean, p)
    variance = torch.where(on, closed_var, torch.zeros_like(closed_var))
    exact = linear | settled
    return mean, variance, exact, (open_label if keep_labels else None)


def _sample_tiles(sel: torch.Tensor, loc: torch.Tensor, dvar: torch.Tensor, low_rank: _LowRankSlabs,
                  noise: NoiseField, k: int, keep: int, binary: bool, tile_of, buf: torch.Tensor, nblk: int,
                  labels_only: bool):
    """Draw the k samples of Eq. (13) for the slab's tiles `sel` (indices into the slab's tiles; `tile_of(t)` is
    the whole-volume tile index of slab tile t) and return, for their blocks (the `_to_blocks` order), the moments
    (m1, v1) (nb', C, P³) — None with `labels_only` — and the first `keep` samples' labels (nb', keep, P³) or None.
    With `labels_only` only those `keep` samples are formed (the tiles' moments come from the closed form)."""
    m, ch, p3 = noise.distinct(k), loc.shape[1], loc.shape[2]
    blocks = None
    if sel.numel() < loc.shape[0] // nblk:  # the blocks of the selected tiles
        blocks = (sel[:, None] * nblk + torch.arange(nblk, device=loc.device)).flatten()
        loc, dvar = loc[blocks], dvar[blocks]
    for j, t in enumerate(sel.tolist()):  # ε_d of each tile: (blocks of a tile, m, ch, P³)
        noise.tile_draws(k, ch, tile_of(t), VOXEL_STREAM, out=buf[j], distinct_only=True)
    n = buf[: sel.numel()].view(-1, m, ch, p3).mul_(dvar.sqrt()[:, None])  # noise parts n_s
    low_rank.add(n, blocks)
    kept = torch.empty(n.shape[0], keep, p3, dtype=torch.uint8, device=loc.device) if keep else None
    if labels_only:
        first = min(keep, m)  # the drawn samples first, then their mirrors (as below)
        parts = [torch.add(loc[:, None], n[:, :first])]
        if keep > m:
            parts.append(torch.sub(loc[:, None], n[:, : keep - m]))
        eta = torch.cat(parts, 1) if len(parts) > 1 else parts[0]
        kept[:] = (eta[:, :, 0] > 0) if binary else class_argmax(eta, 2)
        return None, None, kept
    s1 = torch.zeros(n.shape[0], ch, p3, device=loc.device)
    s2 = torch.zeros_like(s1)
    first = 0
    for sign, count in ((1.0, m), (-1.0, k - m)):  # the drawn samples, then their mirrors
        if count == 0:
            continue
        eta = torch.add(loc[:, None], n[:, :count], alpha=sign)  # (nb, count, ch, P³)
        if keep and first < keep:
            take = min(keep - first, count)
            kept[:, first: first + take] = (eta[:, :take, 0] > 0) if binary else class_argmax(eta[:, :take], 2)
        p = torch.sigmoid_(eta) if binary else eta.softmax(2)
        s1 += p.sum(1)
        s2 += p.mul_(p).sum(1)
        first += count
    m1, m2 = s1 / k, s2 / k
    if binary:  # class 1 moments → both classes: p_0 = 1 − p_1
        m1, m2 = torch.cat([1 - m1, m1], 1), torch.cat([1 - 2 * m1 + m2, m2], 1)
    return m1, (m2 - m1 * m1).clamp_min(0), kept


def mc_moments(dist: LogitDistribution, k: int, noise: NoiseField, offset: tuple[int, int, int] = (0, 0, 0),
               keep: int = 0, sparse: bool = True) -> WindowMoments:
    """Eq. (14) moments of one window (batch item 0) from k position-keyed samples where they are needed, the
    closed form (`uqseg.ct.linearised_moments`) or softmax(μ) elsewhere; see the module docstring.
    `sparse=False` samples every voxel and uses the samples' moments everywhere (the pure Monte-Carlo reference)."""
    mu = dist.mean[0].float()
    c = mu.shape[0]
    shape = tuple(mu.shape[1:])
    kept = class_argmax(mu).expand(keep, *shape).clone() if keep else None
    if dist.form == "deterministic" or k == 0:
        p0 = mu.softmax(0)
        return WindowMoments(p0, torch.zeros_like(p0), kept, 0.0)
    # every voxel is written below: by the closed form (sparse) or by the samples (every tile, dense)
    mean, variance = torch.empty_like(mu), torch.empty_like(mu)
    tile, block = noise.tile, noise.layout_block
    if any(o % t for o, t in zip(offset, tile)):
        raise ValueError(f"window offset {offset} is not a multiple of the noise tile {tile}")
    if dist.form == "mixture_of_bases" and dist.block != block:
        raise ValueError(f"the noise field's layout block {block} differs from the mixture block {dist.block}")
    nt = _tiles(shape, tile)
    binary = c == 2
    ch = 1 if binary else c
    nblk = (tile[0] * tile[1] * tile[2]) // block ** 3  # blocks of a tile
    var = dist.variance[0].float()
    low_rank = _LowRankSlabs(dist, noise, k, offset, binary)
    rows = max(1, min(nt[1], SLAB_VOXELS // (tile[0] * tile[1] * shape[2])))  # tile rows per slab
    buf = torch.empty(rows * nt[2], nblk, noise.distinct(k), ch, block ** 3, device=mu.device)
    toff = tuple(o // t for o, t in zip(offset, tile))
    active = 0
    for zt in range(nt[0]):
        for yt0 in range(0, nt[1], rows):
            zs = slice(zt * tile[0], (zt + 1) * tile[0])
            ys = slice(yt0 * tile[1], min(nt[1], yt0 + rows) * tile[1])
            slab_tiles = (min(nt[1], yt0 + rows) - yt0) * nt[2]
            all_tiles = torch.arange(slab_tiles, device=mu.device)
            mu_r, var_r = mu[:, zs, ys], var[:, zs, ys]
            if binary:
                loc = _to_blocks((mu_r[1] - mu_r[0])[None], tile, block)  # (nb, 1, P³) mean of δ
                dvar = _to_blocks((var_r[0] + var_r[1])[None], tile, block)
            else:
                loc, dvar = _to_blocks(mu_r, tile, block), _to_blocks(var_r, tile, block)
            low_rank.start_slab(zs, ys)
            tile_of = lambda t: (zt + toff[0], yt0 + t // nt[2] + toff[1], t % nt[2] + toff[2])
            moment_tiles, label_tiles = all_tiles, all_tiles[:0]
            if sparse:
                closed_mean, closed_var, exact, open_label = _closed_form_slab(loc, dvar, low_rank, binary, keep > 0)
                _from_blocks(closed_mean, mean[:, zs, ys], tile, block, all_tiles)
                _from_blocks(closed_var, variance[:, zs, ys], tile, block, all_tiles)
                needs_moments = (~exact).view(slab_tiles, -1).any(1)
                moment_tiles = torch.nonzero(needs_moments).flatten()
                if keep:
                    label_tiles = torch.nonzero(open_label.view(slab_tiles, -1).any(1) & ~needs_moments).flatten()
            for sel, labels_only in ((moment_tiles, False), (label_tiles, True)):
                if sel.numel() == 0:
                    continue
                m1, v1, kept_r = _sample_tiles(sel, loc, dvar, low_rank, noise, k, keep, binary, tile_of, buf,
                                               nblk, labels_only)
                if keep:
                    _from_blocks(kept_r, kept[:, zs, ys], tile, block, sel)
                active += sel.numel()
                if labels_only:
                    continue
                if sparse:  # voxels of the sampled tiles that need no samples for their moments keep the closed form
                    pick = (sel[:, None] * nblk + torch.arange(nblk, device=mu.device)).flatten()
                    ex = exact[pick][:, None]
                    m1, v1 = torch.where(ex, closed_mean[pick], m1), torch.where(ex, closed_var[pick], v1)
                _from_blocks(m1, mean[:, zs, ys], tile, block, sel)
                _from_blocks(v1, variance[:, zs, ys], tile, block, sel)
    return WindowMoments(mean, variance, kept, active / (nt[0] * nt[1] * nt[2]))
