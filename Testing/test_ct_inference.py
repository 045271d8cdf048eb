"""ct-organs inference (uqseg.ct.inference / mc_estimate): sliding-window stitching, tile-sparse sampling, the
geometry round trip on an oblique volume, and — on the project's 3-D phantom with a network trained here — that the
predictive variance sits on the ambiguous part of the boundary, that the MC estimate converges and that samples
differ where the boundary is ambiguous."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

from ct_phantom_model import HU_WINDOW, SHAPE, phantom_batch, train_phantom_model
from uqseg.ct.covariance import LogitDistribution
from uqseg.ct.inference import predict_ct
from uqseg.ct.mc_estimate import mc_moments, unsettled_voxels
from uqseg.ct.noise import NoiseField
from uqseg.ct.phantom import organ_phantom
from uqseg.io.image import Image


class PointwiseSSN(nn.Module):
    """A mixture-of-bases logit Gaussian computed voxel by voxel from the normalised HU (1×1×1 convolutions), so that
    its output does not depend on the window a voxel is seen in: any difference between sliding-window and
    whole-volume results is then the stitching's."""

    classes = 2
    form = "mixture_of_bases"
    size_multiple = (4, 8, 8)
    block = 4

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.mean = nn.Conv3d(1, 2, 1)
        self.scale = nn.Conv3d(1, 4, 1)
        self.weight = nn.Conv3d(1, 3, 1)
        with torch.no_grad():
            self.mean.weight[:] = torch.tensor([0.0, 60.0]).reshape(2, 1, 1, 1, 1)
            self.mean.bias[:] = torch.tensor([0.0, -15.0])  # organ where normalised HU > 1/4 (HU > 50 for ±200)
            self.scale.weight.normal_(0, 0.5, generator=g)
            self.scale.bias.zero_()
            self.weight.weight.normal_(0, 1.0, generator=g)
        self.bases = torch.randn(3, 2, 4, generator=g) * 0.6

    def forward(self, x):
        mean = self.mean(x)
        log_var = torch.full_like(mean, -3.0) - 2 * x.abs()
        return LogitDistribution("mixture_of_bases", mean, log_var, self.scale(x), self.bases, self.weight(x),
                                 self.block)


def _phantom_image(shape=(24, 48, 64), seed=3, spacing=(2.0, 2.0, 2.0), direction=None, origin=(0.0, 0.0, 0.0)):
    hu, label, amb = organ_phantom(shape, seed=seed)
    return Image(hu, spacing=spacing, origin=origin, direction=np.eye(3) if direction is None else direction,
                 meta={"modality": "CT"}), label, amb


@torch.inference_mode()
def test_sliding_windows_stitch_to_the_whole_volume_result():
    image, _, _ = _phantom_image()
    model = PointwiseSSN().eval()
    whole = predict_ct(image, model, 2.0, HU_WINDOW, ["organ"], samples=12, seed=5, keep=2, roi=(64, 64, 64))
    tiled = predict_ct(image, model, 2.0, HU_WINDOW, ["organ"], samples=12, seed=5, keep=2, roi=(8, 16, 24))
    assert whole.windows == 1 and tiled.windows > 20
    assert np.abs(tiled.work_probability - whole.work_probability).max() < 1e-5
    assert np.abs(tiled.work_variance - whole.work_variance).max() < 1e-5  # float32 E[p²] − E[p]²
    assert whole.work_variance.max() > 1e-3  # there is variance to stitch
    assert np.array_equal(tiled.kept_labels, whole.kept_labels)


@torch.inference_mode()
def test_tile_sparse_sampling_matches_dense_sampling():
    image, _, _ = _phantom_image()
    model = PointwiseSSN().eval()
    sparse = predict_ct(image, model, 2.0, HU_WINDOW, ["organ"], samples=16, seed=1, sparse=True, noise_tile=(4, 8, 8))
    dense = predict_ct(image, model, 2.0, HU_WINDOW, ["organ"], samples=16, seed=1, sparse=False, noise_tile=(4, 8, 8))
    assert sparse.active_fraction < 0.9  # most of the body and the air are settled
    assert np.abs(sparse.work_probability - dense.work_probability).max() < 2e-4
    assert np.abs(sparse.work_variance - dense.work_variance).max() < 1e-6


