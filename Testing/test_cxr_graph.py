"""cxr-landmarks graph operators: the three rings, their Laplacians, pair pooling / ring unpooling, and the Chebyshev
convolution against a dense spectral reference (T_k(L̃) = U cos(k arccos Λ) Uᵀ) on small graphs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from uqseg.cxr.chebconv import ChebBasis, ChebConv, SparseRows
from uqseg.cxr.graph import (ORGANS, build_graph, node_organs, normalised_laplacian, organ_slices, pool_matrix,
                             ring_adjacency, scaled_laplacian, unpool_matrix)


def test_rings_match_the_shared_annotation_layout():
    assert ORGANS == (("right_lung", 44), ("left_lung", 50), ("heart", 26))
    sl = organ_slices()
    assert (sl["right_lung"], sl["left_lung"], sl["heart"]) == (slice(0, 44), slice(44, 94), slice(94, 120))
    assert node_organs()[43] == "right_lung" and node_organs()[44] == "left_lung" and node_organs()[119] == "heart"
    a = ring_adjacency([n for _, n in ORGANS])
    assert a.shape == (120, 120) and np.array_equal(a, a.T)
    assert np.all(a.sum(1) == 2), "every node of a closed ring has exactly two neighbours"
    for organ, s in sl.items():  # closed ring in annotation order, no edges to other organs
        n = s.stop - s.start
        idx = np.arange(n) + s.start
        assert np.all(a[idx, (np.arange(n) + 1) % n + s.start] == 1), organ
        outside = np.ones(120, bool)
        outside[s] = False
        assert a[s][:, outside].sum() == 0, f"{organ} has edges to another organ"


def test_laplacian_spectrum():
    a = ring_adjacency([6, 5])
    lap = normalised_laplacian(a)
    ev = np.linalg.eigvalsh(lap)
    assert ev.min() == pytest.approx(0.0, abs=1e-12) and ev.max() <= 2 + 1e-12
    assert np.sum(np.abs(ev) < 1e-9) == 2, "one zero eigenvalue per connected ring"
    scaled = scaled_laplacian(a)
    np.testing.assert_allclose(scaled, -a / 2)  # degree 2 everywhere: L̃ = −D^−½ A D^−½ = −A / 2
    assert np.all(np.abs(np.linalg.eigvalsh(scaled)) <= 1 + 1e-12)


def test_pool_unpool_shapes_rows_and_rings():
    sizes = [n for _, n in ORGANS]
    p, u = pool_matrix(sizes), unpool_matrix(sizes)
    assert p.shape == (60, 120) and u.shape == (120, 60)
    np.testing.assert_allclose(p.sum(1), 1.0)
    np.testing.assert_allclose(u.sum(1), 1.0)
    # pooling never mixes organs; coarse ring sizes are halved
    g = build_graph()
    assert g.coarse_sizes == (22, 25, 13) and g.n_coarse == 60 and g.n_fine == 120
    assert np.array_equal(p[:22, 44:], np.zeros((22, 76))) and np.array_equal(u[44:94, :22], np.zeros((50, 22)))
    # pair averaging
    f = np.random.default_rng(0).normal(size=(120, 2))
    np.testing.assert_allclose(p @ f, (f[0::2] + f[1::2]) / 2)
    # a uniformly sampled ellipse: pooled nodes lie between their pair, unpooling a coarse ring restores the fine one
    for (organ, n), s in zip(ORGANS, organ_slices().values()):
        t = (np.arange(n) + 0.5) / n * 2 * np.pi
        ring = np.column_stack([100 * np.cos(t), 150 * np.sin(t)])
        fine = np.zeros((120, 2))
        fine[s] = ring
        back = (u @ (p @ fine))[s]
        step = np.linalg.norm(ring[1] - ring[0])
        assert np.max(np.linalg.norm(back - ring, axis=1)) < 0.15 * step, organ
    with pytest.raises(ValueError):
        pool_matrix([5])


def _dense_reference(lap: np.ndarray, x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    ev, vecs = np.linalg.eigh(lap)
    out = np.zeros(x.shape[:-1] + (weight.shape[-1],))
    for k in range(weight.shape[0]):
        tk = vecs @ np.diag(np.cos(k * np.arccos(np.clip(ev, -1, 1)))) @ vecs.T
        out += np.einsum("ij,bjc,cd->bid", tk, x, weight[k])
    return out + bias


@pytest.mark.parametrize("c_in,c_out,k", [(3, 5, 6), (5, 2, 6), (4, 4, 1), (4, 3, 2), (2, 3, 3)])
def test_chebconv_matches_dense_spectral_reference(c_in, c_out, k):
    """Every code path — recurrence (C_out ≥ C_in), Clenshaw (C_out < C_in), sparse and dense L̃, and the sparse
    polynomial basis of the model (rings shorter than 2K − 1 wrap onto themselves) — gives the same sum."""
    torch.manual_seed(0)
    lap = scaled_laplacian(ring_adjacency([6, 5, 4]))
    conv = ChebConv(c_in, c_out, k).double()
    with torch.no_grad():
        conv.bias.normal_()
    x = torch.randn(2, 15, c_in, dtype=torch.float64)
    ref = _dense_reference(lap, x.numpy(), conv.weight.detach().numpy(), conv.bias.detach().numpy())
    sparse = SparseRows(torch.from_numpy(lap))
    sparse.w = sparse.w.double()
    np.testing.assert_allclose(conv(x, sparse).detach().numpy(), ref, atol=1e-10)
    np.testing.assert_allclose(conv(x, torch.from_numpy(lap)).detach().numpy(), ref, atol=1e-10)
    basis = ChebBasis(torch.from_numpy(lap), k)
    basis.poly = basis.poly.double()
    np.testing.assert_allclose(conv(x, basis).detach().numpy(), ref, atol=1e-10)


def test_chebconv_fast_path_has_the_gradients_of_the_reference():
    torch.manual_seed(1)
    lap = build_graph().lap_coarse
    conv = ChebConv(4, 3, 6)
    x = torch.randn(5, 60, 4, requires_grad=True)
    gx_fast, gw_fast = torch.autograd.grad(conv(x, ChebBasis(lap, 6)).pow(2).sum(), [x, conv.weight])
    gx_ref, gw_ref = torch.autograd.grad(conv(x, lap).pow(2).sum(), [x, conv.weight])
    torch.testing.assert_close(gx_fast, gx_ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(gw_fast, gw_ref, atol=1e-4, rtol=1e-4)


def test_chebconv_is_local_to_k_minus_1_hops():
    lap = SparseRows(torch.from_numpy(scaled_laplacian(ring_adjacency([30]))).float())
    conv = ChebConv(1, 1, 6, bias=False)
    x = torch.zeros(1, 30, 1)
    x[0, 0, 0] = 1.0
    y = conv(x, lap)[0, :, 0].detach()
    reach = torch.nonzero(y.abs() > 1e-7).flatten().tolist()
    assert set(reach) <= set(range(0, 6)) | set(range(25, 30)), reach


def test_sparse_rows_equals_dense_and_has_gradients():
    g = build_graph()
    for m in (g.lap_fine, g.pool, g.unpool):
        s = SparseRows(m)
        torch.testing.assert_close(s.to_dense(), m)
        x = torch.randn(3, m.shape[1], 4, requires_grad=True)
        torch.testing.assert_close(s(x), torch.matmul(m, x))
        s(x, 2.0).sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()
