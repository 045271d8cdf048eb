"""mammo-breast preprocessing (`uqseg.mammo.breast_preprocess`): the 0.4 mm resampling and its inverse, the spacing
rules and their fallback, the DICOM VOI functions and raw (FOR PROCESSING) log transform as the model receives
them, MONOCHROME1, and the chest-wall (laterality) flips. Synthetic DICOM files are written with pydicom here;
`apply_window`'s own maths is covered in test_io_loaders.py."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

pydicom = pytest.importorskip("pydicom")
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.uid import (  # noqa: E402
    DigitalMammographyXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    generate_uid,
)

from uqseg.io import load_image  # noqa: E402
from uqseg.io.image import Image  # noqa: E402
from uqseg.io.phantoms import mlo_phantom  # noqa: E402
from uqseg.mammo.breast_preprocess import (  # noqa: E402
    DEFAULT_LONG_SIDE_MM,
    TARGET_SPACING_MM,
    input_spacing,
    intensity_transform,
    pad_to_multiple,
    prepare,
    to_input_grid,
    to_working_grid,
    working_shape,
)


def write_mg(path: Path, pixels: np.ndarray, **tags) -> Path:
    """A minimal uint16 MG DICOM file with extra tags."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalMammographyXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "MG"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def disc_image(shape, spacing_xy, centre_mm, radius_mm) -> np.ndarray:
    """1 inside a disc given in physical mm (pixel centres at (i + ½) · spacing from the image corner), else 0."""
    h, w = shape
    y = (np.arange(h)[:, None] + 0.5) * spacing_xy[1]
    x = (np.arange(w)[None, :] + 0.5) * spacing_xy[0]
    return (((x - centre_mm[0]) ** 2 + (y - centre_mm[1]) ** 2) <= radius_mm**2).astype(np.float32)


# --------------------------------------------------------------------------------------------------- resampling
def test_resampling_to_400_um_keeps_physical_sizes_and_its_inverse_returns_to_the_input_grid():
    spacing = (0.1, 0.16)  # x = column, y = row (mm), anisotropic on purpose
    shape = (1000, 800)  # 160 mm × 80 mm
    image = Image(disc_image(shape, spacing, (40.0, 90.0), 20.0) * 100.0 + 10.0, spacing=spacing,
                  meta={"spacing_source": "PixelSpacing", "modality": "MG"})
    assert TARGET_SPACING_MM == 0.4 and working_shape(shape, spacing) == (400, 200)  # 160 / 0.4, 80 / 0.4
    prep = prepare(image, flip=False)
    assert prep.work_shape == (400, 200) and prep.work_spacing_mm == pytest.approx((0.4, 0.4))
    assert prep.spacing_basis == "PixelSpacing" and prep.input_spacing_mm == spacing
    # The disc (radius 20 mm = 50 working pixels, centre (40, 90) mm = column 100, row 225 in working pixels).
    disc = prep.array > 0.5
    assert disc.sum() == pytest.approx(math.pi * 50**2, rel=0.02)
    rows, cols = np.nonzero(disc)
    assert ((cols + 0.5).mean() * 0.4, (rows + 0.5).mean() * 0.4) == pytest.approx((40.0, 90.0), abs=0.2)
    # Inverse: a working-grid map lands on the input pixels it covers.
    back = to_input_grid(torch.from_numpy(prep.array), prep).numpy()
    assert back.shape == shape
    truth = disc_image(shape, spacing, (40.0, 90.0), 20.0) > 0.5
    assert ((back > 0.5) != truth).mean() < 0.003  # only rim pixels may differ
    # Round trip of a smooth image is close to the identity.
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    smooth = np.sin(xx / 90.0) * np.cos(yy / 130.0)
    again = to_input_grid(to_working_grid(smooth, prep), prep).numpy()
    assert np.abs(again - smooth)[8:-8, 8:-8].max() < 0.005  # (at the very edge the interpolation clamps)


