"""The Monte-Carlo predictive distribution of Eq. (14): p(t | x) ≈ 1/k Σ_s softmax(η_s), η_s from Eq. (13), drawn
from ONE network output, with the per-voxel predictive variance Var[softmax(η)_c] — evaluated only where sampling
can change anything.

`mc_moments(dist, k, noise, offset, keep)` returns, for one window (batch 1) of a `LogitDistribution`:
- mean (C, *S): 1/k Σ_s p_s, the MC estimate of Eq. (14) (probabilities);
- second (C, *S): 1/k Σ_s p_s² — the caller's stitching averages both and takes Var = second − mean²;
- kept (keep, *S) uint8: the arg-max labels of the first `keep` samples (for "accept the alternative");
- active_fraction: the share of voxels that were sampled.

Tile-sparse evaluation. A voxel is *settled* when its top class t (arg-max of μ) beats every other class c by
    μ_t − μ_c ≥ SETTLED_MARGIN + SETTLED_Z · (s_t + s_c),      s_c² = Σ_n,cc (the marginal logit variance)
(SETTLED_MARGIN = 10 nats, SETTLED_Z = 5): then in every sample, except with probability ≤ (C−1)·Φ(−5) ≈ 3e-7
per class, η_t − η_c ≥ 10 and p_t ≥ 1/(1 + (C−1) e^{−10}), so softmax(μ) agrees with the MC mean to within
(C−1)·e^{−10} ≈ 2e-4 and the variance is below 1e-7. The grid is cut into the tiles of the `NoiseField`; tiles with
at least one unsettled voxel are sampled exactly as `LogitDistribution.sample` with the same field would (the same
position-keyed ε_d, ε_k and global ε — tested), the others take softmax(μ) and zero variance. In a CT volume most
of the body and all of the air is settled, so the cost of k samples is a fraction of a network pass.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from uqseg.ct.covariance import LogitDistribution
from uqseg.ct.noise import VOXEL_STREAM, NoiseField

SETTLED_MARGIN = 10.0
SETTLED_Z = 5.0
SAMPLE_CHUNK = 10


@dataclass
class WindowMoments:
    mean: torch.Tensor  # (C, *S)
    second: torch.Tensor  # (C, *S)
    kept: torch.Tensor | None  # (keep, *S) uint8
    active_fraction: float


def unsettled_voxels(dist: LogitDistribution) -> torch.Tensor:
    """bool (*S) for batch item 0: the voxels whose label some sample could change (module docstring)."""
    mu = dist.mean[0]
    if dist.form == "deterministic":
        return torch.zeros(mu.shape[1:], dtype=torch.bool, device=mu.device)
    s = dist.marginal_variance()[0].clamp_min(0).sqrt()
    top = mu.argmax(0, keepdim=True)
    mu_t = mu.gather(0, top)
    s_t = s.gather(0, top)
    margin = mu_t - mu - SETTLED_Z * (s_t + s)
    margin = margin.scatter(0, top, float("inf"))  # the top class itself
    return (margin < SETTLED_MARGIN).any(0)


def _tiles(shape, tile):
    if any(s % t for s, t in zip(shape, tile)):
        raise ValueError(f"window {tuple(shape)} is not a multiple of the noise tile {tile}")
    return tuple(s // t for s, t in zip(shape, tile))


def _to_tiles(x: torch.Tensor, tile) -> torch.Tensor:
    """(..., Z, Y, X) → (..., nTz·nTy·nTx, tz·ty·tx) in tile-major order."""
    lead = x.shape[:-3]
    (nz, ny, nx), (tz, ty, tx) = _tiles(x.shape[-3:], tile), tile
    y = x.reshape(*lead, nz, tz, ny, ty, nx, tx)
    n = len(lead)
    y = y.permute(*range(n), n, n + 2, n + 4, n + 1, n + 3, n + 5)
    return y.reshape(*lead, nz * ny * nx, tz * ty * tx)


def mc_moments(dist: LogitDistribution, k: int, noise: NoiseField, offset: tuple[int, int, int] = (0, 0, 0),
               keep: int = 0, sparse: bool = True) -> WindowMoments:
    """Eq. (14) moments of one window (batch item 0) from k position-keyed samples; see the module docstring.
    `sparse=False` samples every voxel (the reference the tests compare with)."""
    mu = dist.mean[0].float()
    c = mu.shape[0]
    shape = tuple(mu.shape[1:])
    p0 = mu.softmax(0)
    mean, second = p0.clone(), p0 * p0
    kept = mu.argmax(0).to(torch.uint8).expand(keep, *shape).clone() if keep else None
    if dist.form == "deterministic" or k == 0:
        return WindowMoments(mean, second, kept, 0.0)
    tile = noise.tile
    if any(o % t for o, t in zip(offset, tile)):
        raise ValueError(f"window offset {offset} is not a multiple of the noise tile {tile}")
    active_vox = unsettled_voxels(dist) if sparse else torch.ones(shape, dtype=torch.bool, device=mu.device)
    active_tiles = _to_tiles(active_vox[None].float(), tile)[0].amax(-1) > 0  # (nT,)
    tile_ids = torch.nonzero(active_tiles).flatten()
    nt = _tiles(shape, tile)
    n_active = int(tile_ids.numel())
    if n_active == 0:
        return WindowMoments(mean, second, kept, 0.0)
    tvox = tile[0] * tile[1] * tile[2]
    # flat voxel indices (into Z·Y·X) of the active tiles' voxels, tile-major
    vox_index = _to_tiles(torch.arange(mu[0].numel(), device=mu.device).reshape(shape)[None], tile)[0]
    index = vox_index[tile_ids].reshape(-1)  # (n_active · tvox,)
    # ε_d of the active tiles, exactly as keyed_normal draws them, in the tile-major order of `index`
    tile_coords = list(itertools.product(*[range(n) for n in nt]))
    off_tiles = tuple(o // t for o, t in zip(offset, tile))
    eps_d = torch.stack([noise.tile_noise(k, c, tuple(a + b for a, b in zip(tile_coords[int(t)], off_tiles)),
                                          VOXEL_STREAM) for t in tile_ids], 2).reshape(k, c, -1)
    if dist.form == "mixture_of_bases":
        # block-major order: the active tiles consist of whole P×P×P blocks; voxels of one block consecutive
        p3 = dist.block ** 3
        if any(t % dist.block for t in tile):
            raise ValueError(f"the noise tile {tile} must consist of whole mixture blocks of {dist.block} voxels")
        block_of = dist.block_of_voxel(index)
        z_, y_, x_ = shape
        zz, yy, xx = index // (y_ * x_), (index // x_) % y_, index % x_
        pb = dist.block
        within = ((zz % pb) * pb + yy % pb) * pb + xx % pb
        perm = torch.argsort(block_of * p3 + within)
        index, eps_d = index[perm], eps_d[:, :, perm]
        blocks = block_of[perm][::p3]  # (nb,)
        rank = dist.rank
        a_b = dist.factor[0].float().reshape(rank, -1)[:, index].reshape(rank, -1, p3)  # (R, nb, P³)
        bases_b = dist.block_bases()[0].float().reshape(-1, c, rank)[blocks]  # (nb, C, R)
        block_eps = noise.block_noise(k, 1, dist.block_grid(), rank, offset, dist.block)[:, 0]
        block_eps = block_eps.reshape(k, -1, rank)[:, blocks]  # (k, nb, R)
    elif dist.form == "single_basis":
        a_t = dist.factor[0].float().reshape(dist.rank, -1)[:, index].T  # (n, R)
        global_eps = noise.global_noise(k, dist.rank).float()
    elif dist.form == "lowrank":
        p_f = dist.factor[0].float().reshape(c, dist.rank, -1)[:, :, index]  # (C, R, n)
        global_eps = noise.global_noise(k, dist.rank).float()
    mu_a = mu.reshape(c, -1)[:, index]  # (C, n)
    sd_a = (0.5 * dist.log_var[0].float()).exp().reshape(c, -1)[:, index]
    sum_p = torch.zeros(c, index.numel(), device=mu.device)
    sum_p2 = torch.zeros_like(sum_p)
    kept_a = []
    for s0 in range(0, k, SAMPLE_CHUNK):
        s1 = min(k, s0 + SAMPLE_CHUNK)
        ks = s1 - s0
        eta = mu_a[None] + sd_a[None] * eps_d[s0:s1]  # (ks, C, n)
        if dist.form == "mixture_of_bases":
            g = bases_b[None] * block_eps[s0:s1, :, None, :]  # (ks, nb, C, R): B̃_k diag(ε_k)
            eta = eta + torch.einsum("rbv,kbcr->kcbv", a_b, g).reshape(ks, c, -1)
        elif dist.form == "single_basis":
            g = (dist.bases[0].float()[None] * global_eps[s0:s1, None, :])  # (ks, C, R)
            eta = eta + (a_t @ g.reshape(-1, dist.rank).T).T.reshape(ks, c, -1)
        elif dist.form == "lowrank":
            eta = eta + torch.einsum("crn,kr->kcn", p_f, global_eps[s0:s1])
        p = eta.softmax(1)
        sum_p += p.sum(0)
        sum_p2 += (p * p).sum(0)
        if keep and s0 < keep:
            kept_a.append(p[: keep - s0].argmax(1).to(torch.uint8))
    mean.reshape(c, -1)[:, index] = sum_p / k
    second.reshape(c, -1)[:, index] = sum_p2 / k
    if keep:
        kept.reshape(keep, -1)[:, index] = torch.cat(kept_a)[:keep]
    return WindowMoments(mean, second, kept, n_active * tvox / mu[0].numel())
