"""The pectoral-boundary network: a U-Net giving one logit map on the 256×256 grid, decoded row-wise
(Zech et al., MIDL 2026, Eqs. 1–2). Input (B, 1, 256, 256), intensities in 0..1, chest wall on the left, padded."""

from __future__ import annotations

import torch
from torch import nn

from uqseg.mammo.heatmap import row_moments, row_softmax
from uqseg.mammo.unet2d import UNet2d

VAR_FLOOR = 0.1  # grid columns², added to every row variance (a one-pixel-sharp row still has finite likelihood)


class PectoralHeatmapNet(nn.Module):
    def __init__(self, width: int = 8):
        super().__init__()
        self.unet = UNet2d(in_channels=1, out_channels=1, width=width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, G, G) → logits (B, 1, G, G)."""
        return self.unet(x)

    def decode(self, x: torch.Tensor):
        """(B, 1, G, G) → (μ, σ², p): row means and variances (B, G) in grid columns, row distributions (B, G, G)."""
        prob = row_softmax(self.forward(x)[:, 0])
        mean, var = row_moments(prob, VAR_FLOOR)
        return mean, var, prob


def pectoral_net_for(architecture: dict) -> PectoralHeatmapNet:
    """The network a mammo-pectoral model card's `architecture` block describes (width)."""
    return PectoralHeatmapNet(width=int(architecture["width"]))
