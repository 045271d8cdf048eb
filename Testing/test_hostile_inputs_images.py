"""Images the model cannot see: every task refuses them with one line or processes them and flags them `ood`.

`CASES` (below, as data) is the list of input classes; `docs/hostile-inputs.md` and the README table "input class →
what the user gets" are written from it. Each case makes its input (small, generated, or derived from a real sample
image), runs `uqseg predict` in-process and asserts one of:
- refused: exit 2, exactly one stderr line ``error: <file>: <reason>`` naming the input and holding `expect` words,
  no case folder written;
- flagged: exit 0, nothing on stderr, summary.json with ``ood`` true and every code of `expect` in ``flags`` (with a
  sentence for each in ``flag_details``);
- processed: exit 0, nothing on stderr, a summary (for inputs that are unusual only in their encoding).
Never exit 0 silently, never a traceback. `test_warnings_never_reach_stderr` runs a batch in a subprocess, where
library warnings would really print (pytest captures them in-process).
"""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from cli_run import run_cli, stderr_lines

REFUSED, FLAGGED, PROCESSED = "refused", "flagged", "processed"


@dataclass(frozen=True)
class Case:
    task: str
    input_class: str  # what the README table calls it
    made: str  # how the input is made
    outcome: str  # REFUSED, FLAGGED or PROCESSED
    expect: tuple  # refused: words of the reason; flagged: the flag codes
    gets: str  # what the user gets, as a short phrase
    maker: str  # name of the function in MAKERS that writes the input
    args: tuple = ()  # extra CLI arguments (kept small for time)


