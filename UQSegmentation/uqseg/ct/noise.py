"""Position-keyed Gaussian noise, so that sliding-window samples of one volume stitch consistently; drawn in
antithetic pairs.

A sample of Eq. (13) needs ε_d for every voxel and (mixture of bases) ε_k for every block. When the volume is
processed window by window, a voxel in the overlap of two windows must get the SAME ε_d in both, or the stitched
sample would be an average of two different draws (less variance along the seams). `NoiseField` makes every draw a
function of (seed, stream, position in the whole volume): the grid is cut into fixed tiles aligned to the volume
origin, each tile's normals come from a generator seeded by (seed, stream, k, channels, tile index), and a window
takes the part of each tile it covers. Sample s of a window therefore equals sample s of any other window (or of the
whole volume) on their common voxels, independent of the window layout. Streams: 0 voxel noise ε_d, 1 block noise
ε_k, 2 the global ε of the low-rank / single-basis forms.

Antithetic pairs (`antithetic=True`, the default): of k samples only m = ⌈k/2⌉ are drawn; sample s ≥ m is the
mirror −ε of sample s − m, in every stream. Because η of Eq. (13) is linear in (ε_d, ε_k, ε), the mirrored sample is
η' = 2μ − η: each sample has exactly the law N(μ, Σ), so the MC estimate of Eq. (14) stays unbiased. For a
one-organ model p = σ(δ) with δ linear in the noise, a function monotone in every coordinate of it, so the two
members of a pair are negatively correlated and the estimate is never less accurate than with k independent draws
(antithetic variates; e.g. Owen, "Monte Carlo theory, methods and examples", §8.2); for more classes softmax is not
monotone and that guarantee does not hold (the draws are still exact). Half the random numbers, which are most of
the cost of sampling on a CPU.

Layout of a tile's draws: (blocks of the tile, samples, channels, voxels of a block) — the tile's `layout_block`³
blocks in (z, y, x) order, inside a block (z, y, x) — so that the sampler can treat a block's voxels of all samples
as one small matrix (`uqseg.ct.mc_estimate`). `tile_noise` lays them out on the grid.
"""

from __future__ import annotations

import itertools

import torch

VOXEL_STREAM, BLOCK_STREAM, GLOBAL_STREAM = 0, 1, 2
_MASK = (1 << 63) - 1


def _key(*parts: int) -> int:
    """A 63-bit generator seed from integers (a fixed polynomial hash; only needs to separate tiles)."""
    h = 1469598103934665603
    for p in parts:
        h = ((h ^ (int(p) & _MASK)) * 1099511628211) & _MASK
    return h


