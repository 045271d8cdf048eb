"""A folder holding one DICOM series (one file per slice: CT, MR, ...) read into a 3-D `Image`.

Reading, in this order:
1. every file directly in the folder (not in subfolders; hidden files skipped) whose header parses as DICOM and
   describes an image (Rows and Columns) is a candidate; other files, and non-image objects (SEG, RTSTRUCT, SR,
   presentation states, ...), are ignored and counted in ``meta["ignored_files"]``;
2. the candidates are grouped by Series Instance UID: more than one group is an error that names them (or pick one
   with `series_uid`);
3. checks: the modality (`require_modality`), more than one file, no multi-frame files, the same Rows/Columns,
   Pixel Spacing and Image Orientation (Patient) in every file;
4. slices are sorted by their Image Position (Patient) projected on the slice normal ``n = row × column``
   direction cosines (never by Instance Number or file name); the slice spacing comes from these positions (never
   from Slice Thickness, which may differ, e.g. 3 mm slices reconstructed every 2 mm); a gap larger than
   `MISSING_SLICE_FACTOR` × the median gap is a missing slice, other irregular gaps, duplicate positions and
   in-plane shifts between slices (gantry tilt) are refused;
5. each slice's pixels go through `uqseg.io.dicom.load_dicom` (decoding, then the Modality LUT: Rescale
   Slope/Intercept applied per file, so CT values are Hounsfield units; CT/MR values are never windowed).

Geometry (the `Image` conventions, patient LPS frame): ``array[k, i, j]`` is row i, column j of the k-th slice
along n; `spacing` = (column spacing, row spacing, slice spacing) mm, the first two from Pixel Spacing (which DICOM
stores as row, column), the third ``(p_last - p_first) / (N - 1)`` with p = position · n; `origin` = the Image
Position (Patient) of slice 0 (the centre of its first pixel, mm); `direction` columns = row direction cosine (index
axis of columns), column direction cosine (index axis of rows), n. So `uqseg.io.geometry.index_to_lps(image, j, i,
k)` is the Image Position (Patient) of file k plus the in-plane offset, as in the DICOM standard (PS3.3 C.7.6.2.1.1).

Every problem raises `InputError(folder or file, reason)`: no DICOM files, several series, a non-matching modality,
a single file, a multi-frame file, inconsistent size/spacing/orientation, missing geometry tags, missing or
irregular slices, and compressed pixel data whose decoder is not installed (the reason names the package).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom import uid
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from uqseg.errors import InputError
from uqseg.io.dicom import load_dicom
from uqseg.io.image import Image
from uqseg.io.pydicom_compat import decoder_status

#: A gap between consecutive slice positions larger than this many median gaps means slices are missing.
MISSING_SLICE_FACTOR = 1.5
#: Slice positions may deviate from a uniform grid by this fraction of the slice spacing (or 0.01 mm, if larger).
SPACING_TOLERANCE = 0.02
#: Slices may be shifted in-plane against each other by this fraction of the smallest pixel spacing.
IN_PLANE_SHIFT_TOLERANCE = 0.1
#: Direction cosines and pixel spacings (mm) of the files of one series may differ by this much.
ORIENTATION_TOLERANCE = 1e-4
SPACING_MATCH_TOLERANCE_MM = 1e-4

#: DICOM objects that may sit beside an image series but are not slices of it.
NON_IMAGE_MODALITIES = frozenset({"SEG", "RTSTRUCT", "RTPLAN", "RTRECORD", "SR", "PR", "KO", "REG", "DOC", "PLAN"})

#: What to install when pydicom has no decoder for a transfer syntax (the pydicom plugins, by family).
_DECODER_HINTS = (
    ("JPEG 2000", "pylibjpeg and pylibjpeg-openjpeg (pip install pylibjpeg pylibjpeg-openjpeg), or python-gdcm"),
    ("JPEG-LS", "pyjpegls (pip install pyjpegls), or pylibjpeg with pylibjpeg-libjpeg, or python-gdcm"),
    ("JPEG", "pylibjpeg and pylibjpeg-libjpeg (pip install pylibjpeg pylibjpeg-libjpeg), or python-gdcm"),
    ("RLE", "pylibjpeg and pylibjpeg-rle (pip install pylibjpeg pylibjpeg-rle)"),
)


@dataclass
class _SliceFile:
    """One candidate file: its path and its header (read without the pixel data)."""

    path: Path
    header: Dataset

    def text(self, keyword: str) -> str:
        value = self.header.get(keyword)
        return "" if value is None else str(value).strip()


# ------------------------------------------------------------------------------------------------ reading headers
def _may_be_old_style_dicom(path: Path) -> bool:
    """Whether a file without the 'DICM' marker is worth a forced parse: no extension, .dcm/.dicom/.ima, or a
    numeric one (files named by their UID, '1.2.840....1234')."""
    suffix = path.suffix.lower()
    return suffix in ("", ".dcm", ".dicom", ".ima") or suffix[1:].isdigit()


def _read_header(path: Path) -> Dataset | None:
    """The header of a DICOM image file (pixel data not read), or None for a file that is not a DICOM image.

    A file with the 'DICM' marker that does not parse, or an image object whose header lacks Rows / Columns, is
    corrupt: InputError. A file without the marker (and with a name DICOM files have) is accepted only when a forced
    parse finds an image description (Rows, Columns, Image Position (Patient)), as old-style DICOM files have.
    """
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        if not _may_be_old_style_dicom(path):
            return None
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        except Exception:
            return None
        if "Rows" not in header or "Columns" not in header or "ImagePositionPatient" not in header:
            return None
    except OSError as error:
        raise InputError(path, f"cannot be read: {error.strerror or error}") from None
    except Exception as error:  # struct / EOF / value errors of a damaged file
        detail = " ".join(str(error).split())
        raise InputError(path, f"cannot be read as DICOM (truncated or corrupt): {detail}") from None
    if "Rows" not in header or "Columns" not in header:
        sop_class = _sop_class(header)
        if sop_class is not None and "Image Storage" in sop_class.name:
            raise InputError(path, f"truncated or corrupt DICOM file: a {sop_class.name} object without Rows / "
                                   "Columns (its header is cut short)")
        return None  # DICOMDIR, structured reports, RT structure sets, ...
    if str(header.get("Modality", "")).strip().upper() in NON_IMAGE_MODALITIES:
        return None
    return header


def _sop_class(header: Dataset) -> uid.UID | None:
    """The SOP Class UID from the dataset, else from the file meta (some anonymised files empty the former)."""
    for value in (header.get("SOPClassUID"), getattr(header, "file_meta", {}).get("MediaStorageSOPClassUID")):
        if value is not None and str(value).strip():
            return uid.UID(str(value).strip())
    return None


def _candidate_files(folder: Path) -> tuple[list[_SliceFile], int, list[str]]:
    """(DICOM image files directly in `folder`, number of other files ignored, names of the subfolders)."""
    slices, ignored, subfolders = [], 0, []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            subfolders.append(path.name)
            continue
        header = _read_header(path)
        if header is None:
            ignored += 1
        else:
            slices.append(_SliceFile(path, header))
    return slices, ignored, subfolders


def _series_label(files: list[_SliceFile]) -> str:
    """A one-line description of a series: UID, modality, description, number, file count."""
    first = files[0]
    parts = [f"SeriesInstanceUID {first.text('SeriesInstanceUID') or '(empty)'}"]
    if first.text("Modality"):
        parts.append(first.text("Modality"))
    if first.text("SeriesDescription"):
        parts.append(repr(first.text("SeriesDescription")))
    if first.text("SeriesNumber"):
        parts.append(f"series number {first.text('SeriesNumber')}")
    parts.append(f"{len(files)} file{'s' if len(files) != 1 else ''}")
    return ", ".join(parts)


def _group_by_series(files: list[_SliceFile]) -> dict[str, list[_SliceFile]]:
    groups: dict[str, list[_SliceFile]] = {}
    for f in files:
        groups.setdefault(f.text("SeriesInstanceUID"), []).append(f)
    return groups


def _select_series(folder: Path, files: list[_SliceFile], series_uid: str | None) -> list[_SliceFile]:
    groups = _group_by_series(files)
    if series_uid is not None:
        if series_uid not in groups:
            known = "; ".join(_series_label(g) for g in groups.values())
            raise InputError(folder, f"has no DICOM series with SeriesInstanceUID {series_uid} (it holds: {known})")
        return groups[series_uid]
    if len(groups) > 1:
        listing = "; ".join(f"({n}) {_series_label(g)}" for n, g in enumerate(groups.values(), start=1))
        raise InputError(
            folder,
            f"holds {len(groups)} DICOM series: {listing}; pass a folder with only one series "
            "(move each series into its own folder)",
        )
    return next(iter(groups.values()))


# ------------------------------------------------------------------------------------------------ checks
def _check_modality(folder: Path, files: list[_SliceFile], require_modality: str | None) -> str | None:
    modality = files[0].text("Modality").upper() or None
    if require_modality is not None and modality != require_modality.upper():
        found = f"an {modality}" if modality and modality[0] in "AEFHILMNORSX" else f"a {modality}"
        found = f"{found} series (Modality {modality})" if modality else "a series without a Modality tag"
        raise InputError(folder, f"is {found}; this task needs a {require_modality.upper()} volume")
    return modality


def _check_volume_files(folder: Path, files: list[_SliceFile]) -> None:
    """More than one file, none multi-frame, colour or MONOCHROME1."""
    if len(files) == 1:
        frames = int(files[0].header.get("NumberOfFrames", 1) or 1)
        if frames <= 1:
            raise InputError(
                folder,
                f"holds a single 2-D DICOM image ({files[0].path.name}); this task needs a 3-D volume: "
                "a series of one file per slice",
            )
    for f in files:
        frames = int(f.header.get("NumberOfFrames", 1) or 1)
        if frames > 1:
            raise InputError(
                f.path,
                f"is a multi-frame DICOM file ({frames} frames); only series of one file per slice are read: "
                "convert it to a classic single-frame series (e.g. with dcm2niix or Slicer) first",
            )
        if int(f.header.get("SamplesPerPixel", 1)) != 1:
            raise InputError(f.path, "is a colour image; a volume series must be greyscale")
        photometric = f.text("PhotometricInterpretation").upper()
        if photometric not in ("", "MONOCHROME2"):
            raise InputError(f.path, f"has Photometric Interpretation {photometric}; a volume series must be "
                                     "MONOCHROME2")


_NAMES = {"ImagePositionPatient": "Image Position (Patient)", "ImageOrientationPatient": "Image Orientation (Patient)",
          "PixelSpacing": "Pixel Spacing"}


def _floats(f: _SliceFile, keyword: str, count: int) -> np.ndarray:
    value = f.header.get(keyword)
    try:
        numbers = np.array([float(v) for v in value], dtype=float) if value is not None else None
    except (TypeError, ValueError):
        numbers = None
    if numbers is None or numbers.shape != (count,) or not np.all(np.isfinite(numbers)):
        raise InputError(
            f.path,
            f"has no valid {_NAMES.get(keyword, keyword)} ({count} numbers expected, found {value!r}): "
            "the slices cannot be placed in 3-D",
        )
    return numbers


def _check_consistent(folder: Path, files: list[_SliceFile]) -> tuple[np.ndarray, np.ndarray]:
    """Same Rows/Columns, Pixel Spacing and orientation in every file.

    Returns (direction 3×3 in LPS, columns = row cosine, column cosine, normal; pixel spacing (x, y) in mm)."""
    first = files[0]
    size = (int(first.header.Rows), int(first.header.Columns))
    orientation = _floats(first, "ImageOrientationPatient", 6)
    pixel_spacing = _floats(first, "PixelSpacing", 2)
    for f in files[1:]:
        other_size = (int(f.header.Rows), int(f.header.Columns))
        if other_size != size:
            raise InputError(
                folder,
                f"inconsistent image size between files: {first.path.name} is {size[0]}×{size[1]} (rows×columns) "
                f"but {f.path.name} is {other_size[0]}×{other_size[1]}",
            )
        _require_close(folder, first, f, "ImageOrientationPatient", orientation, ORIENTATION_TOLERANCE,
                       why=" (a localizer or a second stack mixed in?)")
        _require_close(folder, first, f, "PixelSpacing", pixel_spacing, SPACING_MATCH_TOLERANCE_MM, unit=" mm")
    if np.any(pixel_spacing <= 0):
        raise InputError(first.path, f"has a non-positive Pixel Spacing {_fmt(pixel_spacing)}")
    row_cos, col_cos = orientation[:3], orientation[3:]
    if min(np.linalg.norm(row_cos), np.linalg.norm(col_cos)) < 1e-6:
        raise InputError(first.path, f"has a degenerate Image Orientation (Patient) {_fmt(orientation)}")
    row_cos, col_cos = row_cos / np.linalg.norm(row_cos), col_cos / np.linalg.norm(col_cos)
    if abs(float(row_cos @ col_cos)) > 1e-3:
        raise InputError(first.path, f"has a non-orthogonal Image Orientation (Patient) {_fmt(orientation)}")
    normal = np.cross(row_cos, col_cos)
    direction = np.column_stack([row_cos, col_cos, normal / np.linalg.norm(normal)])
    return direction, np.array([pixel_spacing[1], pixel_spacing[0]])  # DICOM stores (row, column) spacing


def _require_close(folder: Path, first: _SliceFile, f: _SliceFile, keyword: str, reference: np.ndarray,
                   tolerance: float, unit: str = "", why: str = "") -> None:
    """InputError when `f`'s `keyword` (as many numbers as `reference`, the value in `first`) differs from
    `reference` by more than `tolerance` in any component."""
    other = _floats(f, keyword, reference.size)
    if np.max(np.abs(other - reference)) > tolerance:
        raise InputError(
            folder,
            f"inconsistent {_NAMES[keyword]} between files: {first.path.name} has {_fmt(reference)}{unit} but "
            f"{f.path.name} has {_fmt(other)}{unit}{why}",
        )


def _fmt(values) -> str:
    return "(" + ", ".join(f"{float(v):.6g}" for v in values) + ")"


def _missing_slices_reason(files, positions, along, gaps, missing, spacing, normal) -> str:
    """'truncated series: N slices missing between A and B, expected at LPS (...)' for the first gaps."""
    descriptions = []
    for k in missing[:3]:
        count = max(1, int(round(gaps[k] / spacing)) - 1)
        expected = [positions[k] + (j + 1) * spacing * normal for j in range(count)]
        where = "; ".join(f"LPS {_fmt(p)} mm" for p in expected[:3]) + ("; ..." if count > 3 else "")
        descriptions.append(
            f"{count} slice{'s' if count > 1 else ''} missing between {files[k].path.name} "
            f"({along[k]:.4g} mm along the slice normal) and {files[k + 1].path.name} ({along[k + 1]:.4g} mm), "
            f"expected at {where}"
        )
    more = f"; and {len(missing) - 3} more gaps" if len(missing) > 3 else ""
    return (f"truncated series: {'; '.join(descriptions)}{more} (slice spacing {spacing:.4g} mm, "
            f"{len(files)} files present)")


def _sort_along_normal(folder: Path, files: list[_SliceFile], direction: np.ndarray,
                       pixel_spacing: np.ndarray) -> tuple[list[_SliceFile], float]:
    """Files sorted by position along the slice normal, and the slice spacing (mm); refuses gaps and irregularity."""
    normal = direction[:, 2]
    positions = np.stack([_floats(f, "ImagePositionPatient", 3) for f in files])
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    files = [files[k] for k in order]
    positions, along = positions[order], along[order]
    gaps = np.diff(along)

    duplicates = np.flatnonzero(gaps < 1e-3)
    if duplicates.size:
        k = int(duplicates[0])
        raise InputError(
            folder,
            f"two files lie at the same slice position {along[k]:.4g} mm along the slice normal "
            f"({files[k].path.name} and {files[k + 1].path.name}): the folder mixes several acquisitions "
            "(phases, echoes or a repeated scan) in one series",
        )

    shift = (positions - positions[0]) - np.outer(along - along[0], normal)
    max_shift = float(np.max(np.linalg.norm(shift, axis=1)))
    if max_shift > IN_PLANE_SHIFT_TOLERANCE * float(np.min(pixel_spacing)):
        raise InputError(
            folder,
            f"the slices are shifted in-plane against each other (by up to {max_shift:.3g} mm: gantry tilt or a "
            "sheared acquisition); such a volume is not a regular grid: resample it first",
        )

    median = float(np.median(gaps))
    missing = np.flatnonzero(gaps > MISSING_SLICE_FACTOR * median)
    reference = median
    if not missing.size:
        # With few slices a missing one can lift the median: gaps that are all whole multiples of the smallest
        # gap, some of them two or more, are missing slices too.
        smallest = float(gaps.min())
        multiples = gaps / smallest
        whole = np.abs(multiples - np.rint(multiples)) * smallest <= max(0.01, SPACING_TOLERANCE * smallest)
        if np.all(whole) and np.any(np.rint(multiples) >= 2):
            missing, reference = np.flatnonzero(np.rint(multiples) >= 2), smallest
    if missing.size:
        raise InputError(folder, _missing_slices_reason(files, positions, along, gaps, missing, reference, normal))

    spacing = float((along[-1] - along[0]) / (len(files) - 1))
    residual = along - (along[0] + spacing * np.arange(len(files)))
    if float(np.max(np.abs(residual))) > max(0.01, SPACING_TOLERANCE * spacing):
        raise InputError(
            folder,
            f"non-uniform slice spacing: gaps between consecutive slices range from {gaps.min():.4g} to "
            f"{gaps.max():.4g} mm (median {median:.4g} mm); resample the series to uniform spacing first",
        )
    return files, spacing


def _check_decoders(folder: Path, files: list[_SliceFile]) -> None:
    """Compressed pixel data needs a pydicom decoder plugin: say which package to install before decoding."""
    syntaxes = {str(getattr(f.header, "file_meta", {}).get("TransferSyntaxUID", uid.ExplicitVRLittleEndian))
                for f in files}
    for syntax in sorted(syntaxes):
        syntax = uid.UID(syntax)
        if not syntax.is_transfer_syntax or not syntax.is_compressed:
            continue  # unknown UIDs and native data: load_dicom explains
        status = decoder_status(syntax)
        if not status.supported:
            reason = (f"pixel data is compressed as {syntax.name}, which no pydicom decoder supports: convert the "
                      "series to an uncompressed or JPEG 2000 transfer syntax")
            raise InputError(folder, reason)
        if status.available:
            continue
        hint = next((text for family, text in _DECODER_HINTS if syntax.name.startswith(family)), None)
        if hint is None:
            hint = status.missing or "a pydicom pixel-data plugin"
        raise InputError(
            folder,
            f"cannot decode the pixel data: it is compressed as {syntax.name} and no decoder for it is installed; "
            f"install {hint}",
        )


# ------------------------------------------------------------------------------------------------ entry points
def load_dicom_series(folder: str | Path, *, require_modality: str | None = None,
                      series_uid: str | None = None) -> Image:
    """Read the DICOM series in `folder` into a volume ``[slice, row, col]`` (float32; CT in HU); see the module
    docstring for geometry and checks.

    `require_modality`: e.g. "CT": a series of another modality is refused. `series_uid`: the Series Instance UID to
    read when the folder holds several series (by default several series are an error).
    meta: format "DICOM series", modality, path (the folder), series_description, series_instance_uid,
    series_number, study_instance_uid, frame_of_reference_uid, n_files (files of the series), files and
    sop_instance_uids (per slice, in slice order), slice_thickness (Slice Thickness tag in mm, informational, may
    differ from the spacing; None when absent), window ((center, width) of the first file's first window, a display
    hint, or None), transfer_syntax, photometric, spacing_source, ignored_files (files in the folder that are not
    slices of an image series).
    Raises `InputError` naming the folder (or the offending file) and the reason.
    """
    folder = Path(folder)
    if not folder.exists():
        raise InputError(folder, "no such folder")
    if not folder.is_dir():
        raise InputError(folder, "is not a folder (a DICOM series is read from the folder holding its files)")
    try:
        files, ignored, subfolders = _candidate_files(folder)
    except PermissionError as error:
        raise InputError(folder, f"cannot be read: {error.strerror or error}") from None
    if not files:
        if ignored == 0 and not subfolders:
            raise InputError(folder, "is an empty folder: no DICOM files")
        where = ""
        if subfolders:
            where = f" (it has subfolders {', '.join(subfolders[:5])}: pass the one holding the series)"
        raise InputError(folder, f"holds no DICOM image files ({ignored} other files){where}")

    files = _select_series(folder, files, series_uid)
    modality = _check_modality(folder, files, require_modality)
    _check_volume_files(folder, files)
    direction, pixel_spacing = _check_consistent(folder, files)
    files, slice_spacing = _sort_along_normal(folder, files, direction, pixel_spacing)
    _check_decoders(folder, files)

    rows, cols = int(files[0].header.Rows), int(files[0].header.Columns)
    array = np.empty((len(files), rows, cols), dtype=np.float32)
    for k, f in enumerate(files):
        one_slice = load_dicom(f.path)  # decoding + Modality LUT (HU for CT); errors name the file
        if one_slice.shape != (rows, cols):
            raise InputError(f.path, f"decoded pixel array has shape {one_slice.shape}, expected {(rows, cols)}")
        array[k] = one_slice.array

    first = files[0]
    meta: dict[str, Any] = {
        "format": "DICOM series",
        "modality": modality,
        "path": str(folder),
        "series_description": first.text("SeriesDescription") or None,
        "series_instance_uid": first.text("SeriesInstanceUID") or None,
        "series_number": first.text("SeriesNumber") or None,
        "study_instance_uid": first.text("StudyInstanceUID") or None,
        "frame_of_reference_uid": first.text("FrameOfReferenceUID") or None,
        "n_files": len(files),
        "files": [str(f.path) for f in files],
        "sop_instance_uids": [f.text("SOPInstanceUID") or None for f in files],
        "slice_thickness": _optional_float(first.header.get("SliceThickness")),
        "window": _first_window(first.header),
        "transfer_syntax": one_slice.meta.get("transfer_syntax"),
        "photometric": first.text("PhotometricInterpretation") or None,
        "spacing_source": "PixelSpacing (in-plane), ImagePositionPatient (between slices)",
        "ignored_files": ignored,
    }
    return Image(
        array=array,
        spacing=(float(pixel_spacing[0]), float(pixel_spacing[1]), slice_spacing),
        origin=tuple(float(v) for v in _floats(first, "ImagePositionPatient", 3)),
        direction=direction,
        meta=meta,
    )


def _optional_float(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _first_window(header: Dataset) -> tuple[float, float] | None:
    center, width = header.get("WindowCenter"), header.get("WindowWidth")
    if isinstance(center, pydicom.multival.MultiValue):
        center = center[0] if len(center) else None
    if isinstance(width, pydicom.multival.MultiValue):
        width = width[0] if len(width) else None
    center, width = _optional_float(center), _optional_float(width)
    return None if center is None or width is None else (center, width)


def series_slice_reason(path: str | Path) -> str | None:
    """For a single-frame DICOM file that is one slice of a multi-file series in its folder: the reason to give
    a caller that needs a volume ("is one slice of a 20-file CT series ...: pass the folder ... instead").
    None when the file is not DICOM, is multi-frame, or has no sibling slices of the same series.

    Siblings are the files beside it with the same Series Instance UID (when that is empty: the same modality,
    size and orientation) at another position.
    """
    path = Path(path)
    try:
        header = _read_header(path)
    except InputError:
        return None
    if header is None or int(header.get("NumberOfFrames", 1) or 1) > 1:
        return None
    me = _SliceFile(path, header)

    def same_series(other: _SliceFile) -> bool:
        if other.text("SeriesInstanceUID") != me.text("SeriesInstanceUID"):
            return False
        if me.text("SeriesInstanceUID"):
            return True
        return all(other.text(k) == me.text(k) for k in ("Modality", "Rows", "Columns", "ImageOrientationPatient"))

    siblings = 0
    for other_path in path.parent.iterdir():
        if other_path == path or other_path.name.startswith(".") or not other_path.is_file():
            continue
        try:
            other_header = _read_header(other_path)
        except InputError:
            continue
        if other_header is not None and same_series(_SliceFile(other_path, other_header)):
            siblings += 1
    if siblings == 0:
        return None
    modality = me.text("Modality") or "DICOM"
    return (
        f"is one slice (a 2-D image) of a {siblings + 1}-file {modality} DICOM series; this task needs the 3-D "
        f"volume: pass the folder {path.parent} instead of one of its files"
    )
