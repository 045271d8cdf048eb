"""Preprocessing of the breast / pectoral segmentation model (Verboom et al., JMI 2024, "maseg") and its inverse.

`prepare(image)` turns any 2-D mammogram `Image` (DICOM MG raw or processed, PNG/JPEG, NRRD) into the network's
working image, and `to_input_grid` maps anything computed on that working grid back onto the input's own pixels.

1. Pixel spacing of the input (x = column, y = row, mm), in this order:
   - Imager Pixel Spacing (the detector plane; the paper resamples from it) when the DICOM file has a valid one, even
     when Pixel Spacing is present too (the loader records it as ``meta["imager_pixel_spacing"]``);
   - otherwise the loader's spacing when it came from a tag or a file header (Pixel Spacing, NRRD/NIfTI/MHA);
   - otherwise (``spacing_source == "default"``: PNG/JPEG, and DICOM files without spacing such as the CBIS-DDSM ones)
     the **fallback**: the image's long side is assumed to span `DEFAULT_LONG_SIDE_MM` = 240 mm, square pixels. That
     is the long side of an 18 × 24 cm film / detector, the format of digitised screen-film mammograms (DDSM,
     CBIS-DDSM: e.g. 4536 rows → 0.053 mm, close to their real 0.05 mm / 0.0435 mm digitiser pitch), and of images
     cropped to the breast whose long side the breast fills (the DDSM PNGs: 960 rows → 0.25 mm). Every input without
     a known spacing is therefore resampled to the same working size (long side 600 pixels at 0.4 mm). Which rule
     was used is reported (`Prepared.spacing_basis`) and ends up in summary.json.
   A spacing from a tag or header that makes the long side shorter than 50 mm or longer than 450 mm
   (`PLAUSIBLE_LONG_SIDE_MM`; detectors and films are 18 × 24 to 24 × 30 cm, spot views ~ 10 cm) is not believed
   and the fallback is used, saying so: a volume that Slicer loaded from a DICOM without spacing carries a 1 mm
   placeholder, which would otherwise make a 4.5-metre mammogram and a working grid of tens of millions of pixels.
2. Intensities (the loader has already applied the Modality LUT, the DICOM window / VOI LUT — LINEAR, LINEAR_EXACT,
   SIGMOID — to FOR PRESENTATION images, and inverted MONOCHROME1 so that high = attenuating tissue):
   - processed images (window or VOI LUT applied by the loader): used as windowed;
   - raw images (Presentation Intent Type "FOR PROCESSING"; the loader leaves them unwindowed) are log-transformed:
     stored MONOCHROME1 raw data are detector-signal (exposure) linear, E, so the loader's display inversion is
     undone and z = −ln(E − min E + 1) (the attenuation line integral up to a constant, high = dense tissue); raw
     data stored MONOCHROME2 already increase with attenuation and get z = ln(v − min v + 1), a log compression of
     their dynamic range;
   - everything else (pictures, unwindowed DICOM such as digitised film): as loaded.
   Then, for every image, the per-image robust range of the project (`uqseg.transforms.intensity.robust_unit_range`:
   (x − p0.5) / (p99.5 − p0.5), clipped to 0..1).
3. Canonical side: chest wall on the LEFT (`uqseg.mammo.orientation.chest_wall_side`: DICOM Patient Orientation
   when it has two values, else the pixels), decided on the normalised image.
4. Resampling to `TARGET_SPACING_MM` = 0.4 mm pixels: the working grid has round(H · s_y / 0.4) × round(W · s_x /
   0.4) pixels and covers exactly the input's extent (pixel edges to pixel edges, so the working pixel is 0.4 mm up to
   the rounding of the size); anti-aliased bilinear when shrinking, bilinear when enlarging (`resize`, align_corners
   False: pixel centres at (k + ½) · size ratio). `to_input_grid` un-flips and resizes back with the same rule, so
   a map on the working grid lands on the input pixels it covers.
The network then sees the working image zero-padded on the right and bottom to a multiple of 16 (`pad_to_multiple`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from uqseg.io.image import Image
from uqseg.transforms.intensity import robust_unit_range
from uqseg.mammo.orientation import chest_wall_side

TARGET_SPACING_MM = 0.4
DEFAULT_LONG_SIDE_MM = 240.0
#: a spacing that makes the image's long side fall outside this range (mm) is not believed (step 1)
PLAUSIBLE_LONG_SIDE_MM = (50.0, 450.0)
MULTIPLE = 16  # four 2× down-sampling stages


@dataclass
class Prepared:
    """The working image and what is needed to map results back to the input."""

    array: np.ndarray  # (h, w) float32 in 0..1, chest wall on the left, `spacing_mm` → TARGET pixels
    input_shape: tuple[int, int]  # (H, W) of the input
    flipped: bool  # the input was flipped left-right to put the chest wall on the left
    side_source: str  # how the chest-wall side was decided
    input_spacing_mm: tuple[float, float]  # (x, y) mm of the input pixels used for the resampling
    spacing_basis: str  # where that spacing came from (tag, header or the documented fallback)
    intensity: str  # which intensity transform was applied
    target_spacing_mm: float = TARGET_SPACING_MM

    @property
    def work_shape(self) -> tuple[int, int]:
        return tuple(self.array.shape)

    @property
    def work_spacing_mm(self) -> tuple[float, float]:
        """The exact (x, y) pixel size of the working grid (the target up to the rounding of its size)."""
        (h, w), (big_h, big_w) = self.work_shape, self.input_shape
        sx, sy = self.input_spacing_mm
        return big_w * sx / w, big_h * sy / h

    def describe(self) -> dict:
        return {"input_spacing_mm": [round(v, 6) for v in self.input_spacing_mm], "spacing_basis": self.spacing_basis,
                "work_shape": list(self.work_shape),
                "work_spacing_mm": [round(v, 4) for v in self.work_spacing_mm], "intensity": self.intensity,
                "chest_wall_flipped": self.flipped, "chest_wall_decided_by": self.side_source}


def input_spacing(image: Image) -> tuple[tuple[float, float], str]:
    """((x, y) mm, basis) of the input's pixels for the 0.4 mm resampling; see the module docstring, step 1."""
    imager = image.meta.get("imager_pixel_spacing")
    source = image.meta.get("spacing_source")
    found = None
    if imager is not None:
        found = (float(imager[0]), float(imager[1])), "ImagerPixelSpacing"
    elif source and source != "default":
        found = (float(image.spacing[0]), float(image.spacing[1])), str(source)
    s = DEFAULT_LONG_SIDE_MM / max(image.shape[:2])
    if found is None:
        return (s, s), f"default: spacing unknown, long side assumed {DEFAULT_LONG_SIDE_MM:g} mm"
    (sx, sy), basis = found
    h, w = image.shape[:2]
    long_mm = max(h * sy, w * sx)
    if PLAUSIBLE_LONG_SIDE_MM[0] <= long_mm <= PLAUSIBLE_LONG_SIDE_MM[1]:
        return (sx, sy), basis
    # e.g. a volume saved by Slicer from a DICOM without spacing: the 1 mm placeholder would make a 4 m mammogram
    return (s, s), (f"default: the {basis} spacing ({sx:g} x {sy:g} mm) gives a {long_mm:.0f} mm long side, "
                    f"implausible for a mammogram; long side assumed {DEFAULT_LONG_SIDE_MM:g} mm")