class NoiseField:
    """Standard normal draws keyed by position. `tile`: the tile size (z, y, x) in grid cells (an int for a cube);
    voxel noise and block noise use the same tile size, counted in voxels and in blocks respectively. Methods take
    `distinct_only=True` to return only the m = `distinct(k)` drawn samples of a k-sample request (not the mirrors)."""

    def __init__(self, seed: int = 0, device: torch.device | str = "cpu", tile: int | tuple[int, int, int] = (4, 8, 8),
                 layout_block: int = 4, antithetic: bool = True):
        self.seed = int(seed)
        self.device = torch.device(device)
        self.tile = (int(tile),) * 3 if isinstance(tile, int) else tuple(int(t) for t in tile)
        if any(t % layout_block for t in self.tile):
            raise ValueError(f"the tile {self.tile} must consist of whole {layout_block}³ layout blocks")
        self.layout_block = int(layout_block)
        self.antithetic = bool(antithetic)

    def distinct(self, k: int) -> int:
        """How many of k samples are drawn (the others mirror them)."""
        return -(-k // 2) if self.antithetic else k

    def _generator(self, *parts: int) -> torch.Generator:
        g = torch.Generator(device=self.device)
        g.manual_seed(_key(self.seed, *parts))
        return g

    def _mirrored(self, raw: torch.Tensor, k: int, axis: int, distinct_only: bool) -> torch.Tensor:
        m = raw.shape[axis]
        if distinct_only or m == k:
            return raw
        return torch.cat([raw, -raw.narrow(axis, 0, k - m)], dim=axis)

    def tile_draws(self, k: int, channels: int, tile_index: tuple[int, int, int], stream: int,
                   out: torch.Tensor | None = None, distinct_only: bool = False) -> torch.Tensor:
        """The normals of one tile (tile_index counts tiles): (blocks of the tile, k, channels, voxels of a block),
        or with `distinct_only` the drawn (…, m, …) part only (then `out` may receive it)."""
        p3 = self.layout_block ** 3
        nblk = self.tile[0] * self.tile[1] * self.tile[2] // p3
        size = (nblk, self.distinct(k), channels, p3)
        g = self._generator(stream, k, channels, *tile_index)
        if out is not None:
            if not distinct_only and size[1] != k:
                raise ValueError("`out` receives the drawn samples only (distinct_only=True)")
            return torch.randn(size, generator=g, out=out)
        return self._mirrored(torch.randn(size, generator=g, device=self.device), k, 1, distinct_only)

    def tile_noise(self, k: int, channels: int, tile_index: tuple[int, int, int], stream: int,
                   distinct_only: bool = False) -> torch.Tensor:
        """The same normals as `tile_draws`, laid out on the tile's voxel grid: (k or m, channels, tz, ty, tx)."""
        p = self.layout_block
        tz, ty, tx = self.tile
        raw = self.tile_draws(k, channels, tile_index, stream, distinct_only=distinct_only)
        n = raw.shape[1]
        raw = raw.reshape(tz // p, ty // p, tx // p, n, channels, p, p, p)
        return raw.permute(3, 4, 0, 5, 1, 6, 2, 7).reshape(n, channels, tz, ty, tx)

    def keyed_normal(self, k: int, channels: int, shape: tuple[int, int, int], offset: tuple[int, int, int],
                     stream: int, distinct_only: bool = False) -> torch.Tensor:
        """(k, channels, *shape) normals for the cells [offset, offset + shape) of the whole grid (or the drawn m)."""
        out = torch.empty((self.distinct(k) if distinct_only else k, channels, *shape), device=self.device)
        ranges = [range(o // t, (o + s - 1) // t + 1) for o, s, t in zip(offset, shape, self.tile)]
        for index in itertools.product(*ranges):
            noise = self.tile_noise(k, channels, index, stream, distinct_only)
            src, dst = [], []
            for ti, o, s, t in zip(index, offset, shape, self.tile):
                lo, hi = max(ti * t, o), min((ti + 1) * t, o + s)
                src.append(slice(lo - ti * t, hi - ti * t))
                dst.append(slice(lo - o, hi - o))
            out[(slice(None), slice(None), *dst)] = noise[(slice(None), slice(None), *src)]
        return out

    def voxel_noise(self, k: int, shape: tuple[int, ...], offset: tuple[int, int, int]) -> torch.Tensor:
        """ε_d for a window: `shape` = (1, C, Z, Y, X) of the logits → (k, 1, C, Z, Y, X)."""
        if shape[0] != 1:
            raise ValueError("position-keyed noise is drawn for one window at a time (batch size 1)")
        return self.keyed_normal(k, shape[1], tuple(shape[2:]), offset, VOXEL_STREAM)[:, None]

    def block_noise(self, k: int, batch: int, blocks: tuple[int, int, int], rank: int,
                    offset: tuple[int, int, int], block: int, distinct_only: bool = False) -> torch.Tensor:
        """ε_k of the mixture's blocks of a window starting at voxel `offset` (a multiple of the block edge):
        (k, 1, Kz, Ky, Kx, R) (or the drawn m)."""
        if batch != 1:
            raise ValueError("position-keyed noise is drawn for one window at a time (batch size 1)")
        if any(o % block for o in offset):
            raise ValueError(f"window offset {offset} is not a multiple of the mixture block edge {block}")
        block_offset = tuple(o // block for o in offset)
        eps = self.keyed_normal(k, rank, blocks, block_offset, BLOCK_STREAM, distinct_only)  # (k, R, Kz, Ky, Kx)
        return eps.permute(0, 2, 3, 4, 1)[:, None]

    def global_noise(self, k: int, rank: int, distinct_only: bool = False) -> torch.Tensor:
        """The global ε (k, R) of the low-rank and single-basis forms: the same for every window (or the drawn m)."""
        raw = torch.randn((self.distinct(k), rank), generator=self._generator(GLOBAL_STREAM, k, rank),
                          device=self.device)
        return self._mirrored(raw, k, 0, distinct_only)
