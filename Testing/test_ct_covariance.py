"""The four logit covariance forms of the CT stochastic segmentation network (uqseg.ct.covariance):
the sample covariance of many Eq. (13) draws matches the analytic Σ (Eq. 3, 4–5, 7) on a tiny volume, the KL of
Eq. (8) matches a dense computation, and position-keyed noise makes windows agree on their common voxels."""

from __future__ import annotations

import math

import pytest
import torch

from uqseg.ct.covariance import LogitDistribution
from uqseg.ct.network import StochasticSegNet3d, orthonormal_rows
from uqseg.ct.noise import NoiseField

C, R, M, P = 2, 3, 2, 2
GRID = (2, 2, 4)  # z, y, x: 16 voxels = 1 × 1 × 2 mixture blocks of 2 × 2 × 2 voxels


def _random_dist(form: str, seed: int = 0) -> LogitDistribution:
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn(1, C, *GRID, generator=g, dtype=torch.float64)
    log_var = torch.randn(1, C, *GRID, generator=g, dtype=torch.float64) * 0.3 - 1.0
    if form == "diagonal":
        return LogitDistribution(form, mean, log_var)
    if form == "lowrank":
        return LogitDistribution(form, mean, log_var, torch.randn(1, C, R, *GRID, generator=g, dtype=torch.float64))
    scales = torch.randn(1, R, *GRID, generator=g, dtype=torch.float64)
    if form == "single_basis":
        bases = torch.randn(1, C, R, generator=g, dtype=torch.float64)
        return LogitDistribution(form, mean, log_var, scales, bases)
    bases = torch.randn(M, C, R, generator=g, dtype=torch.float64)
    w = torch.randn(1, M, *GRID, generator=g, dtype=torch.float64) * 2
    return LogitDistribution(form, mean, log_var, scales, bases, w, block=P)


def _dense_sigma(dist: LogitDistribution) -> torch.Tensor:
    d = dist.variance.reshape(-1)
    sigma = torch.diag(d)
    if dist.form != "diagonal":
        p = dist.dense_factor()[0]
        sigma = sigma + p @ p.T
    return sigma


@pytest.mark.parametrize("form", ["diagonal", "lowrank", "single_basis", "mixture_of_bases"])
def test_sample_covariance_matches_the_analytic_sigma(form):
    dist = _random_dist(form)
    n = math.prod(GRID)
    draws = dist.sample(200_000, generator=torch.Generator().manual_seed(1)).reshape(200_000, C * n)
    emp = torch.cov(draws.T)
    sigma = _dense_sigma(dist)
    scale = sigma.diagonal().max()
    assert (emp - sigma).abs().max() / scale < 0.03, f"{form}: sample covariance differs from Σ"
    assert torch.allclose(draws.mean(0), dist.mean.reshape(-1), atol=0.03 * scale.sqrt())
    # the per-voxel C×C blocks of Eq. 5 / 7 are the diagonal blocks of the dense Σ (rows ordered c, voxel)
    vox = dist.voxel_covariance()[0].reshape(n, C, C)
    for i in range(n):
        block = sigma[[i, n + i]][:, [i, n + i]]
        assert torch.allclose(vox[i], block, atol=1e-10)


def test_mixture_blocks_are_independent_and_single_basis_is_global():
    mob = _dense_sigma(_random_dist("mixture_of_bases"))
    sb = _dense_sigma(_random_dist("single_basis"))
    n = math.prod(GRID)
    # voxel 0 (block 0) and voxel 3 (x = 3: block 1): no covariance under the mixture, some under one global basis
    assert mob[0, 3] == 0 and mob[0, n + 3] == 0
    assert sb[0, 3] != 0
    assert mob[0, 1] != 0  # x = 1, same block


def test_mixture_uses_the_weighted_basis_of_each_block():
    dist = _random_dist("mixture_of_bases")
    pi = dist.block_weights()  # (1, Kz, Ky, Kx, M)
    assert pi.shape == (1, 1, 1, 2, M)
    assert torch.allclose(pi.sum(-1), torch.ones(1, 1, 1, 2, dtype=pi.dtype))
    # block (0, 0, 1) holds voxels x = 2, 3: its weights are the softmax of the mean head output over those voxels
    w = dist.weight_logits[0, :, :, :, 2:4].mean(dim=(1, 2, 3))
    assert torch.allclose(pi[0, 0, 0, 1], w.softmax(0))
    bb = dist.block_bases()[0, 0, 0, 1]
    assert torch.allclose(bb, (pi[0, 0, 0, 1][:, None, None] * dist.bases).sum(0))


