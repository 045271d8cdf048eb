"""MC-dropout statistics of mammo-breast (`uqseg.mammo.mc_dropout`) on known distributions and tiny networks, the
3-class U-Net's structure, and the post-processing of the label map."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from uqseg.mammo.breast import MIN_PECTORAL_AREA_MM2, postprocess
from uqseg.mammo.breast_model import BreastSegNet
from uqseg.mammo.mc_dropout import deterministic_pass, entropy, mc_dropout, statistics_from_samples
from uqseg.mammo.unet2d import UNet2d


@pytest.fixture(autouse=True)
def one_thread():
    """These networks are tiny: one intra-op thread is faster than several (and far faster on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_entropy_of_known_distributions_in_nats():
    p = torch.tensor([[1 / 3, 1 / 3, 1 / 3], [1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.7, 0.2, 0.1]]).T  # (K=3, 4)
    expected = [math.log(3), 0.0, math.log(2), -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1))]
    np.testing.assert_allclose(entropy(p, axis=0).numpy(), expected, atol=1e-6)


def test_statistics_of_two_confident_but_contradicting_samples():
    # Sample 1 says breast, sample 2 says pectoral, both certain: mean (0, ½, ½) → entropy ln 2, per-class
    # variance ¼ for breast and pectoral, 0 for background; each sample has entropy 0, so all of it is mutual
    # information (model uncertainty).
    probs = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])[:, :, None, None]  # (N=2, K=3, 1, 1)
    s = statistics_from_samples(probs)
    np.testing.assert_allclose(s.mean[:, 0, 0].numpy(), [0, 0.5, 0.5])
    np.testing.assert_allclose(s.variance[:, 0, 0].numpy(), [0, 0.25, 0.25])
    assert s.entropy.item() == pytest.approx(math.log(2))
    assert s.mutual_information.item() == pytest.approx(math.log(2))
    # Two identical uncertain samples: entropy ln 3, no variance, no mutual information (data uncertainty only).
    same = torch.full((2, 3, 1, 1), 1 / 3)
    s = statistics_from_samples(same)
    assert s.entropy.item() == pytest.approx(math.log(3)) and s.mutual_information.item() == pytest.approx(0, abs=1e-7)
    assert s.variance.abs().max().item() == 0


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = BreastSegNet(width=4, dropout=0.5)
    for m in model.modules():  # non-trivial BatchNorm statistics, so that eval mode matters
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval(), torch.rand(1, 1, 32, 48)


def test_shared_features_give_exactly_the_samples_of_n_full_passes(tiny):
    model, x = tiny
    a = mc_dropout(model, x, 7, seed=3, share_features=True, chunk=3)
    b = mc_dropout(model, x, 7, seed=3, share_features=False, chunk=3)
    for name in ("mean", "variance", "entropy", "mutual_information"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), atol=1e-5, rtol=1e-4)
    assert not model.training  # BN stays in eval mode


def test_streamed_statistics_equal_the_statistics_of_the_drawn_samples(tiny):
    model, x = tiny
    stats = mc_dropout(model, x, 6, seed=1, chunk=4)
    # Draw the same 6 masks explicitly (same generator, same chunking) and compute the statistics directly.
    g = torch.Generator().manual_seed(1)
    f = model.features(x)
    probs = []
    for n in (4, 2):
        masks = (torch.rand((n, *f.shape[1:]), generator=g) >= 0.5).float() / 0.5
        probs.append(torch.softmax(model.classify(f.expand(n, -1, -1, -1) * masks), dim=1))
    direct = statistics_from_samples(torch.cat(probs))
    for name in ("mean", "variance", "entropy", "mutual_information"):
        torch.testing.assert_close(getattr(stats, name), getattr(direct, name), atol=1e-5, rtol=1e-4)
    assert stats.samples == 6
    # The samples really differ (dropout is active) and the entropy stays within 0 … ln 3.
    assert stats.variance.max() > 1e-4 and stats.mutual_information.max() > 0
    assert 0 <= stats.entropy.min() and stats.entropy.max() <= math.log(3) + 1e-6
    # Same seed, same numbers; another seed, other numbers.
    torch.testing.assert_close(mc_dropout(model, x, 6, seed=1).mean, stats.mean)
    assert not torch.allclose(mc_dropout(model, x, 6, seed=2).mean, stats.mean)


