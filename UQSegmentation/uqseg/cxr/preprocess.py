"""From an input chest radiograph to the network's square input, and network coordinates back to input pixels.

Pixel frame (the one every output file uses): (x, y) = (column, row) pixel-centre indices of the input image, so
pixel [r, c] spans x ∈ [c − ½, c + ½]; this is the frame of `uqseg.io.geometry.index_to_lps`.

1. intensity (`uqseg.transforms.intensity.robust_unit_range`, uniform sampling): (a − p0.5) / (p99.5 − p0.5),
   clipped to 0..1 (percentiles of the image's own values), so 8-bit PNGs,
   windowed DICOM (0..1, MONOCHROME1 already inverted by the loader) and raw 16-bit images look alike;
2. centred square: an H × W image is zero-padded to S = max(H, W) with pad_top = ⌊(S − H)/2⌋, pad_left =
   ⌊(S − W)/2⌋ (the padding is black, like the collimated border of a radiograph);
3. resize S × S → G × G (G = the model's input size) with antialiased bilinear interpolation (align_corners=False).

Normalised network coordinates u = (x + pad_left + ½) / S, v = (y + pad_top + ½) / S ∈ [0, 1] (0 and 1 are the
outer edges of the square), independent of G. Back: x = u·S − ½ − pad_left, y = v·S − ½ − pad_top; a standard
deviation scales by S only: σ_x[px] = σ_u · S.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from uqseg.transforms.intensity import robust_unit_range



@dataclass(frozen=True)
class SquareFrame:
    """Geometry of the padding of an (H, W) image to its centred S × S square."""

    height: int
    width: int

    @property
    def size(self) -> int:
        return max(self.height, self.width)

    @property
    def pad_top(self) -> int:
        return (self.size - self.height) // 2

    @property
    def pad_left(self) -> int:
        return (self.size - self.width) // 2

    def to_normalised(self, xy: np.ndarray) -> np.ndarray:
        """(…, 2) input pixel-centre (x, y) → normalised (u, v)."""
        xy = np.asarray(xy, dtype=np.float64)
        return (xy + np.array([self.pad_left, self.pad_top]) + 0.5) / self.size

    def from_normalised(self, uv: np.ndarray) -> np.ndarray:
        """(…, 2) normalised (u, v) → input pixel-centre (x, y)."""
        uv = np.asarray(uv, dtype=np.float64)
        return uv * self.size - 0.5 - np.array([self.pad_left, self.pad_top])

    def std_to_pixels(self, std_uv: np.ndarray) -> np.ndarray:
        return np.asarray(std_uv, dtype=np.float64) * self.size


def pad_to_square(a: np.ndarray, frame: SquareFrame) -> np.ndarray:
    out = np.zeros((frame.size, frame.size), dtype=np.float32)
    out[frame.pad_top:frame.pad_top + frame.height, frame.pad_left:frame.pad_left + frame.width] = a
    return out


def resize_square(a: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """(S, S) → (1, 1, size, size) float32 tensor, antialiased bilinear (area-like when shrinking)."""
    t = torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32)[None, None]
    if t.shape[-1] == size and t.shape[-2] == size:
        return t
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def network_input(image: np.ndarray, size: int) -> tuple[torch.Tensor, SquareFrame]:
    """A 2-D image → ((1, 1, size, size) tensor in 0..1, its SquareFrame)."""
    a = np.asarray(image)
    if a.ndim != 2:
        raise ValueError(f"a chest radiograph must be a 2-D image, got shape {a.shape}")
    frame = SquareFrame(*a.shape)
    return resize_square(pad_to_square(robust_unit_range(a, sampling="uniform"), frame), size), frame
