"""Single DICOM files with pixel data (MG, CR, DX, and anything else 2-D or multi-frame) read into an `Image`.

Pixel pipeline, in this order (DICOM PS3.4 grayscale pipeline, without the presentation LUT):
1. decode with pydicom (native, RLE, JPEG 2000 via pylibjpeg; other syntaxes need their pydicom plugin);
2. Modality LUT (Rescale Slope/Intercept or Modality LUT Sequence) with pydicom's `apply_modality_lut` (through
   `uqseg.io.pydicom_compat`, which works with pydicom 2.4 and 3);
3. VOI: for FOR PRESENTATION images (Presentation Intent Type "FOR PRESENTATION", or the tag absent) the first
   window (Window Center/Width + VOI LUT Function, see `apply_window`) or, without a window, the first VOI LUT
   Sequence item; the result is 0..1. FOR PROCESSING images keep their raw (modality) values, and so do the
   quantitative modalities in `QUANTITATIVE_MODALITIES` (CT Hounsfield units etc.: their windows are display hints);
4. MONOCHROME1 is inverted so that high = bright tissue: ``1 - x`` after windowing, ``max + min - x`` on raw
   values (min/max of the image itself).
Colour images (RGB, YBR, PALETTE COLOR) become grey by luminance instead of steps 2–4.

Geometry: `spacing` is (x = column, y = row[, z = frame]) in mm from Pixel Spacing, else Imager Pixel Spacing (the
detector plane: for projection images it ignores the geometric magnification), else (1, 1) with
``spacing_source = "default"``; a non-positive or non-finite spacing tag is ignored (``meta["spacing_note"]`` says
so). Origin/direction come from Image Position/Orientation (Patient) when present (LPS, as DICOM), else
(0, 0, 0) and identity. Multi-frame files (Number of Frames > 1) give a volume ``[frame, row, col]``.

`meta` keys: modality, photometric (as stored), presentation_intent (as stored, None when absent), windowed (bool),
window ((center, width, function) or None), voi_lut (the VOI LUT Sequence explanation when that was applied, else
None), inverted (bool: MONOCHROME1 was flipped), laterality (Image Laterality, else Laterality, else None), view
(View Position, else Patient Orientation when it holds a mammography view code such as "MLO" — as in CBIS-DDSM
files — else None), patient_orientation (the two Patient Orientation values, row then column direction, e.g.
("A", "R"), when the tag holds two; else None), spacing_source (the tag name or "default"), imager_pixel_spacing
((x, y) mm from Imager Pixel Spacing whenever that tag is valid, even when Pixel Spacing gave `spacing`: the detector
plane spacing some models are defined on; else None), bits_stored, n_frames, transfer_syntax,
sop_instance_uid, format ("DICOM"), path.

Every problem with a file raises `InputError(path, reason)`: not DICOM, no pixel data (a non-image object, or an
image object cut short before its pixel data: said apart by the SOP Class), truncated pixel data, a DICOM
Segmentation (SEG) object (its frames are segments, not an image), a Rescale Slope / Intercept that is not a
finite number, an unsupported or undecodable transfer syntax, or any other decode failure.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError

from uqseg.errors import InputError
from uqseg.io.image import Image
from uqseg.io.picture import rgb_to_grey
from uqseg.io.pydicom_compat import apply_color_lut, apply_modality_lut, stored_pixels

# Mammography view codes (DICOM CID 4014 abbreviations) accepted from Patient Orientation as a fallback view.
MAMMO_VIEW_CODES = frozenset(
    {"CC", "MLO", "ML", "LM", "LMO", "FB", "SIO", "XCC", "XCCL", "XCCM", "AT", "CV", "RCC", "ISO"}
)

WINDOW_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")

# Modalities whose Modality LUT output is a physical quantity a model needs (HU, SUV, ...): never windowed here.
QUANTITATIVE_MODALITIES = frozenset({"CT", "MR", "PT", "NM"})

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

#: Segmentation Storage and Label Map Segmentation Storage: pixel data that labels another image, not an image.
SEGMENTATION_SOP_CLASSES = frozenset({"1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7"})


def apply_window(x: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """Map values through a DICOM VOI window onto 0..1 (float64), following DICOM PS3.3.

    - LINEAR (C.11.2.1.2.1), width ≥ 1: 0 where ``x <= c - 0.5 - (w - 1) / 2``, 1 where ``x > c - 0.5 + (w - 1) / 2``,
      else ``(x - (c - 0.5)) / (w - 1) + 0.5``.
    - LINEAR_EXACT (C.11.2.1.3.2), width > 0: 0 where ``x <= c - w / 2``, 1 where ``x > c + w / 2``,
      else ``(x - c) / w + 0.5``.
    - SIGMOID (C.11.2.1.3.1), width > 0: ``1 / (1 + exp(-4 (x - c) / w))``.
    Raises ValueError for an unknown function or a width outside its allowed range.
    """
    x = np.asarray(x, dtype=np.float64)
    c, w = float(center), float(width)
    function = (function or "LINEAR").strip().upper()
    if function == "LINEAR":
        if not w >= 1:
            raise ValueError(f"LINEAR window width must be >= 1, got {width}")
        low, high = c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2
        if w == 1:  # the ramp has no width: a step at c - 0.5
            return (x > low).astype(np.float64)
        y = (x - (c - 0.5)) / (w - 1) + 0.5
        return np.where(x <= low, 0.0, np.where(x > high, 1.0, y))
    if function == "LINEAR_EXACT":
        if not w > 0:
            raise ValueError(f"LINEAR_EXACT window width must be > 0, got {width}")
        y = (x - c) / w + 0.5
        return np.where(x <= c - w / 2, 0.0, np.where(x > c + w / 2, 1.0, y))
    if function == "SIGMOID":
        if not w > 0:
            raise ValueError(f"SIGMOID window width must be > 0, got {width}")
        return 0.5 * (1.0 + np.tanh(2.0 * (x - c) / w))  # == 1 / (1 + exp(-4 (x - c) / w)), without overflow
    raise ValueError(f"unknown VOI LUT function {function!r}; expected one of {WINDOW_FUNCTIONS}")


def _first(value: Any) -> Any:
    """The first item of a multi-valued element, or the value itself."""
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return value[0] if len(value) else None
    return value


def _text(value: Any) -> str | None:
    """A code string stripped and upper-cased; None when empty or absent."""
    value = _first(value)
    if value is None:
        return None
    value = str(value).strip().upper()
    return value or None


def _find(ds: Dataset, keyword: str) -> Any:
    """A tag's value at the top level, else in the shared, else the first per-frame functional group (enhanced
    multi-frame objects keep spacing, geometry and windows there). None when absent or empty."""
    value = ds.get(keyword)
    if value not in (None, ""):
        return value
    for groups_keyword in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        groups = ds.get(groups_keyword)
        if not groups:
            continue
        for macro in groups[0]:
            if macro.VR == "SQ" and len(macro.value):
                value = macro.value[0].get(keyword)
                if value not in (None, ""):
                    return value
    return None


def _read_dataset(path: Path) -> Dataset:
    """Parse the file, with or without the 128-byte preamble; errors → InputError."""
    try:
        return pydicom.dcmread(path)
    except InvalidDicomError:
        pass
    except Exception as error:  # parsing errors of a damaged file: struct/EOF/value errors
        raise InputError(path, f"cannot be read as DICOM (truncated or corrupt): {error}") from None
    # No 'DICM' preamble: an old-style file is DICOM only if the forced parse finds an image description.
    try:
        ds = pydicom.dcmread(path, force=True)
        if "Rows" in ds and "Columns" in ds:
            file_meta = getattr(ds, "file_meta", None) or FileMetaDataset()
            if "TransferSyntaxUID" not in file_meta:
                implicit, little = ds.original_encoding
                file_meta.TransferSyntaxUID = (
                    uid.ImplicitVRLittleEndian if implicit
                    else uid.ExplicitVRLittleEndian if little else uid.ExplicitVRBigEndian
                )
            ds.file_meta = file_meta
            return ds
    except Exception:
        pass
    raise InputError(path, "not a DICOM file (no 'DICM' preamble and no readable image header)")


def _transfer_syntax(ds: Dataset) -> uid.UID:
    file_meta = getattr(ds, "file_meta", None) or {}
    return uid.UID(str(file_meta.get("TransferSyntaxUID", uid.ExplicitVRLittleEndian)))


def _syntax_name(syntax: uid.UID) -> str:
    return syntax.name if syntax.name != str(syntax) else f"{syntax} (unknown UID)"


def _check_native_length(path: Path, ds: Dataset, frames: int) -> None:
    """Truncated native pixel data: explain instead of letting pydicom's decoder fail."""
    if "PixelData" not in ds:
        return
    rows, cols = int(ds.Rows), int(ds.Columns)
    samples, bits = int(ds.get("SamplesPerPixel", 1)), int(ds.get("BitsAllocated", 16))
    expected = math.ceil(rows * cols * samples * frames * bits / 8)
    have = len(ds.PixelData)
    if have < expected:
        raise InputError(
            path,
            f"truncated file: pixel data has {have} bytes but Rows×Columns×Samples×Frames×BitsAllocated "
            f"({rows}×{cols}×{samples}×{frames}×{bits} bits) needs {expected}",
        )