def test_without_dropout_the_samples_agree_and_equal_the_deterministic_pass():
    torch.manual_seed(1)
    model = BreastSegNet(width=4, dropout=0.0).eval()
    x = torch.rand(1, 1, 32, 32)
    s = mc_dropout(model, x, 5)
    assert s.variance.abs().max() < 1e-10 and s.mutual_information.abs().max() < 1e-6
    torch.testing.assert_close(s.mean, deterministic_pass(model, x), atol=1e-6, rtol=1e-5)


def test_many_samples_converge_to_the_deterministic_pass_on_average(tiny):
    # Inverted dropout is unbiased for the logits, so the mean softmax is close to (not equal to) the
    # deterministic softmax: the label maps agree on most pixels.
    model, x = tiny
    mean = mc_dropout(model, x, 200, seed=0, chunk=50).mean
    det = deterministic_pass(model, x)
    assert (mean.argmax(0) == det.argmax(0)).float().mean() > 0.8


def test_unet_matches_issue_point_1_and_keeps_parameter_names(shipped_model):
    net = BreastSegNet(width=8).unet
    assert len(net.downs) == 4 and len(net.ups) == 4  # four down-sampling stages
    block = net.downs[0]
    kinds = [type(m).__name__ for m in block]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU"] * 2 and block[0].kernel_size == (3, 3)
    up = net.ups[0]
    assert up.reduce.kernel_size == (1, 1) and up.reduce.out_channels == up.reduce.in_channels // 2  # halves
    assert isinstance(net.dropout, torch.nn.Dropout) and net.dropout.p == 0.5  # element-wise, before the head
    assert net.head.kernel_size == (1, 1) and net.head.out_channels == 3
    # The dropout choice does not change the parameter names (the shipped pectoral weights stay loadable).
    assert list(UNet2d(1, 1, 8).state_dict()) == list(UNet2d(1, 1, 8, 0.5, "element").state_dict())
    with pytest.raises(ValueError):
        UNet2d(1, 1, 8, 0.5, "spatial")
    card = shipped_model("mammo-breast").card  # the shipped model stays within the issue's 20 MB
    n_bytes = 4 * sum(p.numel() for p in BreastSegNet(width=card["architecture"]["width"]).parameters())
    assert n_bytes < 20e6 and card.weights_path.stat().st_size < 20e6


def test_postprocessing_keeps_the_largest_tissue_and_muscle_components():
    lab = np.zeros((100, 80), np.uint8)
    lab[10:90, 0:50] = 1  # breast
    lab[10:40, 0:20] = 2  # pectoral, 600 px
    lab[50:52, 30:32] = 2  # a stray pectoral speck inside the breast → breast
    lab[60:65, 20:25] = 0  # a hole in the breast → breast
    lab[0:5, 70:78] = 1  # a film label far away → background
    out = postprocess(lab, pixel_area_mm2=0.2)  # the muscle: 600 px = 120 mm² ≥ MIN_PECTORAL_AREA_MM2
    assert MIN_PECTORAL_AREA_MM2 == 100.0
    assert (out[50:52, 30:32] == 1).all() and (out[60:65, 20:25] == 1).all() and (out[0:5, 70:78] == 0).all()
    assert (out == 2).sum() == 600 and (out == 1).sum() == 80 * 50 - 600
    small = postprocess(lab, pixel_area_mm2=0.1)  # the muscle is 60 mm²: too small, it becomes breast
    assert not (small == 2).any()
    # A bigger "muscle" in the middle of the breast, away from the chest wall (left edge), is not one.
    lab[45:85, 25:45] = 2
    out = postprocess(lab, pixel_area_mm2=0.2)
    assert (out[45:85, 25:45] == 1).all() and (out[10:40, 0:20] == 2).all()