CASES = [
    # ------------------------------------------------------------------------------------------------ mammo-breast
    Case("mammo-breast", "constant PNG", "240 x 480 8-bit PNG, every pixel 128", REFUSED,
         ("has no contrast", "every pixel is 128"), "refused: has no contrast: every pixel is 128", "constant_png"),
    Case("mammo-breast", "all-zero PNG", "240 x 480 8-bit PNG, every pixel 0", REFUSED,
         ("has no contrast", "every pixel is 0"), "refused: has no contrast: every pixel is 0", "zero_png"),
    Case("mammo-breast", "all-NaN TIFF", "240 x 480 float32 TIFF, every pixel NaN", REFUSED,
         ("has no contrast", "every pixel is NaN"), "refused: has no contrast: every pixel is NaN", "nan_tiff"),
    Case("mammo-breast", "mostly-NaN TIFF", "MLO phantom as float32 TIFF, top 70 % of the rows NaN", REFUSED,
         ("70 %", "NaN", "too much of the image is missing"),
         "refused: 70 % of its pixels are NaN: too much of the image is missing", "mostly_nan_tiff"),
    Case("mammo-breast", "TIFF with some NaN / inf pixels", "MLO phantom as float32 TIFF, a NaN band (10 % of the "
         "rows) and a few +inf pixels", FLAGGED, ("nan_pixels",),
         "processed; NaN/inf pixels filled with the image minimum; ood, flag nan_pixels", "some_nan_tiff",
         ("--samples", "2")),
    Case("mammo-breast", "no contrast (float noise on a constant)", "float32 TIFF, 1000 + uniform noise of 0.001",
         REFUSED, ("has no contrast", "vary by only"), "refused: has no contrast: its values vary by only ...",
         "noise_tiff"),
    Case("mammo-breast", "nearly blank PNG", "240 x 480 PNG, 0 except one 10 x 10 patch of 255 (0.1 %)", REFUSED,
         ("has no contrast", "at least 99 %"), "refused: has no contrast: at least 99 % of its pixels are 0",
         "sparse_png"),
    Case("mammo-breast", "thumbnail", "16 x 24 PNG", REFUSED, ("too small",),
         "refused: too small (at least 32 pixels a side)", "thumbnail_png"),
    Case("mammo-breast", "strip", "600 x 40 PNG", REFUSED, ("strip", "not a mammogram"),
         "refused: a strip, not a mammogram (at most 5:1)", "strip_png"),
    Case("mammo-breast", "MG DICOM with Pixel Spacing 0", "MLO phantom as MG DICOM, PixelSpacing 0\\0", FLAGGED,
         ("spacing_implausible", "spacing_from_default"),
         "processed with the default spacing; ood, flags spacing_implausible + spacing_from_default",
         "mg_spacing_zero", ("--fast",)),
    Case("mammo-breast", "MG DICOM with negative Pixel Spacing", "MLO phantom as MG DICOM, PixelSpacing "
         "-0.1\\-0.1", FLAGGED, ("spacing_implausible", "spacing_from_default"),
         "processed with the default spacing; ood, flags spacing_implausible + spacing_from_default",
         "mg_spacing_negative", ("--fast",)),
    Case("mammo-breast", "MG DICOM with 50 mm Pixel Spacing", "MLO phantom as MG DICOM, PixelSpacing 50\\50",
         FLAGGED, ("spacing_implausible",),
         "processed (the model uses its 240 mm long-side fallback); ood, flag spacing_implausible",
         "mg_spacing_50", ("--fast",)),
    Case("mammo-breast", "truncated MG DICOM", "MLO phantom as RLE MG DICOM, cut at 60 % of its bytes", REFUSED,
         ("truncated",), "refused: truncated or corrupt DICOM file: an image object without its pixel data",
         "mg_truncated"),
    Case("mammo-breast", "DICOM SEG", "a 3-frame DICOM Segmentation object (1-bit)", REFUSED,
         ("Segmentation object", "not an image"), "refused: is a DICOM Segmentation object (SEG), not an image",
         "seg_dicom"),
    Case("mammo-breast", "decompression-bomb PNG", "a 1-bit PNG just above Pillow's 89.5-megapixel limit "
         "(a few kB on disk)", REFUSED, ("decompression-bomb limit", "too large"),
         "refused: more than Pillow's decompression-bomb limit: too large to read safely", "bomb_png"),
    Case("mammo-breast", "JPEG-LS MG DICOM", "a real DDSM mammogram (shared data; else the MLO phantom) as MG DICOM, "
         "JPEG-LS Lossless (pyjpegls)", PROCESSED, (), "processed like any other DICOM (pyjpegls decodes it)",
         "mg_jpegls", ("--fast",)),
    # ---------------------------------------------------------------------------------------------- mammo-pectoral
    Case("mammo-pectoral", "constant PNG", "240 x 480 8-bit PNG, every pixel 128", REFUSED,
         ("has no contrast", "every pixel is 128"), "refused: has no contrast: every pixel is 128", "constant_png"),
    Case("mammo-pectoral", "all-NaN TIFF", "240 x 480 float32 TIFF, every pixel NaN", REFUSED,
         ("has no contrast", "every pixel is NaN"), "refused: has no contrast: every pixel is NaN", "nan_tiff"),
    Case("mammo-pectoral", "TIFF with some NaN / inf pixels", "MLO phantom as float32 TIFF, a NaN band (10 % of the "
         "rows) and a few +inf pixels", FLAGGED, ("nan_pixels",),
         "processed; NaN/inf pixels filled with the image minimum; ood, flag nan_pixels", "some_nan_tiff"),
    Case("mammo-pectoral", "MG DICOM with 50 mm Pixel Spacing", "MLO phantom as MG DICOM, PixelSpacing 50\\50",
         FLAGGED, ("spacing_implausible",), "processed; ood, flag spacing_implausible", "mg_spacing_50"),
    # ----------------------------------------------------------------------------------------------- cxr-landmarks
    Case("cxr-landmarks", "constant PNG", "240 x 480 8-bit PNG, every pixel 128", REFUSED,
         ("has no contrast", "every pixel is 128"), "refused: has no contrast: every pixel is 128", "constant_png"),
    Case("cxr-landmarks", "all-NaN TIFF", "240 x 480 float32 TIFF, every pixel NaN", REFUSED,
         ("has no contrast", "every pixel is NaN"), "refused: has no contrast: every pixel is NaN", "nan_tiff"),
    Case("cxr-landmarks", "TIFF with some NaN pixels", "chest phantom as float32 TIFF, a NaN band (10 % of the "
         "rows)", FLAGGED, ("nan_pixels",), "processed; NaN pixels filled with the image minimum; ood, flag "
         "nan_pixels", "chest_some_nan_tiff", ("--samples", "5")),
    Case("cxr-landmarks", "CR DICOM with Pixel Spacing 0", "chest phantom as CR DICOM, PixelSpacing 0\\0", FLAGGED,
         ("spacing_implausible", "spacing_from_default"),
         "processed (positions in pixels, mm values on 1 mm); ood, flags spacing_implausible + spacing_from_default",
         "cr_spacing_zero", ("--samples", "5")),
    Case("cxr-landmarks", "NRRD with a 5 mm pixel", "chest phantom as NRRD, spacing 5 x 5 mm (a 2.5 m long side)",
         FLAGGED, ("spacing_implausible",), "processed; ood, flag spacing_implausible", "chest_nrrd_5mm",
         ("--samples", "5")),
    Case("cxr-landmarks", "--samples 1", "chest phantom PNG with --samples 1", REFUSED,
         ("--samples 1", "at least 2 samples"), "refused (per file): --samples 1: needs at least 2 samples",
         "chest_png", ("--samples", "1")),
    # --------------------------------------------------------------------------------------------------- ct-organs
    Case("ct-organs", "NRRD with NaN voxels", "real CT crop (128 x 128 x 16) as float NRRD, 10 % of the voxels "
         "NaN", FLAGGED, ("nan_pixels",), "processed; NaN voxels filled with air (-1024 HU); ood, flag nan_pixels",
         "ct_nan_nrrd", ("--fast",)),
    Case("ct-organs", "NIfTI with NaN voxels", "the same crop as float32 NIfTI (ITK's reader turns NaN into 0; "
         "they are read back)", FLAGGED, ("nan_pixels",),
         "processed; NaN voxels filled with air (-1024 HU); ood, flag nan_pixels", "ct_nan_nifti", ("--fast",)),
    Case("ct-organs", "all-NaN NIfTI", "64 x 64 x 16 float32 NIfTI, every voxel NaN", REFUSED,
         ("has no contrast", "every voxel is NaN"), "refused: has no contrast: every voxel is NaN",
         "ct_all_nan_nifti"),
    Case("ct-organs", "mostly-NaN NRRD", "real CT crop, 60 % of the slices NaN", REFUSED,
         ("NaN", "too much of the image is missing"), "refused: 60 % of its voxels are NaN", "ct_mostly_nan_nrrd"),
    Case("ct-organs", "DICOM series with a NaN Rescale Slope", "the real CT sample series, RescaleSlope NaN",
         REFUSED, ("Rescale Slope", "not a finite number"),
         "refused: has a Rescale Slope of NaN, not a finite number", "ct_nan_slope_series"),
    Case("ct-organs", "0.001 mm voxels", "real CT crop as NIfTI with spacing 0.001 mm", REFUSED,
         ("voxel spacing of 0.001", "implausible"), "refused: a voxel spacing of 0.001 mm is implausible for a CT",
         "ct_spacing_tiny"),
    Case("ct-organs", "NIfTI with pixdim 0", "real CT crop as NIfTI, pixdim 0 (ITK's reader silently uses 1 mm)",
         REFUSED, ("no valid voxel spacing", "pixdim"), "refused: has no valid voxel spacing in its header",
         "ct_pixdim_zero"),
    Case("ct-organs", "NRRD with spacing 0", "real CT crop as NRRD, space directions all 0", REFUSED,
         ("voxel spacing of 0",), "refused: has a voxel spacing of 0 in its header", "ct_nrrd_spacing_zero"),
    Case("ct-organs", "constant volume", "64 x 64 x 16 NIfTI, every voxel -1000 HU", REFUSED,
         ("has no contrast", "every voxel is -1000"), "refused: has no contrast: every voxel is -1000",
         "ct_constant"),
    Case("ct-organs", "DICOM SEG", "a 3-frame DICOM Segmentation object (1-bit)", REFUSED,
         ("Segmentation object", "not an image"), "refused: is a DICOM Segmentation object (SEG), not an image "
         "(was: 'has only 3 slices')", "seg_dicom"),
]