def _sop_class(ds: Dataset) -> uid.UID | None:
    """The SOP Class UID from the dataset, else from the file meta (a file cut short may keep only the latter)."""
    for value in (ds.get("SOPClassUID"), getattr(ds, "file_meta", {}).get("MediaStorageSOPClassUID")):
        if value is not None and str(value).strip():
            return uid.UID(str(value).strip())
    return None


def _refuse_segmentation(path: Path, ds: Dataset) -> None:
    """A DICOM SEG object holds one frame per segment and slice: refuse it as what it is, not as a thin volume."""
    sop = _sop_class(ds)
    if (sop is not None and str(sop) in SEGMENTATION_SOP_CLASSES) or _text(ds.get("Modality")) == "SEG":
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        segments = len(ds.get("SegmentSequence") or [])
        what = f"{frames} frame{'s' if frames != 1 else ''}" + (f", {segments} segment{'s' if segments != 1 else ''}"
                                                               if segments else "")
        raise InputError(path, f"is a DICOM Segmentation object (SEG, {what}), not an image: it labels another "
                               "image; run the task on that image (in Slicer, load both with the DICOM module)")


def _decode(path: Path, ds: Dataset) -> np.ndarray:
    """The stored pixel values as decoded by pydicom; errors → InputError."""
    if not any(keyword in ds for keyword in _PIXEL_KEYWORDS):
        sop = _sop_class(ds)
        sop_name = f" ({sop.name})" if sop else ""
        image_object = "Image Storage" in sop.name if sop is not None else ("Rows" in ds and "Columns" in ds)
        if image_object:
            size = path.stat().st_size
            raise InputError(path, f"truncated or corrupt DICOM file: an image object{sop_name} without its pixel "
                                   f"data (the file ends after {size} bytes, before or inside the Pixel Data)")
        raise InputError(path, f"has no pixel data{sop_name}: not an image, e.g. a structured report")
    missing = [k for k in ("Rows", "Columns") if k not in ds]
    if missing:
        raise InputError(path, f"has pixel data but no {' / '.join(missing)}: cannot interpret it")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    syntax = _transfer_syntax(ds)
    if not syntax.is_transfer_syntax:
        raise InputError(path, f"unsupported or undecodable transfer syntax {_syntax_name(syntax)}: not a known UID")
    if not syntax.is_compressed:
        _check_native_length(path, ds, frames)
    try:
        return stored_pixels(ds)
    except Exception as error:  # pydicom raises NotImplementedError/RuntimeError/ValueError/... per plugin
        reason = re.sub(r"\s*<[^<>]* at 0x[0-9a-f]+>", "", " ".join(str(error).split()))  # drop object reprs
        if syntax.is_compressed:
            reason = f"unsupported or undecodable transfer syntax {_syntax_name(syntax)}: {reason}"
        else:
            reason = f"cannot decode pixel data ({_syntax_name(syntax)}): {reason}"
        raise InputError(path, reason) from None