def working_shape(shape: tuple[int, int], spacing_mm: tuple[float, float],
                  target: float = TARGET_SPACING_MM) -> tuple[int, int]:
    """(h, w) of the grid with `target` mm pixels over an image of `shape` (H, W) with `spacing_mm` (x, y)."""
    h, w = shape
    return max(1, int(round(h * spacing_mm[1] / target))), max(1, int(round(w * spacing_mm[0] / target)))


def resize(maps, shape: tuple[int, int]) -> torch.Tensor:
    """(…, H, W) array/tensor → float32 tensor (…, h, w) covering the same extent: anti-aliased bilinear along an axis
    that shrinks, bilinear (align_corners False) along one that grows."""
    x = torch.as_tensor(maps, dtype=torch.float32)
    lead = x.shape[:-2]
    x = x.reshape(1, -1, *x.shape[-2:])
    if tuple(x.shape[-2:]) != tuple(shape):
        shrink = shape[0] < x.shape[-2] or shape[1] < x.shape[-1]
        x = F.interpolate(x, size=tuple(shape), mode="bilinear", align_corners=False, antialias=shrink)
    return x.reshape(*lead, *shape)


def intensity_transform(image: Image) -> tuple[np.ndarray, str]:
    """The image's pixels before the robust normalisation, and a description (module docstring, step 2)."""
    meta = image.meta
    x = np.asarray(image.array, dtype=np.float32)
    if meta.get("windowed"):
        if meta.get("window"):
            return x, f"processed: DICOM window {meta['window'][2]} (c {meta['window'][0]:g}, w {meta['window'][1]:g})"
        return x, f"processed: DICOM VOI LUT ({meta.get('voi_lut') or 'sequence'})"
    if (meta.get("presentation_intent") or "").upper() == "FOR PROCESSING":
        x64 = x.astype(np.float64)
        if meta.get("inverted"):  # stored MONOCHROME1: undo the loader's max + min − x to get the exposure
            exposure = (x64.max() + x64.min()) - x64
            return (-np.log(exposure - exposure.min() + 1.0)).astype(np.float32), "raw: -ln(exposure)"
        return np.log(x64 - x64.min() + 1.0).astype(np.float32), "raw: ln(1 + value)"
    return x, "as loaded"