REPO = Path(__file__).resolve().parents[1]
CT_SAMPLE = REPO / "Resources" / "SampleData" / "ct-abdomen"


def _shared_dir() -> Path:
    import os

    env = os.environ.get("UQSEG_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


# ---------------------------------------------------------------------------------------------------- the makers
def _png(path: Path, array: np.ndarray) -> Path:
    from PIL import Image as PILImage

    PILImage.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
    return path


def _tiff(path: Path, array: np.ndarray) -> Path:
    from PIL import Image as PILImage

    PILImage.fromarray(np.asarray(array, dtype=np.float32)).save(path)
    return path


def _mammo(shape=(480, 240)) -> np.ndarray:
    from uqseg.io.phantoms import mlo_phantom

    image, _, _ = mlo_phantom(shape, seed=4)
    return image.astype(np.float32)


def _chest(shape=(400, 360)) -> np.ndarray:
    from uqseg.cxr.phantom import chest_phantom

    image, _ = chest_phantom(shape, seed=3)
    return image.astype(np.float32)


def _dicom(path: Path, pixels: np.ndarray, *, sop_class, modality: str, bits: int = 16, compress=None,
           **tags) -> Path:
    """A minimal single-frame DICOM image (native little endian, then `compress`ed when given)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.PixelData = pixels.astype(np.uint16 if bits == 16 else np.uint8).tobytes()
    if compress is not None:
        ds.compress(compress[0], encoding_plugin=compress[1])
    ds.save_as(path, enforce_file_format=True)
    return path


def _mg_dicom(path: Path, spacing=None, compress=None, pixels=None) -> Path:
    from pydicom.uid import DigitalMammographyXRayImageStorageForPresentation

    tags = {"ViewPosition": "MLO", "ImageLaterality": "L", "PresentationIntentType": "FOR PRESENTATION"}
    if spacing is not None:
        tags["PixelSpacing"] = list(spacing)
    if pixels is None:
        pixels, bits = np.rint(_mammo() * 16), 16
    else:
        bits = 8 if pixels.dtype == np.uint8 else 16
    return _dicom(path, pixels, sop_class=DigitalMammographyXRayImageStorageForPresentation, modality="MG",
                  bits=bits, compress=compress, **tags)


def constant_png(d: Path) -> Path:
    return _png(d / "constant.png", np.full((480, 240), 128))


def zero_png(d: Path) -> Path:
    return _png(d / "zero.png", np.zeros((480, 240)))


def nan_tiff(d: Path) -> Path:
    return _tiff(d / "all_nan.tiff", np.full((480, 240), np.nan))


def mostly_nan_tiff(d: Path) -> Path:
    a = _mammo()
    a[: int(0.7 * a.shape[0])] = np.nan
    return _tiff(d / "mostly_nan.tiff", a)


def some_nan_tiff(d: Path) -> Path:
    a = _mammo()
    a[200:248] = np.nan
    a[300, 100:105] = np.inf
    return _tiff(d / "some_nan.tiff", a)


def noise_tiff(d: Path) -> Path:
    return _tiff(d / "noise.tiff", 1000 + np.random.default_rng(0).random((480, 240)) * 1e-3)


def sparse_png(d: Path) -> Path:
    a = np.zeros((480, 240))
    a[100:110, 50:60] = 255
    return _png(d / "sparse.png", a)


def thumbnail_png(d: Path) -> Path:
    return _png(d / "thumbnail.png", np.random.default_rng(1).integers(0, 255, (24, 16)))


def strip_png(d: Path) -> Path:
    return _png(d / "strip.png", np.random.default_rng(2).integers(0, 255, (40, 600)))


def mg_spacing_zero(d: Path) -> Path:
    return _mg_dicom(d / "spacing_zero.dcm", spacing=(0, 0))


def mg_spacing_negative(d: Path) -> Path:
    return _mg_dicom(d / "spacing_negative.dcm", spacing=(-0.1, -0.1))


def mg_spacing_50(d: Path) -> Path:
    return _mg_dicom(d / "spacing_50mm.dcm", spacing=(50, 50))


def mg_truncated(d: Path) -> Path:
    from pydicom.uid import RLELossless

    path = _mg_dicom(d / "truncated.dcm", spacing=(0.1, 0.1), compress=(RLELossless, "pydicom"))
    data = path.read_bytes()
    path.write_bytes(data[: int(0.6 * len(data))])
    return path


def seg_dicom(d: Path) -> Path:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    seg_class = "1.2.840.10008.5.1.4.1.1.66.4"  # Segmentation Storage
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = seg_class, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = seg_class, meta.MediaStorageSOPInstanceUID, "SEG"
    ds.Rows = ds.Columns = 64
    ds.NumberOfFrames = 3
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 1, 0, 0
    ds.SegmentationType = "BINARY"
    segment = Dataset()
    segment.SegmentNumber, segment.SegmentLabel, segment.SegmentAlgorithmType = 1, "liver", "MANUAL"
    ds.SegmentSequence = [segment]
    mask = np.zeros((3, 64, 64), np.uint8)
    mask[:, 16:48, 16:48] = 1
    ds.PixelData = np.packbits(mask.ravel(), bitorder="little").tobytes()
    path = d / "segmentation.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def bomb_png(d: Path) -> Path:
    """A valid 1-bit PNG whose size is just above Pillow's MAX_IMAGE_PIXELS (all zeros: a few kB compressed)."""
    from PIL import Image as PILImage

    side = math.isqrt(PILImage.MAX_IMAGE_PIXELS) + 8
    row = b"\x00" + bytes((side + 7) // 8)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()

    def chunk(tag: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))

    path = d / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def _real_mammogram() -> np.ndarray:
    """A real DDSM mammogram (8-bit, shared data) when available, else the MLO phantom."""
    from PIL import Image as PILImage

    png = _shared_dir() / "mammo_ddsm" / "images" / "A_0039_1.RIGHT_MLO.png"
    if png.is_file():
        return np.asarray(PILImage.open(png).convert("L"), dtype=np.uint8)
    return np.clip(np.rint(_mammo()), 0, 255).astype(np.uint8)


def mg_jpegls(d: Path) -> Path:
    from pydicom.uid import JPEGLSLossless

    pixels = _real_mammogram()
    pitch = round(240.0 / max(pixels.shape), 4)  # a plausible detector: the long side 240 mm
    return _mg_dicom(d / "jpegls.dcm", spacing=(pitch, pitch), pixels=pixels, compress=(JPEGLSLossless, "pyjpegls"))


def chest_png(d: Path) -> Path:
    return _png(d / "chest.png", np.clip(np.rint(_chest()), 0, 255))


def chest_some_nan_tiff(d: Path) -> Path:
    a = _chest()
    a[100:140] = np.nan
    return _tiff(d / "chest_some_nan.tiff", a)


def cr_spacing_zero(d: Path) -> Path:
    from pydicom.uid import ComputedRadiographyImageStorage

    return _dicom(d / "cr_spacing_zero.dcm", np.rint(_chest() * 16), sop_class=ComputedRadiographyImageStorage,
                  modality="CR", PixelSpacing=[0, 0], ViewPosition="PA")


def chest_nrrd_5mm(d: Path) -> Path:
    import SimpleITK as sitk

    itk = sitk.GetImageFromArray(np.clip(np.rint(_chest()), 0, 255).astype(np.uint8))
    itk.SetSpacing((5.0, 5.0))
    path = d / "chest_5mm.nrrd"
    sitk.WriteImage(itk, str(path))
    return path


def _ct_crop():
    """The real CT sample cropped to 128 x 128 x 16 voxels (body and air around it), as a SimpleITK image."""
    import SimpleITK as sitk

    ct = sitk.ReadImage(str(CT_SAMPLE / "ct.nii.gz"))
    return sitk.Cast(ct[64:192, 64:192, 2:18], sitk.sitkFloat32)


def _with_array(itk, array: np.ndarray):
    import SimpleITK as sitk

    out = sitk.GetImageFromArray(np.asarray(array, dtype=np.float32))
    out.CopyInformation(itk)
    return out


def _write(itk, path: Path) -> Path:
    import SimpleITK as sitk

    sitk.WriteImage(itk, str(path))
    return path


def _ct_with_nan(fraction_of_slices: float):
    import SimpleITK as sitk

    itk = _ct_crop()
    a = sitk.GetArrayFromImage(itk)
    if fraction_of_slices < 0.5:
        a[:, :13, :] = np.nan  # 13 of 128 rows: 10 %
    else:
        a[: int(round(fraction_of_slices * a.shape[0]))] = np.nan
    return _with_array(itk, a)


def ct_nan_nrrd(d: Path) -> Path:
    return _write(_ct_with_nan(0.1), d / "ct_nan.nrrd")


def ct_nan_nifti(d: Path) -> Path:
    return _write(_ct_with_nan(0.1), d / "ct_nan.nii.gz")


def ct_mostly_nan_nrrd(d: Path) -> Path:
    return _write(_ct_with_nan(0.6), d / "ct_mostly_nan.nrrd")


def ct_all_nan_nifti(d: Path) -> Path:
    import SimpleITK as sitk

    return _write(sitk.GetImageFromArray(np.full((16, 64, 64), np.nan, np.float32)), d / "ct_all_nan.nii.gz")


def ct_constant(d: Path) -> Path:
    import SimpleITK as sitk

    return _write(sitk.GetImageFromArray(np.full((16, 64, 64), -1000, np.int16)), d / "ct_constant.nii.gz")


def ct_spacing_tiny(d: Path) -> Path:
    itk = _ct_crop()
    itk.SetSpacing((0.001, 0.001, 0.001))
    return _write(itk, d / "ct_tiny_spacing.nii.gz")


def ct_pixdim_zero(d: Path) -> Path:
    path = _write(_ct_crop(), d / "ct_pixdim0.nii")
    data = bytearray(path.read_bytes())
    data[80:92] = struct.pack("<3f", 0.0, 0.0, 0.0)  # pixdim[1..3] of the NIfTI-1 header
    path.write_bytes(bytes(data))
    return path


def ct_nrrd_spacing_zero(d: Path) -> Path:
    path = _write(_ct_crop(), d / "ct_spacing0.nrrd")
    header, _, body = path.read_bytes().partition(b"\n\n")
    lines = [b"space directions: (0,0,0) (0,0,0) (0,0,0)" if line.startswith(b"space directions:") else line
             for line in header.split(b"\n")]
    path.write_bytes(b"\n".join(lines) + b"\n\n" + body)
    return path


def ct_nan_slope_series(d: Path) -> Path:
    import pydicom

    folder = d / "ct_nan_slope"
    folder.mkdir()
    for source in sorted((CT_SAMPLE / "dicom").iterdir()):
        ds = pydicom.dcmread(source)
        with warnings.catch_warnings():  # pydicom warns that "NaN" is not a valid DS: that is the point
            warnings.simplefilter("ignore")
            ds.RescaleSlope = "NaN"
        ds.save_as(folder / source.name)
    return folder


MAKERS = {name: fn for name, fn in globals().items() if callable(fn) and not name.startswith("_")
          and name in {case.maker for case in CASES}}


# ---------------------------------------------------------------------------------------------------- helpers
def test_every_case_has_a_maker_and_a_unique_id():
    assert {case.maker for case in CASES} <= set(MAKERS)
    ids = [f"{case.task}/{case.input_class}" for case in CASES]
    assert len(ids) == len(set(ids))
    assert all(case.outcome in (REFUSED, FLAGGED, PROCESSED) for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=[f"{case.task}/{case.input_class}" for case in CASES])
def test_hostile_input(case: Case, tmp_path):
    if case.maker.startswith("ct_") and not (CT_SAMPLE / "ct.nii.gz").is_file():
        pytest.skip("the CT sample is not in this checkout")
    inputs = tmp_path / "in"
    inputs.mkdir()
    path = MAKERS[case.maker](inputs)
    out = tmp_path / "out"
    rc, _, err = run_cli(["predict", "--task", case.task, path, "--out", out, "--device", "cpu", *case.args])
    lines = stderr_lines(err)
    assert "Traceback" not in err, err
    summaries = sorted(out.glob("*/summary.json")) if out.exists() else []
    if case.outcome == REFUSED:
        assert rc == 2, (rc, err)
        assert len(lines) == 1, err
        assert lines[0].startswith("error: ") and str(path) in lines[0], lines[0]
        for word in case.expect:
            assert word in lines[0], (word, lines[0])
        assert summaries == [], "a refused input left a case folder"
        return
    assert rc == 0 and lines == [], err
    assert len(summaries) == 1, list(out.iterdir())
    summary = json.loads(summaries[0].read_text())
    assert isinstance(summary["flags"], list) and set(summary["flags"]) == set(summary["flag_details"])
    if case.outcome == FLAGGED:
        assert summary["ood"] is True, summary
        for flag in case.expect:
            assert flag in summary["flags"], (flag, summary["flag_details"])
            assert summary["flag_details"][flag], flag
    else:
        assert not {"nan_pixels", "spacing_implausible"} & set(summary["flags"]), summary["flag_details"]


# ------------------------------------------------------------------------------------- the one-line rule, for real
def test_warnings_never_reach_stderr(tmp_path):
    """In a subprocess (where numpy's RuntimeWarning, pydicom's UserWarning for a file cut short and Pillow's
    DecompressionBombWarning would print): only the error lines, one per refused input, and the flagged case."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    refused = [nan_tiff(inputs), mg_truncated(inputs), bomb_png(inputs)]
    flagged = some_nan_tiff(inputs)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "uqseg.cli", "predict", "--task", "mammo-pectoral",
                           *map(str, [refused[0], flagged, *refused[1:]]), "--out", str(out), "--device", "cpu"],
                          capture_output=True, text=True, timeout=300)
    lines = stderr_lines(proc.stderr)
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == len(refused), proc.stderr
    for line, path in zip(lines, refused):
        assert line.startswith(f"error: {path}: "), line
    summary = json.loads((out / "some_nan" / "summary.json").read_text())
    assert summary["ood"] is True and "nan_pixels" in summary["flags"]


# ---------------------------------------------------------------------------------------- the rules, one by one
def test_normal_inputs_pass_unchanged():
    """Real images: the same array object back (no copy, nothing filled) and no ood-making finding."""
    from uqseg.io.input_checks import CHEST_RADIOGRAPH, CT, MAMMOGRAM, check_input
    from uqseg.io.load import load_image

    real = [(CT_SAMPLE / "ct.nii.gz", 3, CT), (CT_SAMPLE / "dicom", 3, CT)]
    shared = _shared_dir()
    real += [(shared / "mammo_ddsm" / "images" / "A_0039_1.RIGHT_MLO.png", 2, MAMMOGRAM),
             (shared / "cxr_jsrt" / "images" / "JPCLN001.png", 2, CHEST_RADIOGRAPH)]
    checked_any = False
    for path, ndim, profile in real:
        if not path.exists():
            continue
        image = load_image(path, ndim=ndim)
        checked = check_input(image, profile)
        assert checked.image is image, path
        assert not checked.ood, (path, checked.details)
        checked_any = True
    if not checked_any:
        pytest.skip("no real image found")


def test_finish_summary_names_the_reason_of_every_ood():
    from uqseg.io.image import Image
    from uqseg.io.input_checks import MAMMOGRAM, check_input, finish_summary

    a = _mammo()
    a[10:20] = np.nan
    checked = check_input(Image(a, meta={"path": "x.tiff", "spacing_source": "default"}), MAMMOGRAM)
    assert np.isfinite(checked.image.array).all() and np.isnan(a[10:20]).all()  # filled in a copy
    assert float(checked.image.array[15, 0]) == float(np.nanmin(a))
    summary = finish_summary({"ood": True}, checked)
    assert summary["ood"] is True
    assert summary["flags"] == ["uncertainty_above_threshold", "nan_pixels", "spacing_from_default"]
    assert finish_summary({"ood": False}) == {"ood": False, "flags": [], "flag_details": {}}


def test_jpegls_decodes_like_the_native_file(tmp_path):
    """A real image encoded as JPEG-LS (pyjpegls) loads to the same pixels as the native file."""
    from pydicom.uid import JPEGLSLossless

    from uqseg.io.load import load_image

    pixels = _real_mammogram()
    native = _mg_dicom(tmp_path / "native.dcm", spacing=(0.1, 0.1), pixels=pixels)
    jpegls = _mg_dicom(tmp_path / "jpegls.dcm", spacing=(0.1, 0.1), pixels=pixels,
                       compress=(JPEGLSLossless, "pyjpegls"))
    a, b = load_image(native), load_image(jpegls)
    assert b.meta["transfer_syntax"].startswith("JPEG-LS")
    np.testing.assert_array_equal(a.array, b.array)
    assert jpegls.stat().st_size < native.stat().st_size


def test_nifti_nan_voxels_are_read_back(tmp_path):
    """ITK's NIfTI reader turns NaN / inf into 0; the loader puts them back (and leaves integer files alone)."""
    import SimpleITK as sitk

    from uqseg.io.load import load_image

    a = np.full((8, 40, 40), -1000.0, np.float32)
    a[2, 3, 4], a[5, 6, 7], a[7, 0, 0] = np.nan, np.inf, -np.inf
    sitk.WriteImage(sitk.GetImageFromArray(a), str(tmp_path / "v.nii.gz"))
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "v.nii.gz")))[2, 3, 4] == 0  # what ITK does
    b = load_image(tmp_path / "v.nii.gz", ndim=3).array
    assert np.isnan(b[2, 3, 4]) and b[5, 6, 7] == np.inf and b[7, 0, 0] == -np.inf
    assert np.count_nonzero(~np.isfinite(b)) == 3 and (b[np.isfinite(b)] == -1000).all()


if __name__ == "__main__":  # print the table: input class → what the user gets
    for c in CASES:
        print(f"| {c.task} | {c.input_class} | {c.gets} |")
