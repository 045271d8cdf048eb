"""Make the small real CT sample shipped for the `ct-organs` demo: Resources/SampleData/ct-abdomen/.

From ../shared/data/ct_totalseg (TotalSegmentator test data, Apache-2.0):
- `ct.nii.gz`: the abdominal DICOM series `example_ct_dicom/` (20 slices of 512 × 512, 0.977 × 0.977 mm, 2 mm apart)
  read with `uqseg.io.dicom_series.load_dicom_series` and downsampled in-plane by 2 by averaging each 2 × 2 block
  (area average) → 256 × 256 × 20, 1.953 × 1.953 × 2 mm, rounded to int16 HU. Same direction and the same physical
  box: the origin (centre of voxel 0) moves by half an original pixel along the row and column directions, to the
  centre of the first 2 × 2 block.
- `dicom/`: the same int16 volume as an uncompressed CT DICOM series (20 files, Explicit VR Little Endian, stored
  value = HU + 1024 with Rescale Intercept -1024, slope 1, as the original). Only geometry (Image Position /
  Orientation (Patient), Pixel Spacing, Slice Thickness 3 mm, Patient Position), the rescale and the modality are
  carried over; patient and study are anonymous and all UIDs are new, made by `pydicom.uid.generate_uid` with the
  pydicom root and a fixed entropy source, so re-running the script writes the same files.
- `liver.nii.gz`: label 5 (liver) of `example_seg_dicom.nii.gz` (a TotalSegmentator model output, whose direction
  has the y axis flipped against the DICOM's) resampled onto the downsampled grid by physical coordinates with
  nearest-neighbour interpolation (SimpleITK), uint8 0/1.
- `NOTICE.md` and `LICENSE` (the source's Apache-2.0 licence).

    python Training/make_ct_sample.py [--shared ../shared/data] [--out Resources/SampleData/ct-abdomen]
                                      [--check-png /tmp/ct_sample_check.png]

`--check-png` writes the middle slice (soft-tissue window) with the liver outline in red for a visual check:
radiological display, so the patient's right (the liver) is on the image's left.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from uqseg.io.dicom_series import load_dicom_series
from uqseg.io.image import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("UQSEG_SHARED_DATA", REPO.parent / "shared" / "data"))
OUT = REPO / "Resources" / "SampleData" / "ct-abdomen"
FACTOR = 2
LIVER_LABEL = 5
RESCALE_INTERCEPT = -1024.0
UID_ENTROPY = "uqseg ct-abdomen sample v1 (TotalSegmentator example_ct_dicom, 2x in-plane)"
SERIES_DESCRIPTION = "CT abdomen sample (TotalSegmentator test data, 2x2 average)"

NOTICE = """# CT abdomen sample (ct-organs demo)

