"""CT input side: DICOM series folders (`uqseg.io.dicom_series`), `load_image` on folders, `require_ct`, and the
CT sample shipped in Resources/SampleData/ct-abdomen.

Synthetic series are written here with pydicom: small 16 × 16 slices, an oblique orientation, shuffled file names
and Instance Numbers, per-file rescale. Real data: the TotalSegmentator abdominal series and thorax crops in
../shared/data/ct_totalseg (skipped with a reason when absent), and the committed sample.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
sitk = pytest.importorskip("SimpleITK")
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.encaps import encapsulate  # noqa: E402
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, JPEGLSLossless, generate_uid  # noqa: E402

from uqseg.errors import InputError  # noqa: E402
from uqseg.io import load_image  # noqa: E402
from uqseg.io.ct import MIN_SLICES, require_ct  # noqa: E402
from uqseg.io.dicom_series import load_dicom_series  # noqa: E402
from uqseg.io.geometry import index_to_lps  # noqa: E402
from uqseg.io.image import Image  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE = REPO_ROOT / "Resources" / "SampleData" / "ct-abdomen"


# ----------------------------------------------------------------------------------------------- synthetic series
def _rotation(z_deg: float, x_deg: float) -> np.ndarray:
    cz, sz = np.cos(np.radians(z_deg)), np.sin(np.radians(z_deg))
    cx, sx = np.cos(np.radians(x_deg)), np.sin(np.radians(x_deg))
    rot_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    rot_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    return rot_z @ rot_x


OBLIQUE = _rotation(30.0, 20.0)  # columns: row direction cosine, column direction cosine, slice normal
ORIGIN = np.array([-40.5, 12.25, -300.0])
ROW_MM, COL_MM = 0.8, 0.7  # Pixel Spacing as DICOM stores it: (row spacing, column spacing)


def _hu(k: int, rows: int = 16, cols: int = 16) -> np.ndarray:
    """The HU values of slice k (integers, distinct per slice and pixel, air to bone)."""
    i, j = np.mgrid[0:rows, 0:cols]
    return (-1000 + 150 * k + 3 * i + j).astype(np.int64)


def _write_slice(path: Path, hu: np.ndarray, position, *, rotation=OBLIQUE, modality="CT", series_uid="1.2.3.4",
                 description="oblique phantom", instance=1, slope=1.0, intercept=-1024.0, syntax=ExplicitVRLittleEndian,
                 pixel_bytes=None, **tags) -> Path:
    """One single-frame DICOM slice: stored = (hu - intercept) / slope as uint16, geometry from `rotation`."""
    file_meta = FileMetaDataset()
    file_meta.MediaStorageSOPClassUID = CTImageStorage
    file_meta.MediaStorageSOPInstanceUID = generate_uid()
    file_meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta = file_meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = file_meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid
    ds.StudyInstanceUID = "1.2.3"
    ds.SeriesDescription = description
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [f"{v:.10g}" for v in position]
    ds.ImageOrientationPatient = [f"{v:.10g}" for v in (*rotation[:, 0], *rotation[:, 1])]
    ds.PixelSpacing = [ROW_MM, COL_MM]
    ds.SliceThickness = 5.0  # deliberately not the spacing between positions
    ds.Rows, ds.Columns = hu.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = f"{slope:g}", f"{intercept:g}"
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    stored = np.rint((hu - intercept) / slope)
    assert stored.min() >= 0 and np.allclose(stored * slope + intercept, hu)
    if pixel_bytes is None:
        ds.PixelData = stored.astype("<u2").tobytes()
    else:
        ds.PixelData = pixel_bytes
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    ds.save_as(path, enforce_file_format=True)
    return path


def _write_series(folder: Path, n: int = 9, *, gap: float = 2.5, rotation=OBLIQUE, offsets=None, seed: int = 0,
                  **kwargs) -> list[dict]:
    """n slices at ORIGIN + offset_k · normal (offset_k = k · gap unless `offsets`), written in a shuffled order
    with shuffled file names and Instance Numbers; odd slices use another slope and intercept. Returns, per slice
    k (in position order), {path, hu, position}."""
    folder.mkdir(parents=True, exist_ok=True)
    offsets = np.arange(n) * gap if offsets is None else np.asarray(offsets, float)
    rng = np.random.default_rng(seed)
    names = rng.permutation(len(offsets))
    written = []
    for k in rng.permutation(len(offsets)):
        position = ORIGIN + offsets[k] * rotation[:, 2]
        slope, intercept = (0.5, -1100.0) if k % 2 else (1.0, -1024.0)
        path = _write_slice(folder / f"IM{names[k]:04d}", _hu(k), position, rotation=rotation,
                            instance=int(names[k]) + 1, slope=slope, intercept=intercept, **kwargs)
        written.append((k, {"path": path, "hu": _hu(k), "position": position}))
    return [item for _, item in sorted(written, key=lambda pair: pair[0])]


def _series_error(folder: Path, **kwargs) -> InputError:
    with pytest.raises(InputError) as caught:
        load_dicom_series(folder, **kwargs)
    message = str(caught.value)
    assert caught.value.reason and "\n" not in message and "Traceback" not in message, message
    return caught.value


# ----------------------------------------------------------------------------------------------- geometry
def test_oblique_shuffled_series_geometry_and_hu(tmp_path):
    slices = _write_series(tmp_path / "series")
    image = load_image(tmp_path / "series", ndim=3)  # a folder goes to the series loader
    assert load_image(tmp_path / "series", ndim=None).shape == image.shape
    assert image.shape == (9, 16, 16) and image.array.dtype == np.float32
    assert image.spacing == pytest.approx((COL_MM, ROW_MM, 2.5), abs=1e-6)  # spacing z from positions, not 5 mm
    np.testing.assert_allclose(image.direction, OBLIQUE, atol=1e-6)  # columns: row cos, column cos, normal
    np.testing.assert_allclose(image.origin, slices[0]["position"], atol=1e-6)
    for k, item in enumerate(slices):  # sorted along the normal; per-file slope/intercept → HU
        np.testing.assert_array_equal(image.array[k], item["hu"])
    assert image.meta["modality"] == "CT" and image.meta["format"] == "DICOM series"
    assert image.meta["n_files"] == 9 and image.meta["series_instance_uid"] == "1.2.3.4"
    assert image.meta["series_description"] == "oblique phantom" and image.meta["slice_thickness"] == 5.0
    assert image.meta["path"] == str(tmp_path / "series") and "ImagePositionPatient" in image.meta["spacing_source"]
    assert image.meta["files"] == [str(item["path"]) for item in slices]


def test_index_to_lps_reproduces_every_file_position(tmp_path):
    slices = _write_series(tmp_path / "series", n=6, gap=3.0, rotation=_rotation(-65.0, 35.0), seed=3)
    image = load_dicom_series(tmp_path / "series")
    for k, item in enumerate(slices):
        header = pydicom.dcmread(item["path"], stop_before_pixels=True)
        ipp = np.array([float(v) for v in header.ImagePositionPatient])
        iop = np.array([float(v) for v in header.ImageOrientationPatient])
        row_mm, col_mm = (float(v) for v in header.PixelSpacing)
        np.testing.assert_allclose(index_to_lps(image, 0, 0, k).reshape(3), ipp, atol=1e-6)
        # PS3.3 C.7.6.2.1.1: pixel (row i, column j) is at IPP + j·Δcol·(row cosine) + i·Δrow·(column cosine)
        i, j = 11, 4
        expected = ipp + j * col_mm * iop[:3] + i * row_mm * iop[3:]
        np.testing.assert_allclose(index_to_lps(image, j, i, k).reshape(3), expected, atol=1e-6)


def test_series_agrees_with_simpleitk_series_reader(tmp_path):
    _write_series(tmp_path / "series", n=7)
    image = load_dicom_series(tmp_path / "series")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path / "series")))
    itk_image = reader.Execute()
    np.testing.assert_allclose(itk_image.GetSpacing(), image.spacing, atol=1e-6)
    np.testing.assert_allclose(itk_image.GetOrigin(), image.origin, atol=1e-6)
    np.testing.assert_allclose(np.reshape(itk_image.GetDirection(), (3, 3)), image.direction, atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(itk_image), image.array)


def test_non_dicom_files_beside_the_series_are_ignored(tmp_path):
    _write_series(tmp_path / "series", n=4)
    (tmp_path / "series" / "README.txt").write_text("exported by a PACS\n")
    (tmp_path / "series" / ".DS_Store").write_bytes(b"\x00\x01")
    image = load_dicom_series(tmp_path / "series")
    assert image.shape[0] == 4 and image.meta["ignored_files"] == 1


def test_old_style_files_without_preamble_load(tmp_path):
    import io

    slices = _write_series(tmp_path / "series", n=4)
    for item in slices:  # no 128-byte preamble, no file meta: Implicit VR Little Endian as old exports write
        ds = pydicom.dcmread(item["path"])
        del ds.file_meta
        ds.preamble = None
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, ds, implicit_vr=True, little_endian=True)
        item["path"].write_bytes(buffer.getvalue())
    assert slices[0]["path"].read_bytes()[128:132] != b"DICM"
    image = load_dicom_series(tmp_path / "series")
    for k, item in enumerate(slices):
        np.testing.assert_array_equal(image.array[k], item["hu"])


# ----------------------------------------------------------------------------------------------- errors
def test_truncated_series_names_the_missing_position(tmp_path):
    slices = _write_series(tmp_path / "series", n=8)
    slices[5]["path"].unlink()
    error = _series_error(tmp_path / "series")
    assert "truncated" in error.reason and "missing" in error.reason
    assert slices[4]["path"].name in error.reason and slices[6]["path"].name in error.reason
    reported = re.search(r"expected at LPS \(([^)]*)\)", error.reason)
    assert reported, error.reason
    np.testing.assert_allclose([float(v) for v in reported.group(1).split(",")], slices[5]["position"], atol=1e-3)


def test_missing_slice_in_a_short_series_is_found_by_whole_multiples(tmp_path):
    slices = _write_series(tmp_path / "series", n=4)  # after the removal the gaps are 5 and 2.5 mm: median 3.75
    slices[1]["path"].unlink()
    error = _series_error(tmp_path / "series")
    assert "1 slice missing" in error.reason and "slice spacing 2.5 mm" in error.reason
    reported = re.search(r"expected at LPS \(([^)]*)\)", error.reason)
    np.testing.assert_allclose([float(v) for v in reported.group(1).split(",")], slices[1]["position"], atol=1e-3)


def test_cut_or_undecodable_file_is_named(tmp_path):
    slices = _write_series(tmp_path / "cut", n=4)
    slices[2]["path"].write_bytes(slices[2]["path"].read_bytes()[:300])  # the header ends in the file meta
    error = _series_error(tmp_path / "cut")
    assert error.path == str(slices[2]["path"]) and "truncated or corrupt" in error.reason
    from pydicom.uid import JPEG2000Lossless

    folder = tmp_path / "j2k"
    folder.mkdir()
    for k in range(3):  # a decoder is installed (pylibjpeg-openjpeg), the code stream is broken
        _write_slice(folder / f"{k}.dcm", _hu(k), ORIGIN + 2.0 * k * OBLIQUE[:, 2], syntax=JPEG2000Lossless,
                     pixel_bytes=encapsulate([b"\xff\x4f\xff\x51" + bytes(16)]))
    error = _series_error(folder)
    assert error.path.endswith(".dcm") and "JPEG 2000" in error.reason


def test_gantry_tilt_is_refused(tmp_path):
    folder = tmp_path / "tilted"
    folder.mkdir()
    for k in range(5):  # each slice 0.3 mm further along the column direction: a sheared stack
        _write_slice(folder / f"{k}.dcm", _hu(k), ORIGIN + 2.0 * k * OBLIQUE[:, 2] + 0.3 * k * OBLIQUE[:, 1])
    assert "shifted in-plane" in _series_error(folder).reason


def test_non_uniform_spacing_is_refused(tmp_path):
    _write_series(tmp_path / "series", offsets=[0.0, 2.0, 4.0, 7.0, 9.0, 11.0])  # one gap of 3 mm (1.5 × median)
    error = _series_error(tmp_path / "series")
    assert "non-uniform" in error.reason and "2" in error.reason and "3" in error.reason


def test_two_series_in_one_folder_are_named(tmp_path):
    _write_series(tmp_path / "mixed", n=3, series_uid="1.2.3.10", description="arterial", seed=1)
    for k in range(3):
        _write_slice(tmp_path / "mixed" / f"venous{k}.dcm", _hu(k), ORIGIN + 2.5 * k * OBLIQUE[:, 2],
                     series_uid="1.2.3.20", description="venous")
    error = _series_error(tmp_path / "mixed")
    assert "2 DICOM series" in error.reason and "pass" in error.reason
    for text in ("1.2.3.10", "1.2.3.20", "arterial", "venous"):
        assert text in error.reason
    chosen = load_dicom_series(tmp_path / "mixed", series_uid="1.2.3.20")
    assert chosen.meta["series_description"] == "venous" and chosen.shape[0] == 3


@pytest.mark.parametrize("modality", ["MR", "MG", "CR"])
def test_non_ct_modality_is_refused_when_ct_is_required(tmp_path, modality):
    _write_series(tmp_path / "series", n=MIN_SLICES, modality=modality)
    error = _series_error(tmp_path / "series", require_modality="CT")
    assert f"Modality {modality}" in error.reason and "CT" in error.reason
    image = load_dicom_series(tmp_path / "series")  # without the requirement it loads
    assert image.meta["modality"] == modality
    with pytest.raises(InputError, match=f"Modality {modality}"):
        require_ct(image, tmp_path / "series")


def test_single_file_empty_folder_and_no_dicom(tmp_path):
    _write_series(tmp_path / "one", n=1)
    assert "single 2-D DICOM image" in _series_error(tmp_path / "one").reason
    (tmp_path / "empty").mkdir()
    assert "empty folder" in _series_error(tmp_path / "empty").reason
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "notes.txt").write_text("no images here")
    (tmp_path / "text" / "patient1").mkdir()
    reason = _series_error(tmp_path / "text").reason
    assert "no DICOM image files" in reason and "patient1" in reason
    assert "no such folder" in _series_error(tmp_path / "missing").reason


def test_inconsistent_orientation_size_and_duplicates(tmp_path):
    slices = _write_series(tmp_path / "tilted", n=4)
    _write_slice(slices[2]["path"], _hu(2), slices[2]["position"], rotation=_rotation(31.0, 20.0))
    assert "Image Orientation" in _series_error(tmp_path / "tilted").reason

    slices = _write_series(tmp_path / "sizes", n=4)
    _write_slice(slices[1]["path"], _hu(1, 8, 8), slices[1]["position"])
    assert "inconsistent image size" in _series_error(tmp_path / "sizes").reason

    slices = _write_series(tmp_path / "twice", n=4)
    _write_slice(tmp_path / "twice" / "copy.dcm", _hu(2), slices[2]["position"])
    assert "same slice position" in _series_error(tmp_path / "twice").reason


def test_missing_decoder_names_the_plugin(tmp_path, monkeypatch):
    from uqseg.io import dicom_series
    from uqseg.io.pydicom_compat import DecoderStatus, decoder_status

    if decoder_status(JPEGLSLossless).available:  # pyjpegls is an engine requirement: pretend it is not installed
        monkeypatch.setattr(dicom_series, "decoder_status", lambda syntax: DecoderStatus(True, False, "pyjpegls"))
    folder = tmp_path / "jpegls"
    folder.mkdir()
    for k in range(3):
        _write_slice(folder / f"{k}.dcm", _hu(k), ORIGIN + 2.0 * k * OBLIQUE[:, 2], syntax=JPEGLSLossless,
                     pixel_bytes=encapsulate([b"\xff\xd8\xff\xf7" + bytes(16)]))
    error = _series_error(folder)
    assert "JPEG-LS" in error.reason and "no decoder" in error.reason and "pyjpegls" in error.reason


def test_one_slice_of_a_series_asks_for_the_folder(tmp_path):
    slices = _write_series(tmp_path / "series", n=4)
    with pytest.raises(InputError) as caught:
        load_image(slices[1]["path"], ndim=3)
    assert "4-file CT DICOM series" in caught.value.reason and str(tmp_path / "series") in caught.value.reason
    assert load_image(slices[1]["path"]).shape == (16, 16)  # 2-D use of the same file is unchanged
    lone = _write_slice(tmp_path / "lone.dcm", _hu(0), ORIGIN)
    with pytest.raises(InputError, match="is a 2-D image; this task needs a 3-D volume"):
        load_image(lone, ndim=3)
    with pytest.raises(InputError, match="folder"):
        load_image(tmp_path / "series", ndim=2)


# ----------------------------------------------------------------------------------------------- require_ct
def _nifti(path: Path, array: np.ndarray, spacing=(1.5, 1.5, 1.5)) -> Image:
    itk_image = sitk.GetImageFromArray(array)
    itk_image.SetSpacing(spacing)
    sitk.WriteImage(itk_image, str(path))
    return load_image(path, ndim=3)


def _ct_phantom(slices: int = 10) -> np.ndarray:
    """Air around a water cylinder with a bone core, int16 HU ``[slice, row, col]``."""
    i, j = np.mgrid[0:32, 0:32]
    r = np.hypot(i - 15.5, j - 15.5)
    plane = np.where(r < 4, 700, np.where(r < 12, 40, -1000)).astype(np.int16)
    return np.repeat(plane[None], slices, axis=0)


def test_require_ct_accepts_hu_and_refuses_other_volumes(tmp_path):
    ct = _nifti(tmp_path / "ct.nii.gz", _ct_phantom())
    assert ct.meta["modality"] is None and require_ct(ct, tmp_path / "ct.nii.gz") is ct
    cases = {
        "thin": (_ct_phantom(MIN_SLICES - 3), f"only {MIN_SLICES - 3} slices"),
        "mr": (((_ct_phantom() + 1000) * 2 + np.arange(32)[None, None] * np.arange(32)[None, :, None] % 997)
               .astype(np.int16), "no air"),
        "labels": ((_ct_phantom() > 0).astype(np.uint8) * 5 + (_ct_phantom() > 500), "label map"),
        "mask": ((_ct_phantom() > 0).astype(np.uint8), "binary mask"),
        "normalised": (((_ct_phantom() + 1000) / 1700.0).astype(np.float32), "normalised"),
        "display": (((_ct_phantom() + 1000) / 1700.0 * 254 + 0.25).astype(np.float32), "[0, 255]"),
        "water": (np.clip(_ct_phantom(), -1000, 60), "nothing denser than water"),
    }
    for name, (array, expected) in cases.items():
        path = tmp_path / f"{name}.nii.gz"
        with pytest.raises(InputError) as caught:
            require_ct(_nifti(path, array), path)
        assert expected in caught.value.reason and caught.value.path == str(path), (name, caught.value.reason)
    flat = Image(array=np.zeros((32, 32), np.float32), meta={"modality": "CT"})
    with pytest.raises(InputError, match="2-D"):
        require_ct(flat, "flat")


# ----------------------------------------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def real_series(shared_data):
    folder = shared_data / "ct_totalseg" / "example_ct_dicom"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found (the TotalSegmentator example series)")
    return folder, load_image(folder, ndim=3)


def test_real_series_geometry_hu_and_simpleitk_agreement(real_series):
    folder, image = real_series
    assert image.shape == (20, 512, 512)
    assert image.spacing == pytest.approx((0.9765625, 0.9765625, 2.0))
    assert image.meta["modality"] == "CT" and image.meta["n_files"] == 20 and image.meta["slice_thickness"] == 3.0
    assert -1030 <= image.array.min() <= -1000 and -1050 < np.percentile(image.array, 1) < -950  # air
    assert 1000 < image.array.max() < 4000  # bone
    assert require_ct(image, folder) is image

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    itk_image = reader.Execute()
    np.testing.assert_allclose(itk_image.GetSpacing(), image.spacing, atol=1e-6)
    np.testing.assert_allclose(itk_image.GetOrigin(), image.origin, atol=1e-6)
    np.testing.assert_allclose(np.reshape(itk_image.GetDirection(), (3, 3)), image.direction, atol=1e-9)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(itk_image), image.array)


def test_real_single_file_and_thorax_niftis(real_series, shared_data):
    folder, _ = real_series
    one = sorted(folder.iterdir())[7]
    with pytest.raises(InputError, match="20-file CT DICOM series.*pass the folder"):
        load_image(one, ndim=3)
    crop = shared_data / "ct_totalseg" / "pulmonary_report__models__ct_cropped.nii.gz"
    heart = shared_data / "ct_totalseg" / "pulmonary_report__models__heart.nii.gz"
    labels = shared_data / "ct_totalseg" / "example_seg_dicom.nii.gz"
    require_ct(load_image(crop, ndim=3), crop)
    with pytest.raises(InputError, match="binary mask"):
        require_ct(load_image(heart, ndim=3), heart)
    with pytest.raises(InputError, match="label map"):
        require_ct(load_image(labels, ndim=3), labels)


# ----------------------------------------------------------------------------------------------- the shipped sample
@pytest.fixture(scope="module")
def sample():
    if not (SAMPLE / "ct.nii.gz").is_file():
        pytest.fail(f"{SAMPLE} is missing: run Training/make_ct_sample.py")
    return load_image(SAMPLE / "ct.nii.gz", ndim=3), load_image(SAMPLE / "liver.nii.gz", ndim=3)


def test_sample_ct_nifti_and_dicom_agree(sample):
    ct, _ = sample
    assert ct.shape == (20, 256, 256) and ct.spacing == pytest.approx((1.953125, 1.953125, 2.0))
    assert sitk.ReadImage(str(SAMPLE / "ct.nii.gz")).GetPixelID() == sitk.sitkInt16
    # the original's physical box: first voxel corner (-250, -438, -805.5) mm LPS
    np.testing.assert_allclose(np.asarray(ct.origin) - [0.9765625, 0.9765625, 1.0], [-250.0, -438.0, -805.5])
    np.testing.assert_allclose(ct.direction, np.eye(3), atol=1e-9)
    series = load_dicom_series(SAMPLE / "dicom", require_modality="CT")
    assert series.meta["n_files"] == 20 and require_ct(series) is series
    np.testing.assert_array_equal(series.array, ct.array)
    np.testing.assert_allclose(series.spacing, ct.spacing, atol=1e-9)
    np.testing.assert_allclose(series.origin, ct.origin, atol=1e-6)
    np.testing.assert_allclose(series.direction, ct.direction, atol=1e-9)
    require_ct(ct, SAMPLE / "ct.nii.gz")


def test_sample_dicom_is_anonymous():
    identifying = (b"Basel", b"SIEMENS", b"PETCT2", b"Biograph", b"20221208", b"1.3.12.2.1107")
    for path in sorted((SAMPLE / "dicom").iterdir()):
        content = path.read_bytes()
        assert not any(text in content for text in identifying), path
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert str(ds.PatientName) == "Anonymous" and ds.Modality == "CT"
        assert ds.SOPInstanceUID.startswith("1.2.826.0.1.3680043.8.498.")


def test_sample_liver_mask_sits_on_the_liver(sample):
    ct, liver = sample
    assert liver.shape == ct.shape and set(np.unique(liver.array)) == {0.0, 1.0}
    np.testing.assert_allclose(liver.origin, ct.origin, atol=1e-6)
    np.testing.assert_allclose(liver.direction, ct.direction, atol=1e-9)
    inside = ct.array[liver.array > 0]
    assert 40 < inside.mean() < 200 and np.percentile(inside, 5) > -50  # enhanced liver parenchyma, no air or fat
    # the liver is on the patient's right: smaller LPS x than the body's centre
    k, i, j = np.nonzero(liver.array)
    liver_x = index_to_lps(ct, j, i, k)[:, 0].mean()
    k, i, j = np.nonzero(ct.array > -300)
    body_x = index_to_lps(ct, j, i, k)[:, 0].mean()
    assert liver_x < body_x - 40, (liver_x, body_x)


def test_sample_matches_the_shared_original(sample, shared_data):
    """ct.nii.gz is the 2 × 2 area average of the series; liver.nii.gz agrees with label 5 wherever a 2 × 2 block
    of the original label map is all liver or all not (ties on mixed blocks are nearest-neighbour's choice)."""
    ct, liver = sample
    source = shared_data / "ct_totalseg"
    original = load_dicom_series(source / "example_ct_dicom")
    average = original.array.astype(np.float64).reshape(20, 256, 2, 256, 2).mean(axis=(2, 4))
    assert np.max(np.abs(average - ct.array)) <= 0.5
    labels = load_image(source / "example_seg_dicom.nii.gz", ndim=3)
    assert labels.direction[1, 1] == -1  # stored with the y axis flipped: put it on the series' grid by position
    # both grids are axis-aligned: map each series column / row / slice centre to the label map's index by its LPS
    centres = index_to_lps(original, np.arange(512), np.arange(512), np.arange(512) % 20)
    continuous = (centres - labels.origin) @ labels.direction / np.asarray(labels.spacing)
    index = np.rint(continuous).astype(int)
    np.testing.assert_allclose(continuous, index, atol=1e-6)  # the same voxel centres, only numbered differently
    on_series_grid = labels.array[np.ix_(index[:20, 2], index[:, 1], index[:, 0])]
    fraction = (on_series_grid == 5).reshape(20, 256, 2, 256, 2).mean(axis=(2, 4))
    assert np.all(liver.array[fraction == 1] == 1) and np.all(liver.array[fraction == 0] == 0)
    assert 0.1 < np.mean((fraction > 0) & (fraction < 1)) * 100 < 5  # mixed blocks: the boundary only


def test_sample_notice_license_and_size():
    notice = (SAMPLE / "NOTICE.md").read_text()
    for text in ("TotalSegmentator", "Apache", "model output", "not a manual label", "make_ct_sample.py"):
        assert text in notice
    assert "Apache License" in (SAMPLE / "LICENSE").read_text()
    total = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert total < 6e6 and len(list((SAMPLE / "dicom").glob("*.dcm"))) == 20