def prepare(image: Image, *, target: float = TARGET_SPACING_MM, flip: bool | None = None) -> Prepared:
    """The working image of a 2-D `image` (module docstring). `flip` forces the side decision (training: from the
    label); None decides it from the image."""
    if image.ndim != 2:
        raise ValueError(f"prepare needs a 2-D image, got shape {image.shape}")
    values, intensity = intensity_transform(image)
    x = robust_unit_range(values)
    if flip is None:
        side, side_source = chest_wall_side(Image(x, meta=dict(image.meta)))
        flip = side == "right"
    else:
        side_source = "given"
    if flip:
        x = np.ascontiguousarray(x[:, ::-1])
    spacing, basis = input_spacing(image)
    work = resize(x, working_shape(x.shape, spacing, target)).numpy().clip(0.0, 1.0)
    return Prepared(work.astype(np.float32), tuple(image.shape), bool(flip), side_source, spacing, basis, intensity,
                    target)


def to_working_grid(maps, prepared: Prepared) -> torch.Tensor:
    """Input-grid maps (…, H, W) (e.g. a label one-hot) → the working grid (…, h, w), flipped like the image."""
    x = torch.as_tensor(maps, dtype=torch.float32)
    if prepared.flipped:
        x = torch.flip(x, dims=(-1,))
    return resize(x, prepared.work_shape)


def to_input_grid(maps, prepared: Prepared) -> torch.Tensor:
    """Working-grid maps (…, h, w) → the input's pixel grid (…, H, W), un-flipped."""
    x = resize(maps, prepared.input_shape)
    return torch.flip(x, dims=(-1,)) if prepared.flipped else x


def pad_to_multiple(x: torch.Tensor, multiple: int = MULTIPLE) -> tuple[torch.Tensor, tuple[int, int]]:
    """Zero-pad (…, h, w) on the right and bottom to multiples of `multiple`; returns (padded, (h, w))."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return (F.pad(x, (0, pw, 0, ph)) if ph or pw else x), (h, w)