def _random_dist(form, classes, seed=0, grid=(4, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn(1, classes, *grid, generator=g) * 2
    lv = torch.randn(1, classes, *grid, generator=g) * 0.3 - 1
    if form == "diagonal":
        return LogitDistribution(form, mean, lv)
    if form == "lowrank":
        return LogitDistribution(form, mean, lv, torch.randn(1, classes, 6, *grid, generator=g) * 0.5)
    if form == "single_basis":
        return LogitDistribution(form, mean, lv, torch.randn(1, 6, *grid, generator=g),
                                 torch.randn(1, classes, 6, generator=g) * 0.5)
    return LogitDistribution(form, mean, lv, torch.randn(1, 6, *grid, generator=g),
                             torch.randn(2, classes, 6, generator=g) * 0.5, torch.randn(1, 2, *grid, generator=g), 4)


@pytest.mark.parametrize("form", ["diagonal", "lowrank", "single_basis", "mixture_of_bases"])
def test_mc_moments_are_those_of_the_samples_of_eq13(form):
    """Several classes: the moments are exactly those of `LogitDistribution.sample` with the same position-keyed
    noise (a window at offset (4, 8, 16)); two classes: the logit-difference draws have the same law (k = 20000)."""
    dist = _random_dist(form, 5)
    field = NoiseField(3)
    m = mc_moments(dist, 20, field, (4, 8, 16), keep=2, sparse=False)
    p = dist.sample(20, noise=field, offset=(4, 8, 16))[:, 0].softmax(1)
    assert torch.allclose(m.mean, p.mean(0), atol=1e-6) and torch.allclose(m.second, (p * p).mean(0), atol=1e-6)
    assert torch.equal(m.kept, p[:2].argmax(1).to(torch.uint8))
    binary = _random_dist(form, 2, seed=1)
    mb = mc_moments(binary, 20000, field, (0, 0, 0), sparse=False)
    pb = binary.sample(20000, noise=field)[:, 0].softmax(1)
    assert (mb.mean - pb.mean(0)).abs().max() < 0.012  # 3.5 MC standard errors of the worst voxel
    assert (mb.second - (pb * pb).mean(0)).abs().max() < 0.012


@pytest.mark.parametrize("form", ["diagonal", "lowrank", "single_basis", "mixture_of_bases"])
def test_slab_by_slab_sampling_is_the_whole_window_sampling(form, monkeypatch):
    """A window of 2 × 3 × 2 noise tiles processed in slabs of 2 tile rows (the last one partial), sparsely: the
    sampled voxels get exactly the moments of `LogitDistribution.sample` (5 classes), the tiles sampled are those
    holding an unsettled voxel of the reference rule, the others keep softmax(μ) (2 classes too)."""
    import uqseg.ct.mc_estimate as mc

    monkeypatch.setattr(mc, "SLAB_VOXELS", 2 * 4 * 8 * 16)
    for classes in (5, 2):
        dist = _random_dist(form, classes, seed=2, grid=(8, 24, 16))
        dist.mean[..., :4, :8, :] = 0.0
        dist.mean[:, 0, :4, :8, :] = 40.0  # the first tile row is sure background
        field = NoiseField(9)
        m = mc_moments(dist, 12, field, (4, 8, 16), keep=2, sparse=True)
        tiles = unsettled_voxels(dist).reshape(2, 4, 3, 8, 2, 8).any(5).any(3).any(1)
        assert m.active_fraction == pytest.approx(float(tiles.float().mean()))
        assert 0 < m.active_fraction < 1
        on = tiles.repeat_interleave(4, 0).repeat_interleave(8, 1).repeat_interleave(8, 2)
        p = dist.sample(12, noise=field, offset=(4, 8, 16))[:, 0].softmax(1)
        p0 = dist.mean[0].softmax(0)
        if classes > 2:
            assert torch.allclose(m.mean[:, on], p.mean(0)[:, on], atol=1e-6)
            assert torch.allclose(m.second[:, on], (p * p).mean(0)[:, on], atol=1e-6)
            assert torch.equal(m.kept[:, on], p[:2].argmax(1).to(torch.uint8)[:, on])
        assert torch.equal(m.mean[:, ~on], p0[:, ~on])
        assert not torch.allclose(m.mean[:, on], p0[:, on], atol=1e-4)


def test_antithetic_pairs_make_the_mc_mean_more_accurate():
    """E[σ(δ)] of 4096 two-class voxels by 10 samples, against Gauss–Hermite quadrature: antithetic pairs give a
    smaller mean squared error than 10 independent draws (σ is monotone, so the pairs are negatively correlated)."""
    g = torch.Generator().manual_seed(0)
    mean = torch.zeros(1, 2, 4, 32, 32)
    mean[0, 1] = torch.randn(4, 32, 32, generator=g) * 2
    log_var = torch.full_like(mean, math.log(2.0))  # Var δ = 4
    dist = LogitDistribution("diagonal", mean, log_var)
    x, w = np.polynomial.hermite_e.hermegauss(60)
    delta = (mean[0, 1] - mean[0, 0]).numpy()[..., None] + 2.0 * x
    exact = torch.from_numpy((1 / (1 + np.exp(-delta)) * w).sum(-1) / w.sum()).float()
    errors = {}
    for anti in (True, False):
        mse = 0.0
        for seed in range(5):
            m = mc_moments(dist, 10, NoiseField(seed, tile=(4, 8, 8), antithetic=anti), sparse=False)
            mse += float(((m.mean[1] - exact) ** 2).mean())
        errors[anti] = mse
    assert errors[True] < 0.5 * errors[False]


def test_settled_voxels_are_those_no_sample_can_flip():
    mean = torch.zeros(1, 2, 4, 4, 4)
    mean[0, 1, :2] = 30.0  # sure organ
    mean[0, 1, 2:] = 1.0  # undecided
    dist = LogitDistribution("diagonal", mean, torch.zeros_like(mean))
    active = unsettled_voxels(dist)
    assert not active[:2].any() and active[2:].all()
    dist_wide = LogitDistribution("diagonal", mean, torch.full_like(mean, 2 * np.log(3.0)))  # σ = 3 per logit
    assert unsettled_voxels(dist_wide)[:2].all()  # 30 < 10 + 5·(3 + 3): no longer settled


@torch.inference_mode()
def test_oblique_volume_results_come_back_on_its_own_grid():
    a, b = np.deg2rad(20), np.deg2rad(10)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    direction = rz @ rx
    image, label, _ = _phantom_image(spacing=(1.5, 1.7, 2.5), direction=direction, origin=(-40.0, 25.0, 110.0))
    pred = predict_ct(image, PointwiseSSN().eval(), 2.0, HU_WINDOW, ["organ"], samples=8)
    assert pred.label.shape == image.shape == pred.variance.shape == pred.organ_probability.shape
    # the organ (HU > 50) must come back on the same voxels of the INPUT grid (smoothed: the phantom is noisy)
    bright = ndimage.gaussian_filter(image.array, 1.0) > 50
    truth = ndimage.binary_erosion(bright, iterations=2)
    found = pred.label == 1
    assert (found & truth).sum() / truth.sum() > 0.97
    assert (found & ~ndimage.binary_dilation(bright, iterations=2)).sum() < 0.02 * found.sum()


@pytest.fixture(scope="module")
def phantom_net():
    return train_phantom_model("mixture_of_bases", steps=250)


def _window_stats(net, seed, k=30, noise_seed=0, keep=0):
    hu, label, amb = organ_phantom(SHAPE, seed=seed)
    x, _ = phantom_batch([seed])
    with torch.no_grad():
        m = mc_moments(net(x), k, NoiseField(noise_seed), keep=keep)
    var = (m.second - m.mean ** 2)[1].numpy()
    return label, amb, var, m


def test_phantom_variance_sits_on_the_ambiguous_boundary(phantom_net):
    for seed in (100, 101):  # phantoms not seen in training
        label, amb, var, _ = _window_stats(phantom_net, seed)
        shell = ndimage.binary_dilation(label > 0, iterations=2) & ~ndimage.binary_erosion(label > 0, iterations=2)
        clear = shell & ~amb
        assert var[amb].sum() / var.sum() > 0.8, "most of the variance belongs on the ambiguous side"
        assert var[amb].mean() > 20 * var[clear].mean(), "the clear edge is certain, the faint one is not"


def test_phantom_mc_estimate_converges_with_k(phantom_net):
    label, amb, _, ref = _window_stats(phantom_net, 100, k=600, noise_seed=99)
    errors = []
    for k in (4, 16, 64):
        errs = [np.abs(_window_stats(phantom_net, 100, k=k, noise_seed=s)[3].mean[1].numpy() - ref.mean[1].numpy())[amb]
                .mean() for s in range(3)]
        errors.append(float(np.mean(errs)))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.6 * errors[0] / 2  # ~1/√k: 16× the samples, ≥ 3× smaller error (4× in theory)


def test_phantom_samples_differ_where_the_boundary_is_ambiguous(phantom_net):
    label, amb, _, m = _window_stats(phantom_net, 101, k=20, keep=8)
    samples = m.kept.numpy()
    disagree = (samples != samples[0]).any(0)
    far = ~ndimage.binary_dilation(label > 0, iterations=3) | ndimage.binary_erosion(label > 0, iterations=3)
    # (seeds 100-102 gave 3-4 % of the ambiguous voxels flipping between 8 samples, and every flip inside it)
    assert disagree[amb].mean() > 0.015
    assert (disagree & amb).sum() >= 0.9 * disagree.sum()
    assert not disagree[far & ~amb].any()