@pytest.mark.parametrize("form", ["diagonal", "lowrank", "single_basis", "mixture_of_bases"])
def test_kl_to_unit_matches_the_dense_formula(form):
    dist = _random_dist(form)
    sigma = _dense_sigma(dist)
    dims = sigma.shape[0]
    dense = 0.5 * (sigma.trace() - dims - torch.logdet(sigma)) / dims
    assert torch.allclose(dist.kl_to_unit(), dense, rtol=1e-9)


def test_kl_is_zero_at_unit_covariance():
    mean = torch.zeros(1, C, *GRID, dtype=torch.float64)
    dist = LogitDistribution("diagonal", mean, torch.zeros_like(mean))
    assert float(dist.kl_to_unit()) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("form", ["diagonal", "lowrank", "single_basis", "mixture_of_bases"])
def test_keyed_noise_gives_the_same_sample_in_every_window(form):
    """A voxel gets the same sample value whether the window holding it starts at 0 or at 4 along x (the stitching
    contract of the sliding-window inference)."""
    torch.manual_seed(0)
    big = _random_dist(form, seed=3)
    field = NoiseField(seed=7, tile=4, layout_block=2)
    whole = big.sample(5, noise=field, offset=(0, 0, 0)).to(torch.float64)

    def crop(t, sl):
        return None if t is None else t[(slice(None), slice(None), *sl)]

    sl = (slice(0, 2), slice(0, 2), slice(2, 4))
    part = LogitDistribution(form, crop(big.mean, sl), crop(big.log_var, sl),
                             None if big.factor is None else big.factor[..., sl[0], sl[1], sl[2]],
                             big.bases, crop(big.weight_logits, sl), big.block)
    window = part.sample(5, noise=field, offset=(0, 0, 2)).to(torch.float64)
    assert torch.allclose(window, whole[..., 2:4], atol=1e-6)


@pytest.mark.parametrize("form", ["diagonal", "lowrank", "single_basis", "mixture_of_bases"])
def test_logit_difference_variance_is_that_of_the_voxel_covariance(form):
    """Var[η_1 − η_0] = Σ_11 + Σ_00 − 2 Σ_01 of each voxel's block (Eq. 5 / 7): the spread the two-class settled
    rule and sampler use."""
    dist = _random_dist(form)
    vox = dist.voxel_covariance()[0]  # (*S, C, C)
    expected = vox[..., 1, 1] + vox[..., 0, 0] - 2 * vox[..., 0, 1]
    assert torch.allclose(dist.difference_variance()[0], expected, atol=1e-10)


@pytest.mark.parametrize("form", ["diagonal", "lowrank", "single_basis", "mixture_of_bases"])
def test_keyed_noise_comes_in_antithetic_pairs(form):
    """Of k = 7 keyed samples the last 3 mirror the first 3 about μ (η' = 2μ − η); without antithetic pairs the
    same field position gives independent draws."""
    dist = _random_dist(form, seed=4)
    eta = dist.sample(7, noise=NoiseField(seed=2, tile=4, layout_block=2)).to(torch.float64)
    assert torch.allclose(eta[4:], 2 * dist.mean[None] - eta[:3], atol=1e-6)
    assert not torch.allclose(eta[0], eta[4], atol=1e-3)
    plain = dist.sample(7, noise=NoiseField(seed=2, tile=4, layout_block=2, antithetic=False)).to(torch.float64)
    assert not torch.allclose(plain[4:], 2 * dist.mean[None] - plain[:3], atol=1e-2)


def test_network_outputs_every_form_on_the_grid():
    x = torch.randn(1, 1, 8, 8, 8)
    for form in ["deterministic", "diagonal", "lowrank", "single_basis", "mixture_of_bases"]:
        net = StochasticSegNet3d(classes=3, form=form, rank=16, bases=3, block=4, filters=(4, 8, 16))
        dist = net(x)
        assert dist.mean.shape == (1, 3, 8, 8, 8)
        if form != "deterministic":
            assert dist.log_var.min() >= net.log_var_min and dist.log_var.max() <= net.log_var_max
        assert dist.sample(2).shape == (2, 1, 3, 8, 8, 8)
    with pytest.raises(ValueError, match="multiple"):
        StochasticSegNet3d(form="mixture_of_bases", filters=(4, 8, 16), block=4)(torch.randn(1, 1, 6, 8, 8))


def test_initial_bases_have_orthonormal_rows():
    b = orthonormal_rows(3, 2, 16, torch.Generator().manual_seed(0)).reshape(6, 16)
    assert torch.allclose(b @ b.T, torch.eye(6), atol=1e-6)
    with pytest.raises(ValueError):
        orthonormal_rows(3, 6, 16)
