"""`load_image`: one entry point that reads any supported file into an `Image` (see `uqseg.io.image`).

Dispatch is by content first (magic bytes), then by file name:
- DICOM: the 'DICM' marker at byte 128, or a name ending in .dcm/.DCM or without an extension → `uqseg.io.dicom`;
- PNG / JPEG / TIFF / BMP / GIF (by signature or extension) → Pillow, `uqseg.io.picture`;
- NRRD / NIfTI / MetaImage (.nrrd .nhdr .nii .nii.gz .mha .mhd) → SimpleITK, read here;
- a folder, when a volume is wanted (ndim 3 or None) → a DICOM series, `uqseg.io.dicom_series.load_dicom_series`.
Anything else is an `InputError` "not an image file: ...". Every failure is an `InputError(path, reason)`.

Volumes read with SimpleITK keep ITK's geometry, which already is LPS for every format (ITK converts NIfTI's RAS
on reading): `spacing` (x, y, z) mm, `origin` LPS mm, `direction` 3×3 with the index axes as columns; the array is
``[slice, row, col]`` = ITK's (z, y, x). meta: format, spacing_source "header", modality None, path.
Two things ITK's NIfTI reader does silently are undone here (`_nifti_fixups`): it turns NaN and ±inf voxels into 0
— they are put back from the file's own data, so that `uqseg.io.input_checks` sees (and flags or refuses) them — and
it replaces a zero or non-finite pixdim by 1 mm — then spacing_source is "default" with a ``spacing_note``. A header
spacing of 0 in NRRD / MetaImage files, which ITK refuses, is reported as such.
"""

from __future__ import annotations

import gzip
import math
import re
import struct
from pathlib import Path

import numpy as np

from uqseg.errors import InputError
from uqseg.io.dicom import load_dicom
from uqseg.io.dicom_series import load_dicom_series, series_slice_reason
from uqseg.io.image import Image
from uqseg.io.picture import load_picture, rgb_to_grey

PICTURE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif"}
VOLUME_SUFFIXES = {".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd"}
DICOM_SUFFIXES = {".dcm", ".dicom", ""}

_PICTURE_SIGNATURES = (
    b"\x89PNG\r\n\x1a\n",  # PNG
    b"\xff\xd8\xff",  # JPEG
    b"II*\x00",  # TIFF little-endian
    b"MM\x00*",  # TIFF big-endian
    b"BM",  # BMP
    b"GIF87a",
    b"GIF89a",
)


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _sniff(path: Path, head: bytes) -> str | None:
    """'dicom', 'picture', 'volume' or None from the first bytes and the name."""
    if head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(_PICTURE_SIGNATURES):
        return "picture"
    suffix = _suffix(path)
    if head.startswith(b"NRRD") or head[344:348] in (b"n+1\x00", b"ni1\x00") or head.startswith(b"ObjectType"):
        return "volume"
    if suffix in VOLUME_SUFFIXES:
        return "volume"
    if suffix in PICTURE_SUFFIXES:
        return "picture"
    if suffix in DICOM_SUFFIXES:
        return "dicom"
    return None


def _describe_head(head: bytes) -> str:
    text = head[:16]
    return repr(text)[1:] if text else "nothing"


