"""The Monte-Carlo predictive distribution of Eq. (14): p(t | x) ≈ 1/k Σ_s softmax(η_s), η_s from Eq. (13), drawn
from ONE network output, with the per-voxel predictive variance Var[softmax(η)_c] — evaluated only where sampling
can change anything.

`mc_moments(dist, k, noise, offset, keep)` returns, for one window (batch 1) of a `LogitDistribution`:
- mean (C, *S): 1/k Σ_s p_s, the MC estimate of Eq. (14) (probabilities);
- second (C, *S): 1/k Σ_s p_s² — the caller's stitching averages both and takes Var = second − mean²;
- kept (keep, *S) uint8: the arg-max labels of the first `keep` samples (for "accept the alternative");
- active_fraction: the share of voxels that were sampled.

Samples. C > 2 classes: η_s exactly as `LogitDistribution.sample` draws them with the same `NoiseField` (the same
position-keyed ε_d, ε_k and global ε — tested). C = 2 (one organ): only the logit difference δ = η_1 − η_0 enters
softmax(η)_1 = σ(δ), and δ is Gaussian with mean μ_1 − μ_0, diagonal part √(d_0 + d_1) ε (one normal per voxel
instead of two) and low-rank part (P_1 − P_0) ε (the difference of the two basis rows). These draws have exactly
the law of the general ones (not the same numbers); they halve the cost of sampling.

Tile-sparse evaluation. A voxel is *settled* when its top class t (arg-max of μ) beats every other class c by
    μ_t − μ_c ≥ SETTLED_MARGIN + SETTLED_Z · (s_t + s_c),      s_c² = Σ_n,cc (the marginal logit variance)
(SETTLED_MARGIN = 10 nats, SETTLED_Z = 5): then in every sample, except with probability ≤ (C−1)·Φ(−5) ≈ 3e-7
per class, η_t − η_c ≥ 10 and p_t ≥ 1/(1 + (C−1) e^{−10}), so softmax(μ) agrees with the MC mean to within
(C−1)·e^{−10} ≈ 2e-4 and the variance is below 1e-7. The grid is cut into the tiles of the `NoiseField`; tiles with
at least one unsettled voxel are sampled, the others take softmax(μ) and zero variance. In a CT volume most of the
body and all of the air is settled, so the cost of k samples is a fraction of a network pass.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from uqseg.ct.covariance import LogitDistribution
from uqseg.ct.noise import VOXEL_STREAM, NoiseField

SETTLED_MARGIN = 10.0
SETTLED_Z = 5.0
#: voxels whose k samples are evaluated together (a multiple of the tile volume)
VOXEL_CHUNK = 16384  # 8 tiles of 8 × 16 × 16 (also 64 of 4 × 8 × 8)


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
    if mu.shape[0] == 2:  # (arg-max over the class axis is slow on the CPU)
        return (mu[1] - mu[0]).abs() - SETTLED_Z * (s[0] + s[1]) < SETTLED_MARGIN
    top = mu.argmax(0, keepdim=True)
    margin = mu.gather(0, top) - mu - SETTLED_Z * (s.gather(0, top) + s)
    margin = margin.scatter(0, top, float("inf"))  # the top class itself
    return (margin < SETTLED_MARGIN).any(0)


def class_argmax(x: torch.Tensor) -> torch.Tensor:
    """uint8 arg-max over axis 0 of (C, ...) by comparisons (torch's arg-max over a leading axis is slow on the
    CPU); ties go to the lower class, as torch.argmax."""
    best, label = x[0], torch.zeros(x.shape[1:], dtype=torch.uint8, device=x.device)
    for c in range(1, x.shape[0]):
        better = x[c] > best
        label[better] = c
        best = torch.where(better, x[c], best)
    return label


def _tiles(shape, tile):
    if any(s % t for s, t in zip(shape, tile)):
        raise ValueError(f"window {tuple(shape)} is not a multiple of the noise tile {tile}")
    return tuple(s // t for s, t in zip(shape, tile))


def _to_tiles(x: torch.Tensor, tile, block: int | None = None) -> torch.Tensor:
    """(..., Z, Y, X) → (..., nTiles, voxels per tile), tiles in (z, y, x) order. Inside a tile the voxels are in
    (z, y, x) order, or — with `block` — grouped block by block ((bz, by, bx) then (pz, py, px)), so that the voxels
    of one mixture block are consecutive."""
    lead = x.shape[:-3]
    (nz, ny, nx), (tz, ty, tx) = _tiles(x.shape[-3:], tile), tile
    n = len(lead)
    if block is None:
        y = x.reshape(*lead, nz, tz, ny, ty, nx, tx).permute(*range(n), n, n + 2, n + 4, n + 1, n + 3, n + 5)
        return y.reshape(*lead, nz * ny * nx, tz * ty * tx)
    p = block
    y = x.reshape(*lead, nz, tz // p, p, ny, ty // p, p, nx, tx // p, p)
    y = y.permute(*range(n), n, n + 3, n + 6, n + 1, n + 4, n + 7, n + 2, n + 5, n + 8)
    return y.reshape(*lead, nz * ny * nx, tz * ty * tx)


def _tile_draws(noise: NoiseField, k: int, channels: int, tile_ids, nt, offset) -> torch.Tensor:
    """ε_d of the listed tiles as `keyed_normal` draws them: (nA, k, channels, voxels of a tile), block-major
    voxel order (`NoiseField.tile_draws`)."""
    coords = list(itertools.product(*[range(n) for n in nt]))
    off = tuple(o // t for o, t in zip(offset, noise.tile))
    tvox = noise.tile[0] * noise.tile[1] * noise.tile[2]
    out = torch.empty((len(tile_ids), k, channels, tvox), device=noise.device)
    for j, t in enumerate(tile_ids.tolist()):
        noise.tile_draws(k, channels, tuple(a + b for a, b in zip(coords[t], off)), VOXEL_STREAM, out=out[j])
    return out


def mc_moments(dist: LogitDistribution, k: int, noise: NoiseField, offset: tuple[int, int, int] = (0, 0, 0),
               keep: int = 0, sparse: bool = True) -> WindowMoments:
    """Eq. (14) moments of one window (batch item 0) from k position-keyed samples; see the module docstring.
    `sparse=False` samples every voxel (the reference the tests compare with)."""
    mu = dist.mean[0].float()
    c = mu.shape[0]
    shape = tuple(mu.shape[1:])
    p0 = mu.softmax(0)
    mean, second = p0.clone(), p0 * p0
    kept = class_argmax(mu).expand(keep, *shape).clone() if keep else None
    if dist.form == "deterministic" or k == 0:
        return WindowMoments(mean, second, kept, 0.0)
    tile = noise.tile
    if any(o % t for o, t in zip(offset, tile)):
        raise ValueError(f"window offset {offset} is not a multiple of the noise tile {tile}")
    mixture = dist.form == "mixture_of_bases"
    block = noise.layout_block
    if mixture and dist.block != block:
        raise ValueError(f"the noise field's layout block {block} differs from the mixture block {dist.block}")
    active_vox = unsettled_voxels(dist) if sparse else torch.ones(shape, dtype=torch.bool, device=mu.device)
    tile_ids = torch.nonzero(_to_tiles(active_vox[None], tile)[0].any(-1)).flatten()
    if tile_ids.numel() == 0:
        return WindowMoments(mean, second, kept, 0.0)
    nt = _tiles(shape, tile)
    binary = c == 2
    ch = 1 if binary else c
    # flat voxel indices (into Z·Y·X) of the active tiles, in the order of their noise
    arange = torch.arange(mu[0].numel(), device=mu.device).reshape(shape)
    index = _to_tiles(arange[None], tile, block)[0][tile_ids].reshape(-1)
    eps_tiles = _tile_draws(noise, k, ch, tile_ids, nt, offset)  # (nA, k, ch, tvox)
    tvox = eps_tiles.shape[-1]
    mu_a = _to_tiles(mu, tile, block)[:, tile_ids].reshape(c, -1)  # (C, n) in the order of `index`
    var_a = _to_tiles(dist.variance[0].float(), tile, block)[:, tile_ids].reshape(c, -1)
    if binary:
        loc = (mu_a[1] - mu_a[0])[None]  # (1, n) mean of δ
        scale = (var_a[0] + var_a[1]).sqrt()[None]
    else:
        loc, scale = mu_a, var_a.sqrt()
    low_rank = _low_rank_sampler(dist, index, k, noise, offset, binary, tile_ids)
    n = index.numel()
    sum_p = torch.empty(ch, n, device=mu.device)
    sum_p2 = torch.empty_like(sum_p)
    kept_a = torch.empty(keep, n, dtype=torch.uint8, device=mu.device) if keep else None
    # all k samples of a chunk of voxels at a time: the temporaries (k × chunk) stay in the CPU cache
    for v0 in range(0, n, VOXEL_CHUNK):
        v1 = min(n, v0 + VOXEL_CHUNK)
        eps = eps_tiles[v0 // tvox: v1 // tvox].permute(1, 2, 0, 3).reshape(k, ch, v1 - v0)
        eta = eps.mul_(scale[None, :, v0:v1]).add_(loc[None, :, v0:v1])  # (k, ch, nv)
        if low_rank is not None:
            eta += low_rank(v0, v1)
        if keep:
            kept_a[:, v0:v1] = (eta[:keep, 0] > 0) if binary else eta[:keep].argmax(1)
        p = torch.sigmoid_(eta) if binary else eta.softmax(1)
        sum_p[:, v0:v1] = p.sum(0)
        sum_p2[:, v0:v1] = p.mul_(p).sum(0)
    m1, m2 = sum_p / k, sum_p2 / k
    if binary:  # class 1 moments → both classes: p_0 = 1 − p_1
        m1 = torch.cat([1 - m1, m1])
        m2 = torch.cat([1 - 2 * m1[1:] + m2, m2])
    mean.reshape(c, -1)[:, index] = m1
    second.reshape(c, -1)[:, index] = m2
    if keep:
        kept.reshape(keep, -1)[:, index] = kept_a
    return WindowMoments(mean, second, kept, int(tile_ids.numel()) * tvox / mu[0].numel())


def _low_rank_sampler(dist: LogitDistribution, index: torch.Tensor, k: int, noise: NoiseField, offset, binary: bool,
                      tile_ids: torch.Tensor):
    """A function (v0, v1) → the low-rank part P ε of all k samples at the voxels index[v0:v1]: (k, C, nv), or for
    a binary model the difference (P_1 − P_0) ε as (k, 1, nv); None for the diagonal form. v0 and v1 are multiples
    of the mixture block volume (the voxels of a block are consecutive)."""
    c = dist.classes
    rank = dist.rank
    if dist.form == "mixture_of_bases":
        p3 = dist.block ** 3
        a_b = _to_tiles(dist.factor[0].float(), noise.tile, dist.block)[:, tile_ids].reshape(rank, -1, p3)  # (R, nb, P³)
        blocks = dist.block_of_voxel(index[::p3])  # (nb,) the block of each run of P³ voxels
        bases = dist.block_bases()[0].float().reshape(-1, c, rank)[blocks]  # (nb, C, R)
        if binary:
            bases = (bases[:, 1] - bases[:, 0])[:, None]  # (nb, 1, R)
        eps = noise.block_noise(k, 1, dist.block_grid(), rank, offset, dist.block)[:, 0].reshape(k, -1, rank)
        eps = eps[:, blocks]  # (k, nb, R)

        def sample(v0, v1):
            b0, b1 = v0 // p3, -(-v1 // p3)
            g = bases[None, b0:b1] * eps[:, b0:b1, None, :]  # (k, nb, ch, R): B̃_k diag(ε_k)
            return torch.einsum("rbv,kbcr->kcbv", a_b[:, b0:b1], g).reshape(k, bases.shape[1], -1)
        return sample
    if dist.form == "single_basis":
        a_t = _to_tiles(dist.factor[0].float(), noise.tile, noise.layout_block)[:, tile_ids].reshape(rank, -1).T
        basis = dist.bases[0].float()
        if binary:
            basis = (basis[1] - basis[0])[None]
        eps = noise.global_noise(k, rank).float()

        g = (basis[None] * eps[:, None, :]).reshape(-1, rank)  # (k·ch, R): B diag(ε_s)

        def sample(v0, v1):
            return (a_t[v0:v1] @ g.T).T.reshape(k, basis.shape[0], -1)
        return sample
    if dist.form == "lowrank":
        p_f = _to_tiles(dist.factor[0].float(), noise.tile, noise.layout_block)[:, :, tile_ids].reshape(c, rank, -1)
        if binary:
            p_f = (p_f[1] - p_f[0])[None]
        eps = noise.global_noise(k, rank).float()

        def sample(v0, v1):
            return torch.einsum("crn,kr->kcn", p_f[:, :, v0:v1], eps)
        return sample
    return None