**Source.** The abdominal CT DICOM series `example_ct_dicom/` (20 axial slices, 512 × 512, 0.977 mm pixels,
2 mm apart, 3 mm thick, JPEG 2000 lossless) and its label map `example_seg_dicom.nii.gz` from the test reference
files of TotalSegmentator (https://github.com/wasserth/TotalSegmentator), licensed under the Apache License 2.0: see
`LICENSE` next to this file (a copy of the source's licence).

**What was done to it** (`Training/make_ct_sample.py`, reproducible):
- `ct.nii.gz`: the series read by its Image Position / Orientation (Patient) and converted to Hounsfield units, then
  downsampled in-plane by 2 by averaging each 2 × 2 block of pixels → 256 × 256 × 20 voxels of
  1.953 × 1.953 × 2 mm, rounded to int16 HU. Direction and physical extent are those of the original; the origin
  (centre of the first voxel) is the centre of the original's first 2 × 2 block.
- `dicom/`: the same int16 volume written back as an uncompressed CT DICOM series (20 files, Explicit VR Little
  Endian). Only the geometry, the HU rescale (intercept -1024, slope 1) and the modality were carried over:
  patient and study are anonymous, all dates and device details are dropped, and every UID is new (generated with
  `pydicom.uid.generate_uid` from a fixed seed).
- `liver.nii.gz`: label 5 (liver) of `example_seg_dicom.nii.gz` resampled onto the downsampled grid by physical
  coordinates (nearest neighbour), 0/1. **This mask is a TotalSegmentator model output, not a manual label**:
  use it as a plausible reference for the demo, not as ground truth.
"""


def downsample_in_plane(image: Image, factor: int) -> Image:
    """Average each `factor` × `factor` block of every slice; same direction and physical box (LPS, mm)."""
    slices, rows, cols = image.shape
    if rows % factor or cols % factor:
        raise ValueError(f"{rows} × {cols} is not divisible by {factor}")
    blocks = image.array.astype(np.float64).reshape(slices, rows // factor, factor, cols // factor, factor)
    array = blocks.mean(axis=(2, 4))
    sx, sy, sz = image.spacing
    direction = np.asarray(image.direction, float)
    # The new voxel (0, 0) is the centre of the old 2 × 2 block: (factor - 1) / 2 old pixels along columns and rows.
    shift = direction[:, 0] * sx * (factor - 1) / 2 + direction[:, 1] * sy * (factor - 1) / 2
    return Image(
        array=array.astype(np.float32),
        spacing=(sx * factor, sy * factor, sz),
        origin=tuple(float(v) for v in np.asarray(image.origin, float) + shift),
        direction=direction,
        meta={"modality": "CT"},
    )


def to_sitk(array: np.ndarray, image: Image) -> sitk.Image:
    """A SimpleITK image of `array` ``[slice, row, col]`` on `image`'s grid (ITK's LPS geometry)."""
    itk_image = sitk.GetImageFromArray(array)
    itk_image.SetSpacing(tuple(float(s) for s in image.spacing))
    itk_image.SetOrigin(tuple(float(o) for o in image.origin))
    itk_image.SetDirection(tuple(float(v) for v in np.asarray(image.direction, float).ravel()))
    return itk_image


def resample_labels_by_physical_position(labels: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """`labels` on `reference`'s grid, each voxel taking the label at its physical (LPS) centre: nearest neighbour.

    Both images carry their own direction, so a label map stored with flipped axes lands where it belongs.
    """
    return sitk.Resample(labels, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, labels.GetPixelID())


def _ds(value: float) -> str:
    """A Decimal String of at most 16 characters."""
    text = f"{value:.10g}"
    if len(text) > 16:
        text = f"{value:.8g}"
    return text


def write_ct_series(folder: Path, hu: np.ndarray, image: Image, slice_thickness: float | None) -> list[Path]:
    """Write int16 HU `hu` ``[slice, row, col]`` on `image`'s grid as an anonymous, uncompressed CT series.

    Slice k sits at origin + k · spacing_z · normal (LPS mm); Instance Number 1 is the last slice along the normal
    (the most superior for an axial, feet-to-head normal, as the original numbered them). UIDs are deterministic.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.dcm"):
        old.unlink()
    stored = np.rint(hu.astype(np.float64) - RESCALE_INTERCEPT)
    if stored.min() < 0 or stored.max() > 65535:
        raise ValueError(f"HU range {hu.min()}..{hu.max()} does not fit uint16 with intercept {RESCALE_INTERCEPT}")
    stored = stored.astype("<u2")
    direction = np.asarray(image.direction, float)
    sx, sy, sz = image.spacing
    study_uid = generate_uid(entropy_srcs=[UID_ENTROPY, "study"])
    series_uid = generate_uid(entropy_srcs=[UID_ENTROPY, "series"])
    frame_uid = generate_uid(entropy_srcs=[UID_ENTROPY, "frame of reference"])
    slices, rows, cols = hu.shape
    paths = []
    for k in range(slices):
        instance = slices - k
        sop_uid = generate_uid(entropy_srcs=[UID_ENTROPY, "instance", str(instance)])
        position = np.asarray(image.origin, float) + k * sz * direction[:, 2]

        file_meta = FileMetaDataset()
        file_meta.MediaStorageSOPClassUID = CTImageStorage
        file_meta.MediaStorageSOPInstanceUID = sop_uid
        file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = file_meta
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.StudyDate = ds.StudyTime = ds.AccessionNumber = ds.ReferringPhysicianName = ""
        ds.Modality = "CT"
        ds.Manufacturer = ""
        ds.StudyDescription = "uqseg CT sample"
        ds.SeriesDescription = SERIES_DESCRIPTION
        ds.PatientName = "Anonymous"
        ds.PatientID = "UQSEG-CT-ABDOMEN"
        ds.PatientBirthDate = ds.PatientSex = ""
        ds.KVP = ""
        ds.PatientPosition = "HFS"
        ds.SliceThickness = _ds(slice_thickness) if slice_thickness else ""
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.StudyID = ""
        ds.SeriesNumber = 1
        ds.AcquisitionNumber = ""
        ds.InstanceNumber = instance
        ds.ImagePositionPatient = [_ds(v) for v in position]
        ds.ImageOrientationPatient = [_ds(v) for v in (*direction[:, 0], *direction[:, 1])]
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = _ds(float(position @ direction[:, 2]))
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = rows, cols
        ds.PixelSpacing = [_ds(sy), _ds(sx)]  # DICOM order: row spacing, column spacing
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.WindowCenter, ds.WindowWidth = "40", "400"
        ds.RescaleIntercept = _ds(RESCALE_INTERCEPT)
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.PixelData = stored[k].tobytes()
        path = folder / f"slice_{instance:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_check_png(path: Path, hu: np.ndarray, mask: np.ndarray, zoom: int = 2) -> None:
    """The middle slice, window [-160, 240] HU, liver outline red, 'R' on the left (radiological display)."""
    from PIL import Image as PILImage, ImageDraw
    from scipy import ndimage

    k = hu.shape[0] // 2
    grey = np.clip((hu[k].astype(np.float64) + 160.0) / 400.0, 0, 1)
    rgb = np.repeat((grey * 255).astype(np.uint8)[..., None], 3, axis=2)
    edge = mask[k].astype(bool) & ~ndimage.binary_erosion(mask[k].astype(bool))
    rgb[edge] = (255, 0, 0)
    picture = PILImage.fromarray(rgb).resize((rgb.shape[1] * zoom, rgb.shape[0] * zoom), PILImage.NEAREST)
    draw = ImageDraw.Draw(picture)
    draw.text((8, picture.height // 2), "R", fill=(255, 255, 0))
    draw.text((picture.width - 16, picture.height // 2), "L", fill=(255, 255, 0))
    draw.text((8, 8), f"slice {k} of {hu.shape[0]}: liver outline (TotalSegmentator label 5)", fill=(255, 255, 0))
    picture.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder (../shared/data)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check-png", type=Path, default=None)
    args = parser.parse_args()
    source = args.shared / "ct_totalseg"

    original = load_dicom_series(source / "example_ct_dicom", require_modality="CT")
    small = downsample_in_plane(original, FACTOR)
    hu = np.rint(small.array).astype(np.int16)
    args.out.mkdir(parents=True, exist_ok=True)
    reference = to_sitk(hu, small)
    sitk.WriteImage(reference, str(args.out / "ct.nii.gz"), useCompression=True)
    write_ct_series(args.out / "dicom", hu, small, original.meta.get("slice_thickness"))

    labels = sitk.ReadImage(str(source / "example_seg_dicom.nii.gz"))
    on_grid = resample_labels_by_physical_position(labels, reference)
    liver = (sitk.GetArrayFromImage(on_grid) == LIVER_LABEL).astype(np.uint8)
    sitk.WriteImage(to_sitk(liver, small), str(args.out / "liver.nii.gz"), useCompression=True)

    (args.out / "NOTICE.md").write_text(NOTICE)
    shutil.copyfile(source / "LICENSE", args.out / "LICENSE")

    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"wrote {args.out}: {hu.shape[::-1]} voxels (x, y, z), spacing {small.spacing} mm, "
          f"HU {hu.min()}..{hu.max()}, liver {int(liver.sum())} voxels, mean {hu[liver > 0].mean():.1f} HU; "
          f"{total / 1e6:.2f} MB in all")
    if args.check_png is not None:
        write_check_png(args.check_png, hu, liver)
        print(f"check image: {args.check_png}")


if __name__ == "__main__":
    main()
