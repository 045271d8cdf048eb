"""The landmark graph of the chest X-ray model: three closed rings, their Laplacians and the pooling matrices.

Nodes (HybridGNet / CheXmask convention, order as in `../shared/data/cxr_jsrt/landmarks/*.json`):
right lung 44 nodes (indices 0..43), left lung 50 (44..93), heart 26 (94..119); N = 120. Each organ is a closed ring
in annotation order: node i is joined to i − 1 and i + 1 (mod the organ's size); there are no edges between organs.

Coarse level (decoder pooling): half the nodes per organ, 22 + 25 + 13 = 60, coarse node j of an organ sitting
between fine nodes 2j and 2j + 1:
    pool      c_j = (f_2j + f_2j+1) / 2                                  (pair averaging down,  P: 60 × 120)
    unpool    f_2j = ¾ c_j + ¼ c_j−1,   f_2j+1 = ¾ c_j + ¼ c_j+1  (mod n)  (linear interpolation up, U: 120 × 60)
U puts each fine node a quarter of the way from "its" coarse node towards the neighbouring one, which is where it
lies on a uniformly sampled ring (a coarse node is the midpoint of its pair). Both matrices have rows summing to 1,
so a constant signal (e.g. a translation of the whole shape) passes unchanged.

Laplacian (Defferrard et al. 2016; Kipf & Welling 2017): symmetric normalised L = I − D^−½ A D^−½, eigenvalues in
[0, 2]; the Chebyshev filters use the rescaled L̃ = 2 L / λ_max − I with λ_max = 2 (the usual bound; exact for the
even rings, ≥ the true λ_max for odd ones, so the spectrum of L̃ always lies in [−1, 1]): L̃ = −D^−½ A D^−½.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

ORGANS: tuple[tuple[str, int], ...] = (("right_lung", 44), ("left_lung", 50), ("heart", 26))
N_NODES = sum(n for _, n in ORGANS)


def organ_slices(organs=ORGANS) -> dict[str, slice]:
    """{organ: slice of its nodes in the stacked (N, 2) array}."""
    out, start = {}, 0
    for name, n in organs:
        out[name] = slice(start, start + n)
        start += n
    return out


def node_organs(organs=ORGANS) -> list[str]:
    """The organ name of every node, in node order."""
    return [name for name, n in organs for _ in range(n)]


def ring_adjacency(sizes) -> np.ndarray:
    """Dense symmetric 0/1 adjacency of disjoint closed rings with the given node counts (each ≥ 3)."""
    total = int(sum(sizes))
    a = np.zeros((total, total))
    start = 0
    for n in sizes:
        if n < 3:
            raise ValueError(f"a closed ring needs at least 3 nodes, got {n}")
        i = np.arange(n) + start
        j = (np.arange(n) + 1) % n + start
        a[i, j] = a[j, i] = 1.0
        start += n
    return a


def normalised_laplacian(adjacency: np.ndarray) -> np.ndarray:
    """L = I − D^−½ A D^−½ (an isolated node would keep L_ii = 1; ring nodes all have degree 2)."""
    a = np.asarray(adjacency, float)
    deg = a.sum(1)
    inv = np.where(deg > 0, 1.0 / np.sqrt(np.where(deg > 0, deg, 1.0)), 0.0)
    return np.eye(len(a)) - inv[:, None] * a * inv[None, :]


def scaled_laplacian(adjacency: np.ndarray, lambda_max: float = 2.0) -> np.ndarray:
    """L̃ = 2 L / λ_max − I, the argument of the Chebyshev polynomials."""
    lap = normalised_laplacian(adjacency)
    return 2.0 * lap / lambda_max - np.eye(len(lap))


def pool_matrix(sizes) -> np.ndarray:
    """P (Σ n/2 × Σ n): c_j = (f_2j + f_2j+1) / 2 within each ring; every size must be even."""
    rows, cols = sum(n // 2 for n in sizes), sum(sizes)
    p = np.zeros((rows, cols))
    r0 = c0 = 0
    for n in sizes:
        if n % 2:
            raise ValueError(f"pair pooling needs an even ring size, got {n}")
        for j in range(n // 2):
            p[r0 + j, c0 + 2 * j] = p[r0 + j, c0 + 2 * j + 1] = 0.5
        r0, c0 = r0 + n // 2, c0 + n
    return p


def unpool_matrix(sizes) -> np.ndarray:
    """U (Σ n × Σ n/2): f_2j = ¾ c_j + ¼ c_j−1, f_2j+1 = ¾ c_j + ¼ c_j+1 (indices mod n/2, per ring)."""
    rows, cols = sum(sizes), sum(n // 2 for n in sizes)
    u = np.zeros((rows, cols))
    r0 = c0 = 0
    for n in sizes:
        m = n // 2
        for j in range(m):
            u[r0 + 2 * j, c0 + j] += 0.75
            u[r0 + 2 * j, c0 + (j - 1) % m] += 0.25
            u[r0 + 2 * j + 1, c0 + j] += 0.75
            u[r0 + 2 * j + 1, c0 + (j + 1) % m] += 0.25
        r0, c0 = r0 + n, c0 + m
    return u


@dataclass(frozen=True)
class LandmarkGraph:
    """The two levels of the decoder's graph as float32 tensors (dense: 120 nodes are few)."""

    fine_sizes: tuple[int, ...]
    coarse_sizes: tuple[int, ...]
    lap_fine: torch.Tensor  # (N, N) scaled Laplacian L̃ of the full graph
    lap_coarse: torch.Tensor  # (N/2, N/2) of the coarse graph
    pool: torch.Tensor  # (N/2, N)
    unpool: torch.Tensor  # (N, N/2)

    @property
    def n_fine(self) -> int:
        return int(sum(self.fine_sizes))

    @property
    def n_coarse(self) -> int:
        return int(sum(self.coarse_sizes))


def build_graph(organs=ORGANS) -> LandmarkGraph:
    fine = tuple(n for _, n in organs)
    coarse = tuple(n // 2 for n in fine)
    t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    return LandmarkGraph(fine, coarse, t(scaled_laplacian(ring_adjacency(fine))),
                         t(scaled_laplacian(ring_adjacency(coarse))), t(pool_matrix(fine)), t(unpool_matrix(fine)))