def test_spacing_rules_imager_pixel_spacing_first_then_tag_then_long_side_fallback(tmp_path):
    px = np.tile(np.arange(0, 6000, 6, dtype=np.uint16), (1500, 1))  # 1500 × 1000
    both = load_image(write_mg(tmp_path / "both.dcm", px, PixelSpacing=[0.05, 0.05], ImagerPixelSpacing=[0.1, 0.08]))
    assert both.meta["spacing_source"] == "PixelSpacing"
    assert input_spacing(both) == ((0.08, 0.1), "ImagerPixelSpacing")  # detector plane, (x, y)
    assert prepare(both).work_shape == (round(1500 * 0.1 / 0.4), round(1000 * 0.08 / 0.4))
    only = load_image(write_mg(tmp_path / "pixel.dcm", px, PixelSpacing=[0.2, 0.2]))
    assert input_spacing(only) == ((0.2, 0.2), "PixelSpacing")
    none = load_image(write_mg(tmp_path / "none.dcm", px))
    (sx, sy), basis = input_spacing(none)
    assert sx == sy == pytest.approx(DEFAULT_LONG_SIDE_MM / 1500) and basis.startswith("default")
    assert prepare(none).work_shape == (600, 400)  # long side → 240 mm / 0.4 mm
    png = Image(np.zeros((960, 480), np.float32), meta={"spacing_source": "default", "modality": "OT"})
    assert prepare(png).work_shape == (600, 300)


def test_implausible_header_spacing_falls_back_and_says_so(tmp_path):
    """A 1 mm placeholder (Slicer's spacing for a DICOM without one, passed on in the NRRD it writes) would make a
    1.5-metre mammogram and a 3750 × 2500 working grid: the long-side fallback is used and named instead."""
    image = Image(np.zeros((1500, 1000), np.float32), spacing=(1.0, 1.0),
                  meta={"spacing_source": "nrrd header", "modality": "MG"})
    (sx, sy), basis = input_spacing(image)
    assert sx == sy == pytest.approx(DEFAULT_LONG_SIDE_MM / 1500)
    assert basis.startswith("default") and "implausible" in basis and "1500 mm" in basis
    assert prepare(image).work_shape == (600, 400)
    tiny = Image(np.zeros((1500, 1000), np.float32), spacing=(0.01, 0.01), meta={"spacing_source": "nrrd header"})
    assert "implausible" in input_spacing(tiny)[1]


def test_padding_to_a_multiple_of_16():
    x, (h, w) = pad_to_multiple(torch.ones(1, 1, 600, 300))
    assert x.shape[-2:] == (608, 304) and (h, w) == (600, 300)
    assert x[..., 600:, :].abs().sum() == 0 and x[..., :, 300:].abs().sum() == 0


# --------------------------------------------------------------------------------------------------- intensities
@pytest.mark.parametrize(
    "function, expected",
    [
        # c = 300, w = 200 on values 0, 6, …, 594 (columns 0..99); sampled at values 198, 300, 402.
        # LINEAR: (x - 299.5) / 199 + 0.5, 0 at x <= 200, 1 at x > 399:  198 → 0, 300 → 0.5025126, 402 → 1.
        ("LINEAR", [0.0, 0.5 + 0.5 / 199, 1.0]),
        # LINEAR_EXACT: (x - 300) / 200 + 0.5, 0 at x <= 200, 1 at x > 400:  198 → 0, 300 → 0.5, 402 → 1.
        ("LINEAR_EXACT", [0.0, 0.5, 1.0]),
        # SIGMOID: 1 / (1 + exp(-4 (x - 300) / 200)):  198 → 1 / (1 + e^2.04) = 0.1150…, 300 → 0.5, 402 → 0.8849….
        ("SIGMOID", [1 / (1 + math.exp(2.04)), 0.5, 1 / (1 + math.exp(-2.04))]),
    ],
)
def test_each_voi_lut_function_reaches_the_model_as_hand_computed(tmp_path, function, expected):
    px = np.tile(np.arange(0, 600, 6, dtype=np.uint16), (40, 1))
    path = write_mg(tmp_path / f"{function}.dcm", px, WindowCenter=300, WindowWidth=200, VOILUTFunction=function,
                    PresentationIntentType="FOR PRESENTATION")
    image = load_image(path)
    values, how = intensity_transform(image)
    np.testing.assert_allclose(values[0, [33, 50, 67]], expected, atol=1e-6)  # columns with values 198, 300, 402
    assert how.startswith(f"processed: DICOM window {function}")


