"""A small stochastic segmentation network trained in a test on the project's 3-D phantom (uqseg.ct.phantom), whose
boundary is ambiguous on one side: across phantom seeds the image there is the same while the true surface moves.

`train_phantom_model(form, steps)` trains from scratch with the real loss (Eq. 11-12) on phantoms of seeds 0-39
and returns the network (eval mode); a few hundred AdamW steps on 16 × 32 × 32 volumes, ~1 min on 2 CPU cores.
Shared by the tests through a session-scoped fixture (conftest.py)."""

from __future__ import annotations

import numpy as np
import torch

from uqseg.ct.losses import LossWeights, ssn_loss
from uqseg.ct.network import StochasticSegNet3d
from uqseg.ct.phantom import organ_phantom
from uqseg.ct.preprocess import normalise_hu

SHAPE = (16, 32, 32)
HU_WINDOW = (-200.0, 200.0)


def phantom_batch(seeds) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for s in seeds:
        hu, label, _ = organ_phantom(SHAPE, seed=int(s))
        xs.append(torch.from_numpy(normalise_hu(hu, HU_WINDOW))[None])
        ys.append(torch.from_numpy(label.astype(np.int64)))
    return torch.stack(xs), torch.stack(ys)


def train_phantom_model(form: str = "mixture_of_bases", steps: int = 250, seed: int = 0) -> StochasticSegNet3d:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = StochasticSegNet3d(classes=2, form=form, rank=4, bases=2, block=4, filters=(8, 16, 32))
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    weights = LossWeights(samples=6)
    x_all, y_all = phantom_batch(range(40))
    for step in range(steps):
        idx = rng.choice(40, 4, replace=False)
        loss, _ = ssn_loss(net(x_all[idx]), y_all[idx], weights, generator=torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()
