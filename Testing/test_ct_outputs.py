"""`uqseg predict --task ct-organs` end to end with the shipped model on the real CT sample (DICOM series and NIfTI),
an oblique copy of it, and bad inputs; the written files read back through real Slicer MRML (slicer-core) with the
input's geometry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from slicer_readback import ijk_to_ras, segment_mask_on_own_grid
from uqseg.cli import main, predict
from uqseg.demo import ct_sample_dir
from uqseg.io.load import load_image

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _ijk_to_lps(image) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = np.asarray(image.direction) * np.asarray(image.spacing)[None, :]
    m[:3, 3] = image.origin
    return m


def _oblique_copy(src: Path, dst: Path) -> Path:
    """The sample resampled onto an oblique grid (rotated 15° about z and 8° about x, 2.2 × 1.8 × 2.5 mm)."""
    img = sitk.ReadImage(str(src))
    rot = sitk.Euler3DTransform()
    rot.SetRotation(np.deg2rad(8), 0.0, np.deg2rad(15))
    direction = np.asarray(rot.GetMatrix()).reshape(3, 3)
    size = [int(s * sp / n) for s, sp, n in zip(img.GetSize(), img.GetSpacing(), (2.2, 1.8, 2.5))]
    centre = img.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in img.GetSize()])
    ref = sitk.Image(size, sitk.sitkInt16)
    ref.SetSpacing((2.2, 1.8, 2.5))
    ref.SetDirection(direction.ravel().tolist())
    half = direction @ (np.array([(s - 1) / 2 for s in size]) * np.array([2.2, 1.8, 2.5]))
    ref.SetOrigin((np.array(centre) - half).tolist())
    out = sitk.Resample(img, ref, sitk.Transform(), sitk.sitkLinear, -1024, sitk.sitkInt16)
    sitk.WriteImage(out, str(dst))
    return dst


@pytest.fixture(scope="module")
def ct_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ct")
    sample = ct_sample_dir()
    oblique = _oblique_copy(sample / "ct.nii.gz", root / "oblique.nii.gz")
    truncated = root / "truncated"
    shutil.copytree(sample / "dicom", truncated)
    files = sorted(truncated.iterdir())
    files[len(files) // 2].unlink()
    png = root / "slice.png"
    from PIL import Image as PILImage

    PILImage.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)).save(png)
    inputs = [sample / "dicom", sample / "ct.nii.gz", oblique, truncated, png, sample / "liver.nii.gz"]
    out = root / "out"
    summaries, errors = predict("ct-organs", [str(p) for p in inputs], out, quiet=True)
    return {"out": out, "summaries": {s["case"]: s for s in summaries}, "errors": errors, "sample": sample,
            "oblique": oblique}


def test_bad_inputs_give_one_line_errors_and_the_rest_runs(ct_run):
    assert set(ct_run["summaries"]) == {"dicom", "ct", "oblique"}
    errors = ct_run["errors"]
    assert len(errors) == 3 and all("\n" not in e and e.startswith("error: ") for e in errors)
    text = " ".join(errors)
    assert "truncated" in text and "missing" in text.lower()
    assert "slice.png" in text and "2-D" in text
    assert "liver.nii.gz" in text and ("mask" in text or "label" in text)


def test_cli_exit_status_is_2_on_a_bad_input(tmp_path, ct_run):
    assert main(["predict", "--task", "ct-organs", str(ct_run["sample"] / "liver.nii.gz"),
                 "--out", str(tmp_path)]) == 2


def test_dicom_and_nifti_of_the_same_voxels_agree(ct_run):
    a, b = ct_run["out"] / "dicom", ct_run["out"] / "ct"
    va = load_image(a / "variance.nrrd", ndim=3).array
    vb = load_image(b / "variance.nrrd", ndim=3).array
    assert va.shape == vb.shape == (20, 256, 256)
    assert np.abs(va - vb).max() < 1e-6
    sa = json.loads((a / "summary.json").read_text())
    assert sa["task"] == "ct-organs" and sa["samples"] == 30 and sa["model"]["id"]
    for name in ("segmentation.seg.nrrd", "probability.nrrd", "variance.nrrd", "entropy.nrrd", "preview.png"):
        assert (a / name).is_file()
    assert sa["image_uncertainty"] > 0


def test_liver_found_where_the_reference_is(ct_run):
    pred = load_image(ct_run["out"] / "ct" / "segmentation.seg.nrrd", ndim=3).array
    ref = load_image(ct_run["sample"] / "liver.nii.gz", ndim=3).array > 0
    liver = pred == 1
    dice = 2 * (liver & ref).sum() / (liver.sum() + ref.sum())
    assert dice > 0.85


@pytest.mark.parametrize("case", ["ct", "oblique"])
def test_outputs_read_back_through_slicer_with_the_input_geometry(mrml_scene, ct_run, case):
    slicer = mrml_scene.slicer
    d = ct_run["out"] / case
    source = ct_run["sample"] / "ct.nii.gz" if case == "ct" else ct_run["oblique"]
    image = load_image(source, ndim=3)
    expected = LPS_TO_RAS @ _ijk_to_lps(image)
    for name in ("variance.nrrd", "probability.nrrd"):
        node = mrml_scene.volumes_logic.AddArchetypeVolume(str(d / name), name)
        assert node is not None
        np.testing.assert_allclose(ijk_to_ras(node), expected, atol=1e-4)
        arr = slicer.util.arrayFromVolume(node)
        assert arr.shape == image.shape
    seg = mrml_scene.segmentations_logic.LoadSegmentationFromFile(str(d / "segmentation.seg.nrrd"), False)
    segmentation = seg.GetSegmentation()
    summary = json.loads((d / "summary.json").read_text())
    names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
    assert names == list(summary["organs"])
    mask, matrix = segment_mask_on_own_grid(slicer, seg, segmentation.GetSegmentIdBySegmentName("liver"),
                                            image.shape)
    np.testing.assert_allclose(matrix, expected, atol=1e-4)
    written = load_image(d / "segmentation.seg.nrrd", ndim=3).array == 1
    assert np.array_equal(mask, written) and written.sum() > 1000


def test_oblique_result_is_the_same_anatomy(ct_run):
    """The liver found on the oblique copy overlaps the reference liver resampled onto the oblique grid, inside the
    original field of view (a flipped or shifted geometry would give ~0; the exact geometry is asserted by the Slicer
    read-back test above). Measured: 0.79 with ct-organs-mob 1.1.0, 0.56 with 2.0.0 (trained at a small CPU budget;
    axial Dice on the sample 0.887), 0.872 with 2.1.0 (axial 0.963; 1.1.0's axial 0.972) — the oblique slab cuts the
    thin 40 mm sample, so the bound stays at 0.5."""
    seg = sitk.ReadImage(str(ct_run["out"] / "oblique" / "segmentation.seg.nrrd"))
    ref = sitk.ReadImage(str(ct_run["sample"] / "liver.nii.gz"))
    ct = sitk.ReadImage(str(ct_run["sample"] / "ct.nii.gz"))
    truth = sitk.GetArrayFromImage(sitk.Resample(ref, seg, sitk.Transform(), sitk.sitkNearestNeighbor, 0)) > 0
    inside = sitk.GetArrayFromImage(sitk.Resample(ct * 0 + 1, seg, sitk.Transform(), sitk.sitkNearestNeighbor, 0)) > 0
    found = (sitk.GetArrayFromImage(seg) == 1) & inside
    truth &= inside
    dice = 2 * (found & truth).sum() / (found.sum() + truth.sum())
    print(f"\n[measured] oblique liver Dice = {dice:.3f}")
    assert dice > 0.5


def test_the_shared_real_ct_volumes_run_end_to_end(shared_data, tmp_path):
    """The full-resolution DICOM series (JPEG 2000) and the two 1.5 mm thorax NIfTI crops of ../shared/data: every
    output on the input's own grid; the liver found in the abdominal series where TotalSegmentator put it."""
    ct = shared_data / "ct_totalseg"
    inputs = [ct / "example_ct_dicom", ct / "aorta_report__test_result__models__ct_cropped.nii.gz",
              ct / "pulmonary_report__models__ct_cropped.nii.gz"]
    summaries, errors = predict("ct-organs", [str(p) for p in inputs], tmp_path, quiet=True)
    assert not errors and len(summaries) == 3
    for path, s in zip(inputs, summaries):
        image = load_image(path, ndim=3)
        for name in ("segmentation.seg.nrrd", "probability.nrrd", "variance.nrrd"):
            out = load_image(tmp_path / s["case"] / name, ndim=3)
            assert out.shape == image.shape
            np.testing.assert_allclose(_ijk_to_lps(out), _ijk_to_lps(image), atol=1e-4)
    seg = load_image(tmp_path / "example_ct_dicom" / "segmentation.seg.nrrd", ndim=3).array == 1
    ref = load_image(ct / "example_seg_dicom.nii.gz", ndim=3)
    # the reference map has another direction (y flipped): compare in physical space through SimpleITK
    from uqseg.ct.preprocess import to_sitk

    series = load_image(ct / "example_ct_dicom", ndim=3)
    ref_on_series = sitk.GetArrayFromImage(sitk.Resample(to_sitk(ref, ref.array.astype(np.uint8)),
                                                         to_sitk(series, np.zeros(series.shape, np.uint8)),
                                                         sitk.Transform(), sitk.sitkNearestNeighbor, 0))
    truth = ref_on_series == 5
    assert 2 * (seg & truth).sum() / (seg.sum() + truth.sum()) > 0.85
