"""A compact 2-D U-Net (Ronneberger et al. 2015) in plain torch.

Four down-sampling stages; each stage two 3×3 conv + BatchNorm + ReLU; bilinear up-sampling followed by a 1×1 conv that
halves the channels, concatenation with the skip, two 3×3 convs. Input (B, in_channels, H, W) with H, W divisible by 16;
output (B, out_channels, H, W) logits on the same grid.

Optional dropout on the last decoder features, just before the 1×1 classifier (`dropout` = its probability):
`dropout_kind="channel"` (default; `nn.Dropout2d`, whole feature maps) or `"element"` (`nn.Dropout`, every feature
of every pixel independently: what MC-dropout segmentation uses, so that the samples differ pixel by pixel). The
dropout module holds no parameters, so the choice does not change the state dict.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


class DoubleConv(nn.Sequential):
    def __init__(self, c_in: int, c_out: int):
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )


class Up(nn.Module):
    """Bilinear ×2 up-sampling, 1×1 conv halving the channels, concatenation with the skip, DoubleConv."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.reduce = nn.Conv2d(c_in, c_in // 2, 1)
        self.conv = DoubleConv(c_in // 2 + c_out, c_out)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([self.reduce(x), skip], dim=1))


class UNet2d(nn.Module):
    def __init__(self, in_channels: int = 1, out_channels: int = 1, width: int = 16, dropout: float = 0.0,
                 dropout_kind: str = "channel"):
        super().__init__()
        if dropout_kind not in ("channel", "element"):
            raise ValueError(f"dropout_kind must be 'channel' or 'element', got {dropout_kind!r}")
        ch = [width * 2**i for i in range(5)]
        self.inc = DoubleConv(in_channels, ch[0])
        self.downs = nn.ModuleList(DoubleConv(ch[i], ch[i + 1]) for i in range(4))
        self.ups = nn.ModuleList(Up(ch[i + 1], ch[i]) for i in reversed(range(4)))
        drop = nn.Dropout2d if dropout_kind == "channel" else nn.Dropout
        self.dropout = drop(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Conv2d(ch[0], out_channels, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last decoder features (B, width, H, W), before dropout and the 1×1 classifier."""
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(F.max_pool2d(skips[-1], 2)))
        x = skips.pop()
        for up in self.ups:
            x = up(x, skips.pop())
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))