def _spacing(ds: Dataset, meta: dict[str, Any]) -> tuple[float, float]:
    """In-plane (x = column, y = row) spacing in mm and its source; DICOM stores (row, column)."""
    notes = []
    meta["imager_pixel_spacing"] = None
    imager = _find(ds, "ImagerPixelSpacing")
    try:
        imager_row, imager_col = (float(v) for v in imager)
        if all(math.isfinite(v) and v > 0 for v in (imager_row, imager_col)):
            meta["imager_pixel_spacing"] = (imager_col, imager_row)
    except (TypeError, ValueError):
        pass
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = _find(ds, keyword)
        if value is None:
            continue
        try:
            row_mm, col_mm = (float(v) for v in value)
        except (TypeError, ValueError):
            notes.append(f"{keyword} {value!r} is not two numbers; ignored")
            continue
        if not (math.isfinite(row_mm) and math.isfinite(col_mm) and row_mm > 0 and col_mm > 0):
            notes.append(f"{keyword} ({row_mm:g}, {col_mm:g}) is not positive; ignored")
            continue
        meta["spacing_source"] = keyword
        if notes:
            meta["spacing_note"] = "; ".join(notes)
        return col_mm, row_mm
    meta["spacing_source"] = "default"
    if notes:
        meta["spacing_note"] = "; ".join(notes)
    return 1.0, 1.0