def _itk_reason(error: Exception) -> str:
    """The most specific line of an ITK exception (the last one), without ITK's source-file and class prefixes."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    detail = lines[-1] if len(lines) > 1 else (lines[0] if lines else "unreadable")
    return re.sub(r"^(\[\w+\]\s*|\w+::ERROR:\s*(\w+\(0x[0-9a-f]+\):\s*)?)", "", detail)


#: NIfTI datatype codes of floating-point voxels (the only ones that can hold NaN / inf) → numpy type
_NIFTI_FLOATS = {16: "f4", 64: "f8"}
#: voxels read at a time when looking for the non-finite voxels ITK zeroed (bounded memory)
_NIFTI_CHUNK = 1 << 22


def _nifti_header(path: Path) -> dict | None:
    """byte order, dim, datatype, pixdim and vox_offset of a NIfTI-1 or NIfTI-2 file (.nii or .nii.gz); None when
    the header cannot be read."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as stream:
            head = stream.read(540)
    except (OSError, EOFError, gzip.BadGzipFile):
        return None
    for endian in "<>":
        if len(head) >= 348 and struct.unpack(endian + "i", head[:4])[0] == 348:
            return {"endian": endian, "opener": opener, "dim": struct.unpack(endian + "8h", head[40:56]),
                    "datatype": struct.unpack(endian + "h", head[70:72])[0],
                    "pixdim": struct.unpack(endian + "8f", head[76:108]),
                    "vox_offset": int(struct.unpack(endian + "f", head[108:112])[0])}
        if len(head) >= 540 and struct.unpack(endian + "i", head[:4])[0] == 540:
            return {"endian": endian, "opener": opener, "dim": struct.unpack(endian + "8q", head[16:80]),
                    "datatype": struct.unpack(endian + "h", head[12:14])[0],
                    "pixdim": struct.unpack(endian + "8d", head[104:168]),
                    "vox_offset": int(struct.unpack(endian + "q", head[168:176])[0])}
    return None


def _restore_nonfinite(header: dict, path: Path, array: np.ndarray) -> None:
    """Put the NaN / ±inf voxels of a float NIfTI back into `array` (ITK read them as 0), chunk by chunk."""
    dtype = np.dtype(header["endian"] + _NIFTI_FLOATS[header["datatype"]])
    flat = array.reshape(-1)
    done = 0
    with header["opener"](path, "rb") as stream:
        stream.seek(header["vox_offset"])
        while done < flat.size:
            count = min(_NIFTI_CHUNK, flat.size - done)
            data = stream.read(count * dtype.itemsize)
            if len(data) < count * dtype.itemsize:
                return
            values = np.frombuffer(data, dtype)
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size:
                flat[done + bad] = values[bad]
            done += count


def _nifti_fixups(path: Path, array: np.ndarray, spacing: tuple, meta: dict) -> None:
    """Undo what ITK's NIfTI reader does silently (module docstring); changes `array` and `meta` in place."""
    header = _nifti_header(path)
    if header is None:
        return
    dim = header["dim"]
    axes = int(dim[0])
    if not 1 <= axes <= 7 or int(np.prod([int(d) for d in dim[1:axes + 1]])) != array.size:
        return  # vector / time series / odd layout: leave ITK's reading as it is
    bad_axes = [i for i in range(min(axes, 3)) if not (math.isfinite(header["pixdim"][i + 1])
                                                        and header["pixdim"][i + 1] > 0) and spacing[i] == 1.0]
    if bad_axes:
        shown = ", ".join(f"{header['pixdim'][i + 1]:g}" for i in range(min(axes, 3)))
        meta["spacing_source"] = "default"
        meta["spacing_note"] = f"NIfTI pixdim ({shown}) is not positive; the reader assumed 1 mm"
    if header["datatype"] in _NIFTI_FLOATS and array.dtype.kind == "f" and not np.all(array):
        _restore_nonfinite(header, path, array)


