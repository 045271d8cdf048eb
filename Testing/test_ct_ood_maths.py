"""The ct-organs out-of-distribution score (uqseg.ct.ood): Lee et al.'s class-conditional Gaussian with a tied
covariance, its Mahalanobis distance, the per-cell classes it is fitted on, its file, and the map inside predict_ct."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from uqseg.ct.ood import (FeatureGaussian, cell_classes, fit_gaussian, mahalanobis, ood_window_map,
                          organ_ood_fractions)


def _two_classes(rng, n=4000, d=6):
    cov = np.diag(np.linspace(0.2, 3.0, d))
    a = rng.multivariate_normal(np.zeros(d), cov, n)
    b = rng.multivariate_normal(np.full(d, 4.0), cov, n)
    return [a, b], [np.zeros(n, int), np.ones(n, int)], cov


def test_fit_recovers_means_and_tied_covariance_and_distance_is_mahalanobis():
    rng = np.random.default_rng(0)
    feats, classes, cov = _two_classes(rng)
    g = fit_gaussian(feats, classes, 2, shrinkage=0.0)
    assert np.allclose(g.means[0].numpy(), 0, atol=0.1) and np.allclose(g.means[1].numpy(), 4, atol=0.1)
    prec = g.whitening.numpy() @ g.whitening.numpy().T  # Σ⁻¹ = L Lᵀ
    assert np.allclose(np.linalg.inv(prec), cov, rtol=0.1, atol=0.05)
    x = np.array([1.0, -2.0, 0.5, 3.0, 0.0, 1.0])
    want = min(np.sqrt((x - m) @ prec @ (x - m)) for m in g.means.numpy())
    got = mahalanobis(torch.tensor(x, dtype=torch.float32).reshape(1, 6, 1, 1, 1), g).item()
    assert got == pytest.approx(want, rel=1e-4)


def test_in_distribution_features_score_low_and_shifted_ones_high():
    rng = np.random.default_rng(1)
    feats, classes, cov = _two_classes(rng)
    g = fit_gaussian(feats, classes, 2)
    inside = rng.multivariate_normal(np.full(6, 4.0), cov, 500)
    outside = inside + np.array([3.0, 0, 0, 0, 0, 0])  # along the direction of least training variance (σ² 0.2)
    f = lambda a: torch.tensor(a.T.reshape(1, 6, 500, 1, 1), dtype=torch.float32)
    s_in, s_out = mahalanobis(f(inside), g), mahalanobis(f(outside), g)
    p99 = np.percentile(s_in.numpy(), 99)
    assert (s_out.numpy() > p99).mean() > 0.95
    assert np.median(s_in.numpy()) < np.sqrt(6) * 1.3  # χ with 6 degrees of freedom: median about 2.3


def test_window_map_is_the_cell_score_upsampled_and_cells_take_the_majority_label():
    g = FeatureGaussian(torch.zeros(1, 2), torch.eye(2), threshold=1.0)
    feats = torch.zeros(1, 2, 2, 2, 2)
    feats[0, 0, 1, 1, 1] = 3.0
    m = ood_window_map(feats, g, (8, 16, 16))
    assert m.shape == (1, 1, 8, 16, 16)
    assert m[0, 0, -1, -1, -1].item() == pytest.approx(3.0) and m[0, 0, 0, 0, 0].item() == pytest.approx(0.0)
    lab = np.zeros((4, 8, 8), np.uint8)
    lab[:, :5, :] = 2  # 5 of 8 rows of the first cell row are organ 2
    assert cell_classes(lab, (4, 8, 8), 3).tolist() == [[[2]]]


def test_organ_fractions_and_file_round_trip(tmp_path):
    ood = np.zeros((2, 4, 4), np.float32)
    ood[:, :2] = 5.0
    label = np.zeros((2, 4, 4), np.uint8)
    label[:, :3, :2] = 1  # 8 of its 12 voxels lie where ood = 5
    fr = organ_ood_fractions(ood, label, ["liver", "spleen"], threshold=2.0)
    assert fr == {"liver": pytest.approx(8 / 12, abs=1e-4), "spleen": None}
    g = FeatureGaussian(torch.randn(3, 4), torch.eye(4), threshold=7.5, percentile=99.0)
    g.save(tmp_path / "ood.safetensors")
    back = FeatureGaussian.load(tmp_path / "ood.safetensors")
    assert torch.equal(back.means, g.means) and back.threshold == 7.5 and back.percentile == 99.0


def test_predict_ct_writes_the_ood_map_on_the_input_grid_from_the_same_passes():
    """A small network of the task's code: the OOD map has the input's shape, is the Mahalanobis distance of the
    collected bottleneck features, and does not change the probabilities."""
    from uqseg.ct.inference import predict_ct
    from uqseg.ct.network import StochasticSegNet3d
    from uqseg.io.image import Image

    torch.manual_seed(0)
    net = StochasticSegNet3d(classes=2, form="mixture_of_bases", rank=8, bases=2, filters=(4, 8, 8),
                             strides=[[1, 1, 1], [1, 2, 2], [2, 2, 2]]).eval()
    rng = np.random.default_rng(0)
    hu = rng.normal(0, 200, (10, 30, 26)).astype(np.float32)
    img = Image(hu, spacing=(1.5, 1.5, 2.5), origin=(0, 0, 0), direction=np.eye(3), meta={"modality": "CT"})
    collect = []
    base = predict_ct(img, net, 2.0, (-250, 350), ["organ"], samples=4, collect=collect)
    feats = [f.reshape(f.shape[0], -1).T for _, f in collect]
    g = fit_gaussian(feats, [np.zeros(len(f), int) for f in feats], 2)
    g.threshold = 1.0
    pred = predict_ct(img, net, 2.0, (-250, 350), ["organ"], samples=4, ood=g)
    assert base.ood is None and pred.ood.shape == img.shape and pred.work_ood.shape == pred.grid.shape
    assert np.allclose(pred.work_probability, base.work_probability, atol=1e-6)
    assert np.isfinite(pred.ood).all() and pred.ood.min() >= 0 and pred.work_ood.max() > 0