def _geometry(ds: Dataset) -> tuple[tuple[float, float, float], np.ndarray]:
    """Origin (mm) and direction (columns = index axes x, y, z) in LPS from Image Position/Orientation (Patient)."""
    origin, direction = (0.0, 0.0, 0.0), np.eye(3)
    position = _find(ds, "ImagePositionPatient")
    if position is not None and len(position) == 3:
        origin = tuple(float(v) for v in position)
    orientation = _find(ds, "ImageOrientationPatient")
    if orientation is not None and len(orientation) == 6:
        row_cos = np.array([float(v) for v in orientation[:3]])  # direction of increasing column index
        col_cos = np.array([float(v) for v in orientation[3:]])  # direction of increasing row index
        normal = np.cross(row_cos, col_cos)
        if np.linalg.norm(normal) > 1e-6:
            direction = np.column_stack([row_cos, col_cos, normal / np.linalg.norm(normal)])
    return origin, direction


def _window(ds: Dataset) -> tuple[float, float, str] | None:
    """The first (center, width, function) window, or None when absent or unusable."""
    center, width = _find(ds, "WindowCenter"), _find(ds, "WindowWidth")
    if center is None or width is None:
        return None
    try:
        center, width = float(_first(center)), float(_first(width))
    except (TypeError, ValueError):
        return None
    function = _text(_find(ds, "VOILUTFunction")) or "LINEAR"
    if function not in WINDOW_FUNCTIONS:
        function = "LINEAR"  # PS3.3: LINEAR is the default; unknown terms fall back to it
    minimum_width = 1.0 if function == "LINEAR" else 0.0
    if not (math.isfinite(center) and math.isfinite(width) and width >= max(minimum_width, 1e-12)):
        return None
    return center, width, function


def _apply_voi_lut_item(values: np.ndarray, item: Dataset, syntax: uid.UID) -> np.ndarray:
    """One VOI LUT Sequence item applied to Modality LUT output, scaled to 0..1 by the LUT's nominal bit depth.

    PS3.3 C.11.2.1.1: input below the first mapped value takes the first entry, above the last takes the last.
    (Done here rather than with pydicom's apply_voi_lut, which in pydicom 3.0 indexes 8-bit LUTs with a uint8
    array and so wraps inputs above 255.)
    """
    entries, first_mapped, bits = (int(v) for v in item.LUTDescriptor)
    entries = entries or 65536
    data = item.LUTData
    if isinstance(data, bytes):  # OW: 16-bit words in the dataset's byte order
        data = np.frombuffer(data, dtype="<u2" if syntax.is_little_endian else ">u2")
    lut = np.asarray(data, dtype=np.float32)[:entries]
    index = np.clip(np.rint(values).astype(np.int64) - first_mapped, 0, len(lut) - 1)
    return lut[index] / np.float32(2**bits - 1)


def _view(ds: Dataset) -> str | None:
    view = _text(ds.get("ViewPosition"))
    if view:
        return view
    orientation = ds.get("PatientOrientation")
    if isinstance(orientation, str) or (orientation is not None and len(orientation) == 1):
        code = _text(orientation)
        if code in MAMMO_VIEW_CODES:
            return code
    return None


def _patient_orientation(ds: Dataset) -> tuple[str, str] | None:
    """The two Patient Orientation values (directions of increasing column, then row index), upper-cased; None
    unless the tag holds exactly two (CBIS-DDSM files put a single view code there instead)."""
    value = ds.get("PatientOrientation")
    if value is None or isinstance(value, str) or len(value) != 2:
        return None
    return tuple(str(v).strip().upper() for v in value)