def test_raw_for_processing_images_are_log_transformed(tmp_path):
    exposure = np.tile(np.array([100, 1000, 10000, 60000], np.uint16), (40, 10))  # 40 × 40
    raw1 = load_image(write_mg(tmp_path / "raw1.dcm", exposure, PresentationIntentType="FOR PROCESSING",
                               PhotometricInterpretation="MONOCHROME1", WindowCenter=500, WindowWidth=100))
    assert raw1.meta["windowed"] is False and raw1.meta["inverted"] is True
    z, how = intensity_transform(raw1)
    assert how == "raw: -ln(exposure)"
    # the loader's max + min - x is undone: z = -ln(E - min E + 1)
    np.testing.assert_allclose(z[0, :4], [-math.log(1.0), -math.log(901.0), -math.log(9901.0), -math.log(59901.0)],
                               rtol=1e-6)
    # high exposure (direct beam, background) → dark; low exposure (dense tissue) → bright
    assert prepare(raw1, flip=False).array[0, 0] > prepare(raw1, flip=False).array[0, -1]
    raw2 = load_image(write_mg(tmp_path / "raw2.dcm", exposure, PresentationIntentType="FOR PROCESSING"))
    z2, how2 = intensity_transform(raw2)
    assert how2 == "raw: ln(1 + value)"
    np.testing.assert_allclose(z2[0, :4], np.log([1.0, 901.0, 9901.0, 59901.0]), rtol=1e-6)


def test_monochrome1_gives_the_same_working_image_as_its_monochrome2_twin(tmp_path):
    image, _, _ = mlo_phantom((320, 160), seed=2)
    stored = np.rint(image * 100).astype(np.uint16)
    m2 = load_image(write_mg(tmp_path / "m2.dcm", stored))
    m1 = load_image(write_mg(tmp_path / "m1.dcm", stored.max() + stored.min() - stored,
                             PhotometricInterpretation="MONOCHROME1"))
    assert m1.meta["inverted"] is True
    a, b = prepare(m2), prepare(m1)
    assert a.flipped == b.flipped is False
    np.testing.assert_allclose(a.array, b.array, atol=1e-5)


# --------------------------------------------------------------------------------------------------- laterality
def test_chest_wall_right_is_flipped_and_maps_back_unflipped():
    left, _, _ = mlo_phantom((480, 240), seed=1)
    right, _, _ = mlo_phantom((480, 240), seed=1, chest_wall="right")
    meta = {"spacing_source": "default", "modality": "OT"}
    a, b = prepare(Image(left, meta=dict(meta))), prepare(Image(right, meta=dict(meta)))
    assert (a.flipped, b.flipped) == (False, True) and b.side_source == "intensity"
    np.testing.assert_allclose(a.array, b.array, atol=1e-5)  # the model sees the same canonical image
    # A working-grid map marking the canonical LEFT quarter comes back on the chest-wall side of each input.
    marker = np.zeros(a.work_shape, np.float32)
    marker[:, : a.work_shape[1] // 4] = 1.0
    on_left = to_input_grid(marker, a).numpy() > 0.5
    on_right = to_input_grid(marker, b).numpy() > 0.5
    assert on_left[:, :50].all() and not on_left[:, 70:].any()
    np.testing.assert_array_equal(on_right, on_left[:, ::-1])


def test_patient_orientation_decides_the_side_before_the_pixels(tmp_path):
    left, _, _ = mlo_phantom((320, 160), seed=4)  # chest wall on the left by its pixels
    stored = np.rint(left * 100).astype(np.uint16)
    # PatientOrientation (column direction, row direction) = P\L: columns run towards the chest wall (posterior).
    tagged = load_image(write_mg(tmp_path / "po.dcm", stored, PatientOrientation=["P", "L"]))
    assert tagged.meta["patient_orientation"] == ("P", "L")
    prep = prepare(tagged)
    assert prep.flipped is True and prep.side_source == "PatientOrientation"
    assert prepare(load_image(write_mg(tmp_path / "a.dcm", stored, PatientOrientation=["A", "R"]))).flipped is False
