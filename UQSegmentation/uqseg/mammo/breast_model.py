"""The breast / pectoral segmentation network (after Verboom et al., JMI 2024, "maseg").

A 3-class U-Net (`uqseg.networks.unet2d.UNet2d`): four 2× down-sampling stages, two 3×3 conv + BatchNorm + ReLU per
stage, bilinear up-sampling followed by a 1×1 conv halving the channels, and dropout (p = 0.5, element-wise) on the
last decoder features just before the 1×1 classifier. Classes: 0 background, 1 breast, 2 pectoral muscle.
Input (B, 1, h, w), h and w multiples of 16, intensities 0..1, chest wall on the left, 0.4 mm pixels
(`uqseg.mammo.breast_preprocess`). Output: logits (B, 3, h, w).

The width (channels of the first stage, doubling per stage) is a card parameter; parameter names are those of
`UNet2d` (the same network family as the pectoral-boundary model).

Note on the dropout position: maseg's published code applies `nn.Dropout` to the classifier's output; the
paper's text puts it on the features before the 1×1 classifier, which is what this network does. Either way it is
the last operation with a random mask, so everything before it is deterministic at inference (BatchNorm in eval
mode): `features` can be computed once and only dropout + classifier repeated per MC sample
(`uqseg.mammo.mc_dropout`).
"""

from __future__ import annotations

import torch
from torch import nn

from uqseg.mammo.unet2d import UNet2d

CLASSES = ("background", "breast", "pectoral")
BACKGROUND, BREAST, PECTORAL = 0, 1, 2


class BreastSegNet(nn.Module):
    def __init__(self, width: int = 8, dropout: float = 0.5):
        super().__init__()
        self.dropout_p = float(dropout)
        self.unet = UNet2d(in_channels=1, out_channels=len(CLASSES), width=width, dropout=dropout,
                           dropout_kind="element")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, h, w) → logits (B, 3, h, w); dropout is active in train mode only."""
        return self.unet(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last decoder features (B, width, h, w), before dropout and the classifier."""
        return self.unet.features(x)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """1×1 classifier on (already dropped-out) features → logits."""
        return self.unet.head(features)


def breast_net_for(architecture: dict) -> BreastSegNet:
    """The network a mammo-breast model card's `architecture` block describes (width, dropout)."""
    return BreastSegNet(width=int(architecture["width"]), dropout=float(architecture.get("dropout", 0.5)))