def _grey_pixels(ds: Dataset, stored: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    """Stored values → float32 grey image following the pipeline in the module docstring; fills meta."""
    photometric = _text(ds.get("PhotometricInterpretation")) or "MONOCHROME2"
    samples = int(ds.get("SamplesPerPixel", 1))
    meta.update(windowed=False, window=None, voi_lut=None, inverted=False)
    if photometric == "PALETTE COLOR":
        return rgb_to_grey(apply_color_lut(stored, ds))
    if samples > 1:  # pydicom already converted YBR to RGB
        return rgb_to_grey(stored)

    slope, intercept = _find(ds, "RescaleSlope"), _find(ds, "RescaleIntercept")
    for name, value in (("Rescale Slope", slope), ("Rescale Intercept", intercept)):
        try:
            number = None if value is None else float(_first(value))
        except (TypeError, ValueError):
            number = float("nan")
        if number is not None and not math.isfinite(number):
            raise InputError(meta.get("path"), f"has a {name} of {_first(value)!s}, not a finite number: its "
                                               "stored pixel values cannot be converted to physical values")
    values = apply_modality_lut(stored, ds)
    if "RescaleSlope" not in ds and "ModalityLUTSequence" not in ds and slope is not None:
        values = values * float(slope) + float(intercept or 0.0)  # enhanced multi-frame: in functional groups
    values = np.asarray(values, dtype=np.float32)

    if meta["presentation_intent"] != "FOR PROCESSING" and meta["modality"] not in QUANTITATIVE_MODALITIES:
        window = _window(ds)
        if window is not None:
            values = apply_window(values, *window).astype(np.float32)
            meta.update(windowed=True, window=window)
        elif "VOILUTSequence" in ds and len(ds.VOILUTSequence):
            item = ds.VOILUTSequence[0]
            values = _apply_voi_lut_item(values, item, _transfer_syntax(ds))
            meta.update(windowed=True, voi_lut=str(item.get("LUTExplanation", "VOI LUT Sequence")))

    if photometric == "MONOCHROME1":
        if meta["windowed"]:
            values = 1.0 - values
        else:
            values = (float(values.max()) + float(values.min())) - values
        meta["inverted"] = True
    return np.asarray(values, dtype=np.float32)


def load_dicom(path: str | Path) -> Image:
    """Read one DICOM file into an `Image` (2-D, or ``[frame, row, col]`` when multi-frame); see module docstring.

    Raises `InputError` for any file that cannot give an image.
    """
    path = Path(path)
    try:
        return _load(path)
    except InputError:
        raise
    except Exception as error:  # malformed header values (non-numeric spacing, bad LUT descriptors, ...)
        reason = " ".join(str(error).split()) or type(error).__name__
        raise InputError(path, f"malformed DICOM header or pixel description: {reason}") from None


def _load(path: Path) -> Image:
    ds = _read_dataset(path)
    _refuse_segmentation(path, ds)
    stored = _decode(path, ds)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1))
    expected_ndim = (3 if frames > 1 else 2) + (1 if samples > 1 else 0)
    if stored.ndim != expected_ndim:
        raise InputError(path, f"decoded pixel array has shape {stored.shape}, not what the header describes")

    meta: dict[str, Any] = {
        "format": "DICOM",
        "modality": _text(ds.get("Modality")),
        "photometric": _text(ds.get("PhotometricInterpretation")),
        "presentation_intent": _text(ds.get("PresentationIntentType")),
        "laterality": _text(ds.get("ImageLaterality")) or _text(ds.get("Laterality")),
        "view": _view(ds),
        "patient_orientation": _patient_orientation(ds),
        "bits_stored": int(ds.get("BitsStored", 0)) or None,
        "n_frames": frames,
        "transfer_syntax": _syntax_name(_transfer_syntax(ds)),
        "sop_instance_uid": str(ds.get("SOPInstanceUID", "")) or None,
        "path": str(path),
    }
    array = _grey_pixels(ds, stored, meta)

    x_mm, y_mm = _spacing(ds, meta)
    origin, direction = _geometry(ds)
    if frames > 1:
        z = _find(ds, "SpacingBetweenSlices") or _find(ds, "SliceThickness")
        z_mm = float(z) if z is not None and float(z) > 0 else 1.0
        spacing: tuple[float, ...] = (x_mm, y_mm, z_mm)
    else:
        spacing = (x_mm, y_mm)
    return Image(array=np.ascontiguousarray(array), spacing=spacing, origin=origin, direction=direction, meta=meta)