def _load_volume(path: Path) -> Image:
    """NRRD / NIfTI / MetaImage through SimpleITK, geometry kept in LPS."""
    import SimpleITK as sitk

    try:
        itk_image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        if "Zero-valued spacing" in str(error) or re.search(r"spacing \(0\) invalid", str(error)):
            raise InputError(path, "has a voxel spacing of 0 in its header: it cannot be placed in millimetres "
                                   f"({_itk_reason(error)})") from None
        raise InputError(path, f"cannot be read as a {_suffix(path) or 'volume'} image: {_itk_reason(error)}") from None
    dimension = itk_image.GetDimension()
    if dimension not in (2, 3):
        raise InputError(path, f"is a {dimension}-D image; only 2-D images and 3-D volumes are supported")
    array = sitk.GetArrayFromImage(itk_image)  # (z, y, x[, components])
    components = itk_image.GetNumberOfComponentsPerPixel()
    if components in (3, 4):
        array = rgb_to_grey(array)
    elif components != 1:
        raise InputError(path, f"has {components} components per pixel; expected a grey or RGB image")
    spacing = tuple(float(s) for s in itk_image.GetSpacing())
    origin = tuple(float(o) for o in itk_image.GetOrigin())
    direction = np.asarray(itk_image.GetDirection(), dtype=float).reshape(dimension, dimension)
    if dimension == 2:  # a 2-D file is a one-slice volume in the patient frame
        direction = np.block([[direction, np.zeros((2, 1))], [np.zeros((1, 2)), np.ones((1, 1))]])
        origin = origin + (0.0,)
    meta = {
        "format": {".nii": "NIfTI", ".nii.gz": "NIfTI", ".mha": "MetaImage", ".mhd": "MetaImage"}.get(
            _suffix(path), "NRRD"
        ),
        "modality": None,
        "spacing_source": "header",
        "path": str(path),
    }
    pixels = np.ascontiguousarray(array, dtype=np.float32)
    if meta["format"] == "NIfTI" and components == 1:
        if not pixels.flags.writeable:
            pixels = pixels.copy()
        _nifti_fixups(path, pixels, spacing, meta)
    return Image(
        array=pixels,
        spacing=spacing,
        origin=origin,
        direction=direction,
        meta=meta,
    )


def _as_2d(path: Path, image: Image) -> Image:
    """A one-slice volume becomes 2-D (x/y spacing kept); more slices cannot."""
    if image.ndim == 2:
        return image
    slices = image.shape[0]
    if slices != 1:
        raise InputError(path, f"is a 3-D volume ({slices} slices); this task needs a 2-D image")
    return Image(
        array=image.array[0],
        spacing=tuple(image.spacing[:2]),
        origin=image.origin,
        direction=image.direction,
        meta=dict(image.meta),
    )


def load_image(path: str | Path, *, ndim: int | None = 2) -> Image:
    """Read an image file into an `Image`.

    `ndim`: 2 — the caller needs a 2-D image: a one-slice volume is squeezed to ``[row, col]``, a volume with more
    slices or a folder raises `InputError`; 3 — the caller needs a volume ``[slice, row, col]``: a folder is read as
    a DICOM series (`load_dicom_series`), a 2-D image raises `InputError` (for one slice of a multi-file DICOM
    series the reason says to pass its folder); None — return whatever the file (or the series folder) holds.
    Raises `InputError` for a missing, empty, unreadable or unsupported file, always naming the path and the reason.
    """
    if ndim not in (2, 3, None):
        raise ValueError(f"ndim must be 2, 3 or None, got {ndim!r}")
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or folder")
    if path.is_dir():
        if ndim == 2:
            raise InputError(path, "is a folder; this task needs a single 2-D image file")
        return load_dicom_series(path)
    try:
        with path.open("rb") as stream:
            head = stream.read(352)
    except OSError as error:
        raise InputError(path, f"cannot be read: {error.strerror or error}") from None
    if not head:
        raise InputError(path, "empty file (0 bytes)")

    kind = _sniff(path, head)
    if kind == "dicom":
        image = load_dicom(path)
    elif kind == "picture":
        if not head.startswith(_PICTURE_SIGNATURES) and _suffix(path) in {".png", ".jpg", ".jpeg", ".gif", ".bmp"}:
            raise InputError(
                path, f"not an image file: named {_suffix(path)} but its content starts with {_describe_head(head)}"
            )
        image = load_picture(path)
    elif kind == "volume":
        image = _load_volume(path)
    else:
        raise InputError(
            path,
            "not an image file: content is not PNG, JPEG, TIFF, BMP, GIF, DICOM, NRRD, NIfTI or MetaImage "
            f"(it starts with {_describe_head(head)})",
        )

    if ndim == 2:
        return _as_2d(path, image)
    if ndim == 3 and image.ndim != 3:
        if kind == "dicom":
            reason = series_slice_reason(path)
            if reason is not None:
                raise InputError(path, reason)
        raise InputError(path, "is a 2-D image; this task needs a 3-D volume")
    return image
