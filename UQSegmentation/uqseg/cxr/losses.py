"""The training objective of the variational HybridGNet (HybridGNet / CheXmask-U), shared by the training recipe
(`Training/train_cxr.py`) and fine-tuning (`uqseg.finetune.cxr`).

    L = MSE(ŷ, y) + β · KL(N(μ, σ²) ‖ N(0, I)) [+ w_ds · (MSE(p₁, P y) + MSE(p₂, y)) for the skip variant]

y: the node positions normalised to the padded square input (u, v ∈ [0, 1], `uqseg.cxr.preprocess`), ŷ the decoded
positions, p₁ / p₂ the intermediate positions of the image-to-graph skip connections (coarse 60 and full 120 nodes),
P the coarse pooling of the graph. MSE is the mean over nodes and both coordinates (units: squared fractions of the
square's side; × S² for pixels²), KL the mean over latent dimensions and the batch (`hybridgnet.kl_divergence`,
nats per dimension). β and w_ds are dimensionless weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from uqseg.cxr.hybridgnet import HybridGNet, kl_divergence


def hybridgnet_loss(model: HybridGNet, pos: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, inter: list,
                    target: torch.Tensor, beta: float, ds_weight: float):
    """(total, MSE, KL) for positions pos (B, 120, 2), posterior μ / log σ² (B, L), intermediate positions `inter`
    ([] without skip connections) and targets (B, 120, 2), all normalised coordinates."""
    mse = F.mse_loss(pos, target)
    kl = kl_divergence(mu, logvar)
    loss = mse + beta * kl
    if inter:
        loss = loss + ds_weight * (F.mse_loss(inter[0], model.pool(target)) + F.mse_loss(inter[1], target))
    return loss, mse, kl
