"""`uqseg predict --task cxr-landmarks`: the files of the contract, read back as a user (and Slicer) reads them.

One in-process CLI run (module fixture) over: a non-square phantom PNG, an anisotropic phantom NRRD (spacing and
origin unlike the defaults, so a swapped or forgotten geometry shows), the real CR chest DICOM of `pydicom-data`
(MONOCHROME1, no usable pixel spacing) and a JSRT val PNG of the shared data (each of these two cases skips by itself,
naming what is missing, when absent), and a corrupt file in the middle. The shipped model must load (else: fail).
Checks: exit status and the one-line error, landmarks.csv, summary.json, the CheXmask-U batch CSV, queue.csv, and
through slicer-core (real MRML): the three closed curves (positions and the per-node `std` measurement) and the
segmentation (names, geometry, voxels = the filled mean rings of landmarks.csv).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from slicer_readback import segment_mask_on_own_grid
from uqseg.cli import main as cli_main
from uqseg.cxr import batch_csv
from uqseg.cxr.phantom import chest_phantom
from uqseg.cxr.rasterise import LABELS, labelmap
from uqseg.io.picture import write_png

TASK = "cxr-landmarks"
FILES = ("summary.json", "landmarks.csv", "segmentation.seg.nrrd", "right_lung.mrk.json", "left_lung.mrk.json",
         "heart.mrk.json", "preview.png")
HEADER = ["node", "organ", "mean_x", "mean_y", "std_x", "std_y", "raw_std_x", "raw_std_y"]
MM_SPACING, MM_ORIGIN = (0.7, 0.5), (10.0, -20.0)


def run_cli(args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli_main(args)
    return rc, out.getvalue(), err.getvalue()


def read_landmarks_csv(case_dir: Path):
    with open(case_dir / "landmarks.csv", newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:], np.array([[float(v) for v in r[2:]] for r in rows[1:]])


JSRT_CASE = "cxr_jsrt/images/JPCLN001.png"  # under the shared data folder
GOOD_CASES = ("phantom", "phantom_mm", "cr_dicom", "jsrt")


@pytest.fixture(scope="module")
def batch(tmp_path_factory, shipped_model, shared_file):
    """One CLI run over every case whose input is there; `missing` holds the skip reason of each case that is not."""
    import SimpleITK as sitk

    shipped_model(TASK)  # the committed model must load: its ModelError fails every test here
    d = tmp_path_factory.mktemp("cxr_batch")
    cases, missing = {}, {}
    img, _ = chest_phantom((400, 360), seed=1)
    cases["phantom"] = {"path": write_png(d / "phantom.png", img), "spacing": (1.0, 1.0), "origin": (0.0, 0.0)}
    bad = d / "bad.png"
    bad.write_bytes(b"not a png at all")
    cases["bad"] = {"path": bad}
    img2, _ = chest_phantom((300, 420), seed=2)
    itk = sitk.GetImageFromArray(img2.astype(np.float32))
    itk.SetSpacing(MM_SPACING)
    itk.SetOrigin(MM_ORIGIN)
    cases["phantom_mm"] = {"path": d / "phantom_mm.nrrd", "spacing": MM_SPACING, "origin": MM_ORIGIN}
    sitk.WriteImage(itk, str(cases["phantom_mm"]["path"]))
    try:
        from pydicom.data import get_testdata_file

        cr = get_testdata_file("RG1_UNCR.dcm")
    except ImportError as exc:
        cr, why = None, f"pydicom's data manager is unavailable ({exc})"
    else:
        why = "RG1_UNCR.dcm not found by pydicom's data manager: install the `pydicom-data` package"
    if cr:
        cases["cr_dicom"] = {"path": Path(cr), "spacing": (1.0, 1.0), "origin": (0.0, 0.0)}
    else:
        missing["cr_dicom"] = why
    try:
        cases["jsrt"] = {"path": shared_file(JSRT_CASE), "spacing": (1.0, 1.0), "origin": (0.0, 0.0)}
    except pytest.skip.Exception as skipped:
        missing["jsrt"] = skipped.msg
    order = ["phantom", "bad", "phantom_mm", "cr_dicom", "jsrt"]
    inputs = [str(cases[k]["path"]) for k in order if k in cases]
    out = d / "out"
    rc, stdout, stderr = run_cli(["predict", "--task", TASK, *inputs, "--out", str(out), "--device", "cpu"])
    for key, c in cases.items():
        c["dir"] = out / Path(c["path"]).name.rsplit(".", 1)[0]
    return {"rc": rc, "stdout": stdout, "stderr": stderr, "out": out, "cases": cases, "missing": missing}


def good(batch):
    return {k: c for k, c in batch["cases"].items() if k != "bad"}


def _case(batch, key) -> dict:
    """The case `key` of the batch, or a skip naming its missing input."""
    if key not in batch["cases"]:
        pytest.skip(f"case {key}: {batch['missing'][key]}")
    return batch["cases"][key]


def test_exit_status_and_one_line_error(batch):
    assert batch["rc"] == 2
    lines = [x for x in batch["stderr"].splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in batch["stderr"], batch["stderr"]
    assert lines[0].startswith(f"error: {batch['cases']['bad']['path']}: "), lines[0]
    assert not batch["cases"]["bad"]["dir"].exists()


@pytest.mark.parametrize("key", GOOD_CASES)
def test_case_files_and_landmarks_csv(batch, key):
    c = _case(batch, key)
    for f in FILES:
        assert (c["dir"] / f).is_file(), f"{key}: {f} missing"
    header, rows, values = read_landmarks_csv(c["dir"])
    assert header == HEADER
    assert [int(r[0]) for r in rows] == list(range(120))
    assert [r[1] for r in rows] == ["right_lung"] * 44 + ["left_lung"] * 50 + ["heart"] * 26
    assert np.all(np.isfinite(values)) and np.all(values[:, 2:] >= 0)
    s = json.loads((c["dir"] / "summary.json").read_text())
    assert s["task"] == TASK and s["samples"] == 50 and isinstance(s["ood"], bool)
    # image_uncertainty: the mean RAW node std (the MC std; the shown std_x / std_y are calibrated per node)
    assert s["image_uncertainty"] == pytest.approx(values[:, 4:6].mean(), abs=1e-3)
    assert s["model"]["id"] and s["files"]["curves"]["heart"] == "heart.mrk.json"
    # the mean contours lie on the image (a frontal chest: lungs left and right of the heart)
    h, w = s["input_geometry"]["shape"]
    assert np.all(values[:, 0] > -0.1 * w) and np.all(values[:, 0] < 1.1 * w)
    assert values[:44, 0].mean() < values[94:, 0].mean() < values[44:94, 0].mean(), key


def test_chexmask_u_batch_csv_and_queue(batch):
    out = batch["out"]
    with open(out / batch_csv.FILE_NAME, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0].keys()) == batch_csv.COLUMNS
    by_id = {r["ImageID"]: r for r in rows}
    cases = good(batch)
    assert set(by_id) == {c["dir"].name for c in cases.values()}
    for c in cases.values():
        r = by_id[c["dir"].name]
        _, _, values = read_landmarks_csv(c["dir"])
        np.testing.assert_allclose(batch_csv.unflatten(r["Landmarks (Mean)"]), values[:, :2], atol=0.006)
        np.testing.assert_allclose(batch_csv.unflatten(r["Landmarks (Std)"]), values[:, 2:4], atol=0.006)
        s = json.loads((c["dir"] / "summary.json").read_text())
        assert [int(r["Height"]), int(r["Width"])] == s["input_geometry"]["shape"]
        assert int(r["ood"]) == int(s["ood"])
    with open(out / "queue.csv", newline="") as f:
        queue = list(csv.DictReader(f))
    assert {q["case"] for q in queue} == set(by_id)
    u = [float(q["image_uncertainty"]) for q in queue]
    assert u == sorted(u, reverse=True)


@pytest.mark.parametrize("key", ["phantom_mm", "cr_dicom", "phantom"])
def test_curves_and_segmentation_read_back_through_slicer(mrml_scene, batch, key):
    c = _case(batch, key)
    slicer = mrml_scene.slicer
    sx, sy = c["spacing"]
    ox, oy = c["origin"]
    _, _, values = read_landmarks_csv(c["dir"])
    s = json.loads((c["dir"] / "summary.json").read_text())
    h, w = s["input_geometry"]["shape"]
    starts = {"right_lung": 0, "left_lung": 44, "heart": 94}
    for organ, n in (("right_lung", 44), ("left_lung", 50), ("heart", 26)):
        node = mrml_scene.scene.GetNodeByID(mrml_scene.markups_logic.LoadMarkups(str(c["dir"] / f"{organ}.mrk.json")))
        assert node.GetClassName() == "vtkMRMLMarkupsClosedCurveNode"
        ras = slicer.util.arrayFromMarkupsControlPoints(node, world=True)
        lps = ras * np.array([-1.0, -1.0, 1.0])
        part = values[starts[organ]:starts[organ] + n]
        np.testing.assert_allclose(lps[:, 0], ox + part[:, 0] * sx, atol=1e-3 * max(sx, 1))
        np.testing.assert_allclose(lps[:, 1], oy + part[:, 1] * sy, atol=1e-3 * max(sy, 1))
        m = node.GetMeasurement("std")
        assert m is not None and m.GetUnits() == "mm"
        vals = m.GetControlPointValues()
        std = np.array([vals.GetValue(k) for k in range(vals.GetNumberOfTuples())])
        np.testing.assert_allclose(std, 0.5 * (part[:, 2] * sx + part[:, 3] * sy), atol=2e-4 * max(sx, sy, 1))
    seg = mrml_scene.segmentations_logic.LoadSegmentationFromFile(str(c["dir"] / "segmentation.seg.nrrd"), False)
    segmentation = seg.GetSegmentation()
    names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
    assert names == ["right_lung", "left_lung", "heart"]
    expected = labelmap(values[:, :2], (h, w))
    for i, organ in enumerate(names):
        mask, matrix = segment_mask_on_own_grid(slicer, seg, segmentation.GetNthSegmentID(i), (1, h, w))
        np.testing.assert_allclose(matrix[:2, :2], np.diag([-sx, -sy]), atol=1e-6)
        np.testing.assert_allclose(matrix[:2, 3], [-ox, -oy], atol=1e-6)
        want = expected == LABELS[organ]
        assert want.sum() > 0.01 * h * w, f"{key}: {organ} is nearly empty"
        differ = (mask[0] != want).sum()
        assert differ <= 0.003 * want.sum() + 5, f"{key}: {organ} differs from the filled ring in {differ} px"
