"""The ct-organs training loss, Eq. (8)-(12), against values computed by hand, and one optimisation step."""

from __future__ import annotations

import math

import pytest
import torch

from uqseg.ct.covariance import LogitDistribution
from uqseg.ct.losses import LossWeights, cross_entropy, orthogonality, soft_dice_loss, ssn_loss, weight_entropy
from uqseg.ct.network import StochasticSegNet3d


def test_cross_entropy_by_hand():
    # two voxels, two classes: logits (0, ln 3) → p = (1/4, 3/4); labels 1 and 0
    logits = torch.tensor([[0.0, 0.0], [math.log(3), math.log(3)]]).reshape(1, 2, 1, 1, 2)
    label = torch.tensor([1, 0]).reshape(1, 1, 1, 2)
    expected = (-math.log(0.75) - math.log(0.25)) / 2
    assert float(cross_entropy(logits, label)) == pytest.approx(expected, rel=1e-6)
    # an ignored voxel does not count
    label_ignored = torch.tensor([1, 255]).reshape(1, 1, 1, 2)
    assert float(cross_entropy(logits, label_ignored)) == pytest.approx(-math.log(0.75), rel=1e-6)


def test_soft_dice_by_hand():
    # foreground probabilities 0.8, 0.6, 0.1 on voxels labelled 1, 0, 1
    p1 = torch.tensor([0.8, 0.6, 0.1])
    prob = torch.stack([1 - p1, p1]).reshape(1, 2, 1, 1, 3)
    label = torch.tensor([1, 0, 1]).reshape(1, 1, 1, 3)
    inter = 0.8 + 0.1
    dice = (2 * inter + 1) / (p1.sum().item() + 2 + 1)
    assert float(soft_dice_loss(prob, label)) == pytest.approx(1 - dice, rel=1e-6)
    # a perfect prediction scores 0 loss up to the smoothing
    perfect = torch.stack([1 - label.float(), label.float()], 1)
    assert float(soft_dice_loss(perfect, label)) == pytest.approx(0.0, abs=1e-6)


def test_orthogonality_by_hand():
    b = torch.zeros(1, 2, 3)
    b[0, 0, 0] = 1.0
    b[0, 1, 1] = 1.0
    assert float(orthogonality(b)) == 0.0
    b2 = b.clone()
    b2[0, 1] = torch.tensor([1.0, 0.0, 0.0])  # both rows the same unit vector: off-diagonal 1 twice
    assert float(orthogonality(b2)) == pytest.approx(2 / 4)
    b3 = 2 * b  # orthogonal but norm 2: diagonal (4 - 1)² twice
    assert float(orthogonality(b3)) == pytest.approx(18 / 4)


def test_weight_entropy_by_hand():
    mean = torch.zeros(1, 2, 4, 4, 4)
    w = torch.zeros(1, 2, 4, 4, 4)  # equal weights: entropy ln 2 in the single block
    dist = LogitDistribution("mixture_of_bases", mean, torch.zeros_like(mean), torch.zeros(1, 3, 4, 4, 4),
                             torch.randn(2, 2, 3), w, block=4)
    assert float(weight_entropy(dist)) == pytest.approx(math.log(2), rel=1e-6)
    w[:, 0] = 50.0  # one basis chosen: entropy ~0
    assert float(weight_entropy(dist)) < 1e-6


def test_ssn_loss_terms_add_up():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    mean = torch.randn(1, 3, 4, 4, 4)
    dist = LogitDistribution("mixture_of_bases", mean, torch.full_like(mean, -2.0), torch.randn(1, 6, 4, 4, 4) * 0.1,
                             torch.randn(2, 3, 6) * 0.3, torch.randn(1, 2, 4, 4, 4), block=2)
    label = torch.randint(0, 3, (1, 4, 4, 4))
    w = LossWeights(samples=4, kl=0.5, orthogonality=0.25, weight_entropy=2.0)
    loss, terms = ssn_loss(dist, label, w, generator=g)
    expected = terms["ce"] + terms["dice"] + 0.5 * terms["kl"] + 0.25 * terms["orth"] + 2.0 * terms["weight_entropy"]
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    # CE term = mean over the same 4 samples of the per-sample CE
    eta = dist.sample(4, generator=torch.Generator().manual_seed(1))
    ce = sum(float(torch.nn.functional.cross_entropy(eta[s], label)) for s in range(4)) / 4
    assert terms["ce"] == pytest.approx(ce, rel=1e-5)


@pytest.mark.parametrize("form", ["deterministic", "diagonal", "lowrank", "single_basis", "mixture_of_bases"])
def test_a_few_optimisation_steps_reduce_the_loss(form):
    """The training loop works for every form: 15 AdamW steps on one tiny volume lower the loss."""
    torch.manual_seed(0)
    net = StochasticSegNet3d(classes=2, form=form, rank=4, bases=2, block=4, filters=(4, 8, 16))
    x = torch.randn(1, 1, 8, 8, 8)
    y = (x[0, 0] > 0.3).long()[None]
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    w = LossWeights(samples=3)
    first = None
    for step in range(15):
        loss, _ = ssn_loss(net(x), y, w, generator=torch.Generator().manual_seed(step))
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.9 * first
