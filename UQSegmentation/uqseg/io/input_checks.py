"""Can the model see this image? One set of rules for every task, applied to a loaded `Image` before any network.

`check_input(image, profile)` either raises `InputError(path, reason)` — the CLI prints ``error: <file>: <reason>``
and exits 2 — or returns a `CheckedInput`: the image to use (non-finite pixels filled) and the findings, which
`finish_summary` writes into summary.json as ``flags`` (codes) and ``flag_details`` (one sentence per code) and which
set ``ood`` when the finding means the result deserves distrust. Each task declares its `Profile` (the modality it
was trained on) and calls both the same way; the rules differ per modality only in the numbers below.

Refused (the network would see nothing, or nothing it could place in millimetres):
- an image smaller than `MIN_SIDE_PX` on a side (2-D; a CT volume: in-plane) or, for 2-D, with one side more than
  `MAX_ASPECT` times the other: an icon or a strip, not a radiograph;
- no finite pixel at all (all NaN / ±inf), or more than `MAX_NONFINITE_FRACTION` of them non-finite: most of the
  image is missing and whatever fills it would be the model's input;
- no contrast: every pixel the same value ("every pixel is 0"), or the robust range the models normalise by (0.5th
  to 99.5th percentile) empty — at least 99 % of the pixels one value, so the normalised image is blank —, or that
  range narrower than `MIN_RELATIVE_CONTRAST` of the values' magnitude (finer than one grey level of a 16-bit image:
  float rounding noise on a constant, which normalisation would blow up into a noise image);
- a CT whose voxel spacing is outside `Profile.spacing_mm` on any axis (0.001 mm, 50 mm) or unknown (a header with
  a zero or invalid spacing that the reader replaced): the CT model resamples to its millimetre grid and there is no
  default size a volume could be assumed to have.
Processed and flagged (codes in ``flags``; those in `OOD_FLAGS` also set ``ood``):
- ``nan_pixels`` (ood): some pixels are NaN or ±inf (at most `MAX_NONFINITE_FRACTION`). They are filled before the
  model sees them — radiographs with the smallest finite value of the image (after the loaders' MONOCHROME1 inversion
  the darkest value, i.e. background / no tissue), CT with `CT_FILL_HU` = -1024 HU (air, the value the working grid
  has outside the scanned volume) — and the outputs are computed on the filled image;
- ``spacing_implausible`` (ood): the file gives a pixel spacing, but it cannot be right for this modality — zero,
  negative or not a number (the loader ignored it), the image's long side outside `Profile.long_side_mm` (a 50 mm
  pixel makes a 57-metre mammogram), or pixels more than `MAX_PIXEL_ASPECT` times longer than wide. The 2-D tasks go
  on with their documented fallback (mammo-breast: long side 240 mm) and keep the file's own geometry for the
  written files, so they overlay the image as Slicer loads it;
- ``spacing_from_default`` (not ood by itself): the spacing is an assumption, not read from the file — pictures (PNG,
  JPEG, TIFF) never carry one and DICOM files may not (CBIS-DDSM); the models were trained on such files, so this is
  a note, not distrust. mm values derived from such a spacing are the fallback's.
- ``uncertainty_above_threshold`` (ood): the task's own image uncertainty is above its model card's threshold (the
  ``ood`` every task computed before these checks existed; named so that ``ood`` always has a reason in ``flags``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from uqseg.errors import InputError
from uqseg.io.image import Image
from uqseg.transforms.intensity import HIGH_PERCENTILE, LOW_PERCENTILE

#: Smallest number of pixels on a side (2-D) or in-plane (CT): 32 is below any radiograph or CT slice; the networks'
#: grids (256-pixel squares, 0.4 mm pixels, 2 mm voxels) would blow an icon up into blur.
MIN_SIDE_PX = 32
#: Longest side over shortest side of a 2-D image: mammograms are ~1.3, chest radiographs ~1.2, 5 is a strip.
MAX_ASPECT = 5.0
#: More non-finite pixels than this fraction: refused (most of the image is missing).
MAX_NONFINITE_FRACTION = 0.5
#: The robust range (p0.5..p99.5) must be at least this fraction of the values' magnitude: one grey level of a 16-bit
#: image at full scale is 1/65535 = 1.5e-5, float32 rounding is ~1e-7.
MIN_RELATIVE_CONTRAST = 1e-5
#: The robust range the models normalise by (`uqseg.transforms.intensity`).
ROBUST_PERCENTILES = (LOW_PERCENTILE, HIGH_PERCENTILE)
#: Pixel width over height (or the inverse) above this is not a radiograph's square pixel.
MAX_PIXEL_ASPECT = 4.0
#: What CT voxels without a value (NaN, ±inf) are filled with: air, like the working grid outside the volume.
CT_FILL_HU = -1024.0
#: Statistics (percentiles) are taken on at most about this many pixels, an even subsample.
_SAMPLE_PIXELS = 2_000_000

NAN_PIXELS = "nan_pixels"
SPACING_IMPLAUSIBLE = "spacing_implausible"
SPACING_FROM_DEFAULT = "spacing_from_default"
UNCERTAINTY_ABOVE_THRESHOLD = "uncertainty_above_threshold"
#: a task finding, not an input one: a predicted organ in more than one piece (uqseg.ct.fragments); not in OOD_FLAGS
DETACHED_FRAGMENTS = "detached_fragments"
#: task findings on the output that a reader must see beside ``ood`` / ``multimodal`` (console line, Slicer status)
FINDING_FLAGS = (DETACHED_FRAGMENTS,)
#: Flags that set summary.json's ``ood``.
OOD_FLAGS = frozenset({NAN_PIXELS, SPACING_IMPLAUSIBLE, UNCERTAINTY_ABOVE_THRESHOLD})


@dataclass(frozen=True)
class Profile:
    """What a task's model was trained on: the numbers of the rules above.

    ndim: 2 (a radiograph) or 3 (a CT volume); noun: "mammogram", ... (used in messages); long_side_mm (2-D): the
    plausible physical length of the image's long side; spacing_mm (3-D): the plausible voxel spacing on each axis;
    fill: "minimum" (the image's smallest finite value) or a number; spacing_fallback: True when the task has a
    documented fallback for an implausible or unknown spacing (then flagged), False when it must refuse."""

    name: str
    ndim: int
    noun: str
    unit: str = "pixel"
    long_side_mm: Optional[tuple] = None
    spacing_mm: Optional[tuple] = None
    fill: object = "minimum"
    spacing_fallback: bool = True


#: Detectors and films are 18 x 24 to 24 x 30 cm, spot views ~10 cm (as `uqseg.mammo.breast_preprocess`).
MAMMOGRAM = Profile("mammogram", 2, "mammogram", long_side_mm=(50.0, 450.0))
#: 43 x 43 cm detectors, down to neonatal chests of ~10 cm.
CHEST_RADIOGRAPH = Profile("chest radiograph", 2, "chest radiograph", long_side_mm=(80.0, 600.0))
#: Clinical CT: 0.2-1 mm in-plane (2-3 mm for resampled / low-dose series), 0.5-10 mm between slices.
CT = Profile("CT", 3, "CT volume", unit="voxel", spacing_mm=(0.1, 20.0), fill=CT_FILL_HU, spacing_fallback=False)


@dataclass
class CheckedInput:
    """The image the model may see (non-finite pixels filled) and the findings: `details` maps each flag code to one
    sentence, in the order found."""

    image: Image
    details: dict = field(default_factory=dict)

    @property
    def flags(self) -> list:
        return list(self.details)

    @property
    def ood(self) -> bool:
        return any(flag in OOD_FLAGS for flag in self.details)

    @property
    def ood_flags(self) -> list:
        """The findings that set ``ood`` (what a preview caption lists beside the task's own flags)."""
        return [flag for flag in self.details if flag in OOD_FLAGS]


def _sample(values: np.ndarray) -> np.ndarray:
    flat = values.reshape(-1)
    step = max(1, flat.size // _SAMPLE_PIXELS)
    return flat[::step] if step > 1 else flat


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _describe_nonfinite(values: np.ndarray, bad: np.ndarray) -> str:
    kinds = []
    if np.isnan(values[bad]).any():
        kinds.append("NaN")
    if np.isinf(values[bad]).any():
        kinds.append("infinite")
    return " or ".join(kinds)


def _check_shape(path, image: Image, profile: Profile) -> None:
    shape = image.shape
    plane = shape[-2:]
    if min(plane) < MIN_SIDE_PX:
        size = " x ".join(str(s) for s in shape)
        where = " in-plane" if profile.ndim == 3 else ""
        raise InputError(path, f"is only {size} {profile.unit}s: too small for a {profile.noun} (the model needs at "
                               f"least {MIN_SIDE_PX} {profile.unit}s on a side{where})")
    if profile.ndim == 2 and max(plane) > MAX_ASPECT * min(plane):
        ratio = max(plane) / min(plane)
        raise InputError(path, f"is {plane[0]} x {plane[1]} pixels (rows x columns), a strip {ratio:.0f} times longer "
                               f"than wide: not a {profile.noun} (at most {MAX_ASPECT:g}:1)")


def _fill_nonfinite(path, image: Image, profile: Profile, details: dict) -> Image:
    values = np.asarray(image.array)
    if np.isfinite(np.sum(values, dtype=np.float64)):  # no NaN / inf (their sum would not be finite): no mask needed
        return image
    bad = ~np.isfinite(values)
    count = int(bad.sum())
    if count == 0:
        return image
    what = _describe_nonfinite(values, bad)
    pixels = f"{profile.unit}s"
    if count == values.size:
        raise InputError(path, f"has no contrast: every {profile.unit} is {what}")
    fraction = count / values.size
    if fraction > MAX_NONFINITE_FRACTION:
        raise InputError(path, f"{100 * fraction:.0f} % of its {pixels} ({count} of {values.size}) are {what}: too "
                               f"much of the image is missing for the model (at most "
                               f"{100 * MAX_NONFINITE_FRACTION:.0f} %)")
    if profile.fill == "minimum":
        fill = float(values[~bad].min())
        how = f"the image's smallest value {_fmt(fill)} (background)"
    else:
        fill = float(profile.fill)
        how = f"{_fmt(fill)} (air)" if profile.ndim == 3 else _fmt(fill)
    filled = np.where(bad, np.float32(fill), values).astype(values.dtype, copy=False)
    details[NAN_PIXELS] = (f"{count} of {values.size} {pixels} ({100 * fraction:.2g} %) were {what}; filled with {how} "
                           "before the model saw them")
    return image.with_array(filled)


def _check_contrast(path, image: Image, profile: Profile, details: dict) -> None:
    values = np.asarray(image.array)
    low, high = float(values.min()), float(values.max())
    every = f"every {profile.unit}"
    if NAN_PIXELS in details:
        every = f"every finite {profile.unit}"
    if high <= low:
        raise InputError(path, f"has no contrast: {every} is {_fmt(low)}")
    p_low, p_high = (float(v) for v in np.percentile(_sample(values), ROBUST_PERCENTILES))
    if p_high <= p_low:
        raise InputError(path, f"has no contrast: at least 99 % of its {profile.unit}s are {_fmt(p_low)} (only "
                               f"{int(np.count_nonzero(values != p_low))} of {values.size} differ), so the model "
                               "would see a blank image")
    level = max(abs(p_low), abs(p_high))
    if p_high - p_low < MIN_RELATIVE_CONTRAST * level:
        raise InputError(path, f"has no contrast: its values vary by only {_fmt(p_high - p_low)} around "
                               f"{_fmt(level)} (less than one grey level of a 16-bit image: rounding noise on a "
                               "constant image)")


def _spacing_note(image: Image) -> str | None:
    note = image.meta.get("spacing_note")
    return str(note) if note else None


def _check_spacing_2d(image: Image, profile: Profile, details: dict) -> None:
    source = image.meta.get("spacing_source")
    note = _spacing_note(image)
    if source == "default" or not source:
        if note:  # the file had a spacing, the loader could not use it
            details[SPACING_IMPLAUSIBLE] = f"{note} (not a usable spacing for a {profile.noun})"
        details[SPACING_FROM_DEFAULT] = ("the file gives no usable pixel spacing: millimetre values are based on an "
                                         "assumed one (see input_geometry, and preprocessing where the task has it)")
        return
    candidates = [("spacing", tuple(float(v) for v in image.spacing[:2]), str(source))]
    imager = image.meta.get("imager_pixel_spacing")
    if imager is not None and str(source) != "ImagerPixelSpacing":
        candidates.append(("imager", tuple(float(v) for v in imager), "ImagerPixelSpacing"))
    h, w = image.shape[-2:]
    problems = []
    for _, (sx, sy), tag in candidates:
        if not all(math.isfinite(v) and v > 0 for v in (sx, sy)):
            problems.append(f"{tag} ({_fmt(sx)}, {_fmt(sy)}) mm is not positive")
            continue
        long_mm = max(w * sx, h * sy)
        lo, hi = profile.long_side_mm
        if not lo <= long_mm <= hi:
            problems.append(f"{tag} {_fmt(sx)} x {_fmt(sy)} mm makes the image's long side {long_mm:.0f} mm, "
                            f"implausible for a {profile.noun} ({lo:g}-{hi:g} mm)")
        elif max(sx, sy) > MAX_PIXEL_ASPECT * min(sx, sy):
            problems.append(f"{tag} {_fmt(sx)} x {_fmt(sy)} mm is {max(sx, sy) / min(sx, sy):.1f} times longer than "
                            f"wide (a {profile.noun} has square pixels)")
    if problems:
        details[SPACING_IMPLAUSIBLE] = "; ".join(problems) + ": the spacing is not trusted"


def _check_spacing_3d(path, image: Image, profile: Profile, details: dict) -> None:
    note = _spacing_note(image)
    if image.meta.get("spacing_source") == "default":
        raise InputError(path, f"has no valid voxel spacing in its header ({note or 'none given'}): the {profile.noun} "
                               "cannot be placed in millimetres, and the model resamples to a millimetre grid")
    spacing = [float(v) for v in image.spacing]
    lo, hi = profile.spacing_mm
    if not all(math.isfinite(v) and lo <= v <= hi for v in spacing):
        shown = " x ".join(_fmt(v) for v in spacing)
        extent = " x ".join(f"{n * s:.3g}" for n, s in zip(image.shape[::-1], spacing))
        raise InputError(path, f"has a voxel spacing of {shown} mm, implausible for a {profile.noun} (expected "
                               f"{lo:g}-{hi:g} mm on every axis; the volume would measure {extent} mm)")


def check_input(image: Image, profile: Profile) -> CheckedInput:
    """Apply the rules of the module docstring for `profile`. Returns the image to use and the findings; raises
    `InputError(image.meta["path"], reason)` for an image the model cannot see."""
    path = image.meta.get("path")
    details: dict = {}
    _check_shape(path, image, profile)
    image = _fill_nonfinite(path, image, profile, details)
    _check_contrast(path, image, profile, details)
    if profile.ndim == 3:
        _check_spacing_3d(path, image, profile, details)
    else:
        _check_spacing_2d(image, profile, details)
    return CheckedInput(image=image, details=details)


def finish_summary(summary: dict, checked: CheckedInput | None = None, findings: dict | None = None) -> dict:
    """Add ``flags`` and ``flag_details`` to a task's summary and OR the findings into its ``ood`` (which holds the
    task's own uncertainty-based decision when this is called). `findings`: the task's own further flags
    ({flag: detail}, e.g. DETACHED_FRAGMENTS); only those in OOD_FLAGS set ``ood``. Returns `summary`."""
    details = {}
    if summary.get("ood"):
        details[UNCERTAINTY_ABOVE_THRESHOLD] = "the image uncertainty is above the model card's threshold"
    if checked is not None:
        details.update(checked.details)
    details.update(findings or {})
    summary["ood"] = any(flag in OOD_FLAGS for flag in details)
    summary["flags"] = list(details)
    summary["flag_details"] = details
    return summary


def shown_flags(summary: dict) -> list[str]:
    """The flags of a summary a reader must see, booleans first: e.g. ["ood", "detached_fragments"] (`multimodal` /
    `ood` when true, then the FINDING_FLAGS listed in `flags`)."""
    listed = summary.get("flags") or []
    return [k for k in ("multimodal", "ood") if summary.get(k)] + [k for k in FINDING_FLAGS if k in listed]


__all__ = ["CHEST_RADIOGRAPH", "CT", "CheckedInput", "DETACHED_FRAGMENTS", "FINDING_FLAGS", "MAMMOGRAM", "OOD_FLAGS",
           "Profile", "check_input", "finish_summary", "shown_flags"]
