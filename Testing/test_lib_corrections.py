"""Label corrections (mammo-breast, ct-organs) on real Slicer MRML (slicer-core): the Segment Editor's
editable area set from an uncertain region, edits applied the way the Segment Editor applies them, "accept the
alternative", undo and saving.

Data:
- mammo-breast: a REAL prediction of the shipped model (`uqseg predict`, MC dropout) on a real DDSM MLO PNG;
- ct-organs: the case folder is built in the task's exact layout
  (segmentation.seg.nrrd, probability.nrrd, variance.nrrd, sample_<i>.seg.nrrd, summary.json; the engine's own
  writers) from a REAL CT crop of ../shared/data/ct_totalseg and its aorta mask, every second slice kept (3 mm
  slices on 1.5 mm pixels: an axis mix-up shows). The three "samples" are the mask grown, shrunk and shifted by a
  voxel, and the variance is their Bernoulli variance p(1 − p) — an uncertain rim, as a sampling model gives. When a
  ct-organs model is installed, `test_ct_with_the_installed_model` runs the same checks on its real prediction.

Edits go through `vtkSlicerSegmentEditorLogic.ModifySegmentByLabelmap` — the function Slicer's Paint / Draw /
Scissors effects call — with the `vtkMRMLSegmentEditorNode` the Lib configured (mask mode "inside single segment",
mask segment = the editable area, no intensity range, overwrite visible segments). What is shown:
- a stroke much larger than the area changes only voxels inside the area (Slicer's mask);
- an ERASE stroke is the one case Slicer's mask lets through outside the area (documented in
  vtkSlicerSegmentEditorLogic): the Lib's guard puts those voxels back (`reverted > 0`), so no confident voxel
  (uncertainty ≤ threshold, outside the area) changes, whatever the effect;
- accepting the alternative (breast: the most probable other class of the model's own MC-dropout mean; CT: a
  sample) replaces exactly the region's voxels; undo restores every segment exactly;
- saved label maps read back through Slicer onto the input grid equal what was shown; renders before / after
  change only around the region (PNGs in $UQSEG_RENDER_DIR or tmp_path).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("slicer", reason="real Slicer MRML (slicer-core) is not installed")

from UQSegmentationLib import load_input_volume, load_results, nodes_io  # noqa: E402
from UQSegmentationLib.correction.labels import AREA_SEGMENT, label_segments, read_labels  # noqa: E402
from UQSegmentationLib.render import SliceViewRenderer  # noqa: E402
from UQSegmentationLib.review.navigation import view_centre_ras  # noqa: E402
from UQSegmentationLib.review.regions import volume_array  # noqa: E402
from UQSegmentationLib.review.session import ReviewSession  # noqa: E402
from UQSegmentationLib.segment_arrays import read_segment  # noqa: E402

SHARED = Path(os.environ.get("UQSEG_SHARED_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
BREAST_IMAGE = "A_0003_1.RIGHT_MLO.png"


def _png_dir(tmp_path: Path) -> Path:
    d = Path(os.environ["UQSEG_RENDER_DIR"]) if os.environ.get("UQSEG_RENDER_DIR") else tmp_path
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture
def red(mrml_scene):
    view = SliceViewRenderer(mrml_scene.scene, mrml_scene.app_logic, size=(400, 400))
    yield view
    view.close()


# ------------------------------------------------------------------------------------------------ mammo-breast
@pytest.fixture(scope="session")
def breast_prediction(tmp_path_factory):
    from uqseg.cli import predict

    image = SHARED / "mammo_ddsm" / "images" / BREAST_IMAGE
    if not image.is_file():
        pytest.skip("../shared/data/mammo_ddsm not found")
    out = tmp_path_factory.mktemp("review_breast")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        summaries, errors = predict("mammo-breast", [str(image)], out, device="cpu", quiet=True)
    assert not errors
    return {"dir": out / summaries[0]["case"], "image": image}


@pytest.fixture
def breast(mrml_scene, red, breast_prediction):
    from uqseg.io.load import load_image

    volume = load_input_volume(mrml_scene.scene, load_image(breast_prediction["image"]), name="breast")
    return load_results(mrml_scene.scene, breast_prediction["dir"], volume)


def test_breast_regions_come_from_the_entropy_volume(breast):
    from uqseg.correction.regions import component_regions

    session = ReviewSession(breast)
    u = volume_array(breast.nodes["overlay"])[0]
    assert session.region_set.threshold.source == "model card"
    assert session.region_set.threshold.value == session.card["uncertainty"]["region_threshold"]
    expected = component_regions(u, session.region_set.threshold.value, (1.0, 1.0), max_extent_mm=40.0,
                                 min_volume_mm3=4.0)
    assert len(session.regions) == len(expected.regions) >= 5
    assert np.array_equal(session.region_set.labels, expected.labels)
    assert all(u[session.region_set.mask(r.id)].min() > session.region_set.threshold.value
               for r in session.regions[:5])


def test_breast_edits_through_the_segment_editor_stay_inside_the_uncertain_region(breast, red, tmp_path):
    import slicer

    session = ReviewSession(breast)
    session.start_corrections()
    region = session.next()
    area, editor = session.area, session.area.editor
    # the Segment Editor's parameter node is set up as the Segment Editor module would use it
    assert editor.GetSingletonTag() == "SegmentEditor"  # the node Slicer's Segment Editor module uses
    assert editor.GetSegmentationNode() is breast.nodes["segmentation"]
    assert editor.GetSourceVolumeNode() is breast.input_volume
    assert editor.GetMaskMode() == slicer.vtkMRMLSegmentationNode.EditAllowedInsideSingleSegment
    assert editor.GetMaskSegmentID() == AREA_SEGMENT and not editor.GetSourceVolumeIntensityMask()
    assert editor.GetOverwriteMode() == slicer.vtkMRMLSegmentEditorNode.OverwriteVisibleSegments
    seg, volume = breast.nodes["segmentation"], breast.input_volume
    assert not seg.GetDisplayNode().GetSegmentVisibility(AREA_SEGMENT)
    from uqseg.correction.editable import editable_mask

    region_mask = session.region_set.mask(region.id)
    assert np.array_equal(read_segment(seg, AREA_SEGMENT, volume), area.mask)
    assert np.array_equal(area.mask, editable_mask(region_mask.astype(float), 0.5, dilate_mm=2.0,
                                                   spacing=(1.0, 1.0)))
    u = volume_array(breast.nodes["overlay"])[0]
    confident = (u <= session.region_set.threshold.value) & ~area.mask
    before = read_labels(seg, volume)
    red.save_png(_png_dir(tmp_path) / "review_breast_edit_before.png")

    # paint "pectoral" with a stroke far larger than the area
    (r0, c0), (r1, c1) = region.bbox_min, region.bbox_max
    stroke = np.zeros(before.shape, bool)
    stroke[max(0, r0 - 40):r1 + 40, max(0, c0 - 40):c1 + 40] = True
    assert (stroke & ~area.mask).sum() > 5 * area.mask.sum()
    changed = session.paint(stroke, "pectoral")
    after = read_labels(seg, volume)
    diff = after != before
    assert changed == diff.sum() > 0 and not (diff & ~area.mask).any()
    assert np.all(after[diff] == 2) and area.reverted == 0  # Slicer's mask alone kept the stroke inside
    red.save_png(_png_dir(tmp_path) / "review_breast_edit_painted.png")

    # erase "breast" over the same stroke: Slicer lets an erase of the selected segment through outside the area;
    # the guard puts those voxels back
    assert (stroke & ~area.mask & (before == 1)).any()
    session.paint(stroke, "breast", erase=True)
    erased = read_labels(seg, volume)
    assert area.reverted > 0
    assert np.array_equal(erased[confident], before[confident]) and np.array_equal(erased[~area.mask],
                                                                                     before[~area.mask])
    assert session.status(region.id) == "corrected"

    # undo twice: exactly the model's labels again
    assert session.undo() and np.array_equal(read_labels(seg, volume), after)
    assert session.undo() and np.array_equal(read_labels(seg, volume), before)
    assert session.status(region.id) == "unreviewed"
    for sid in label_segments(seg):
        assert np.array_equal(read_segment(seg, sid, volume), before == label_segments(seg)[sid])


def test_breast_accept_the_alternative_and_save(breast, red, tmp_path):
    from uqseg.correction.save import verify_record

    session = ReviewSession(breast)
    session.start_corrections()
    region = session.next()
    seg, volume = breast.nodes["segmentation"], breast.input_volume
    before = read_labels(seg, volume)
    rgb_before = red.save_png(_png_dir(tmp_path) / "review_breast_alternative_before.png")
    assert session.alternatives() == ["most probable other class"]
    session.accept_alternative()
    after = read_labels(seg, volume)
    mask = session.region_set.mask(region.id)
    diff = after != before
    assert diff.any() and not (diff & ~mask).any()
    # the alternative is the most probable other class of the model's MC-dropout mean
    probs = session._probabilities
    order = np.argsort(-probs, axis=0)
    expected = np.where(order[0] == before, order[1], order[0])
    assert np.array_equal(after[mask], expected[mask])
    assert session.status(region.id) == "corrected"
    rgb_after = red.save_png(_png_dir(tmp_path) / "review_breast_alternative_after.png")
    changed_px = np.argwhere(np.abs(rgb_after.astype(int) - rgb_before.astype(int)).sum(axis=2) > 6)
    assert len(changed_px) > 20, "the accepted alternative is not visible"
    lo, hi = session.region_set.box_ras(region)
    corners = red.world_to_pixel([lo, hi])
    top, bottom = corners[:, 0].min() - 15, corners[:, 0].max() + 15
    left, right = corners[:, 1].min() - 15, corners[:, 1].max() + 15
    inside = ((changed_px[:, 0] >= top) & (changed_px[:, 0] <= bottom) & (changed_px[:, 1] >= left)
              & (changed_px[:, 1] <= right))
    assert inside.all(), "pixels changed away from the region"

    record = session.save(tmp_path / "corrections")
    root = tmp_path / "corrections"
    assert verify_record(root, breast.case) == []
    assert record["changes"]["voxels_changed"] == int(diff.sum())
    saved = nodes_io.load_segmentation(breast.scene, root / "labels" / f"{breast.case}.seg.nrrd", "saved")
    names = {saved.GetSegmentation().GetSegment(s).GetName(): s for s in label_segments(saved)}
    assert set(names) == {"breast", "pectoral"}
    for name, value in (("breast", 1), ("pectoral", 2)):
        assert np.array_equal(read_segment(saved, names[name], volume), after == value), name

    assert session.undo() == "accept the alternative"
    assert np.array_equal(read_labels(seg, volume), before) and session.status(region.id) == "unreviewed"


# ------------------------------------------------------------------------------------------------ ct-organs
def _ct_case(root: Path) -> Path:
    """A ct-organs case folder in the task's layout from the real CT crop + aorta mask (module docstring)."""
    from scipy import ndimage

    from uqseg.io.load import load_image
    from uqseg.io.write import write_json, write_segmentation_nrrd, write_volume_nrrd

    base = SHARED / "ct_totalseg"
    ct = load_image(base / "aorta_report__test_result__models__ct_cropped.nii.gz", ndim=None)
    aorta = load_image(base / "aorta_report__test_result__models__aorta.nii.gz", ndim=None).array > 0.5
    keep = slice(40, 120, 2)
    hu = ct.array[keep].astype(np.float32)
    mask = aorta[keep]
    spacing = (ct.spacing[0], ct.spacing[1], 2 * ct.spacing[2])
    direction = np.asarray(ct.direction, float)
    origin = tuple(np.asarray(ct.origin, float) + direction @ np.array([0.0, 0.0, keep.start * ct.spacing[2]]))
    geom = dict(spacing=spacing, origin=origin, direction=direction)
    samples = [ndimage.binary_dilation(mask), ndimage.binary_erosion(mask), np.roll(mask, 1, axis=2)]
    p = np.mean([mask] + samples, axis=0)
    case = root / "aorta_ct"
    case.mkdir(parents=True)
    write_volume_nrrd(root / "aorta_ct.nrrd", hu, **geom)
    segments = [{"name": "aorta", "label": 1, "color": (0.88, 0.38, 0.30)}]
    write_segmentation_nrrd(case / "segmentation.seg.nrrd", mask.astype(np.uint8), segments, **geom)
    for i, s in enumerate(samples):
        write_segmentation_nrrd(case / f"sample_{i}.seg.nrrd", s.astype(np.uint8), segments, **geom)
    write_volume_nrrd(case / "probability.nrrd", p.astype(np.float32), **geom)
    write_volume_nrrd(case / "variance.nrrd", (p * (1 - p)).astype(np.float32), **geom)
    write_json(case / "summary.json", {
        "task": "ct-organs", "case": "aorta_ct", "input": str(root / "aorta_ct.nrrd"),
        "model": {"id": "ct-organs-not-installed", "version": "0"}, "samples": 3, "seed": 0,
        "image_uncertainty": float((p * (1 - p))[mask].mean()), "variance_units": "probability^2",
        "files": {"segmentation": "segmentation.seg.nrrd", "probability": "probability.nrrd",
                  "variance": "variance.nrrd", "samples": [f"sample_{i}.seg.nrrd" for i in range(3)]}})
    return case


@pytest.fixture(scope="session")
def ct_case_dir(tmp_path_factory):
    if not (SHARED / "ct_totalseg" / "aorta_report__test_result__models__aorta.nii.gz").is_file():
        pytest.skip("../shared/data/ct_totalseg not found")
    return _ct_case(tmp_path_factory.mktemp("review_ct"))


@pytest.fixture
def ct(mrml_scene, red, ct_case_dir):
    volume = load_input_volume(mrml_scene.scene, ct_case_dir.parent / "aorta_ct.nrrd", name="aorta_ct")
    return load_results(mrml_scene.scene, ct_case_dir, volume)


CT_THRESHOLD = 0.1  # the user's threshold (probability²): every voxel where the samples disagree


def test_ct_regions_jump_the_axial_view_into_the_volume(ct, red):
    session = ReviewSession(ct)
    assert session.region_set.threshold.source == "case percentile"  # no card: the case's own 90th percentile
    session = ReviewSession(ct, threshold=CT_THRESHOLD)
    assert session.region_set.shape == (40, 126, 120) and len(session.regions) >= 3
    for _ in range(3):
        region = session.next()
        focus = session.region_set.focus_ras(region)
        assert np.allclose(view_centre_ras(red.slice_node), focus, atol=1e-6)
        k = int(round(region.details["peak_at"][0] if session.region_set.mask(region.id)[
            tuple(int(round(c)) for c in region.centre)] == 0 else round(region.centre[0])))
        # the axial slice shown is the region's slice (3 mm slices: a swapped axis would land elsewhere)
        assert session.region_set.mask(region.id)[k].any()
        slice_z = red.slice_node.GetSliceToRAS().GetElement(2, 3)
        assert slice_z == pytest.approx(session.region_set.index_to_ras((k, 0, 0))[2], abs=1e-6)


def test_ct_edits_and_sample_alternative(ct, red, tmp_path):
    from uqseg.correction.save import verify_record

    session = ReviewSession(ct, threshold=CT_THRESHOLD)
    session.start_corrections()
    region = session.next()
    seg, volume = ct.nodes["segmentation"], ct.input_volume
    area = session.area
    before = read_labels(seg, volume)
    variance = volume_array(ct.nodes["overlay"])
    confident = (variance <= CT_THRESHOLD) & ~area.mask
    rgb_before = red.save_png(_png_dir(tmp_path) / "review_ct_region_before.png")

    # a big block stroke (20 voxels around the region in every direction), painted and erased
    lo, hi = np.array(region.bbox_min), np.array(region.bbox_max)
    stroke = np.zeros(before.shape, bool)
    stroke[tuple(slice(max(0, a - 20), b + 21) for a, b in zip(lo, hi))] = True
    session.paint(stroke, "aorta")
    painted = read_labels(seg, volume)
    assert (painted != before).any() and np.array_equal(painted[~area.mask], before[~area.mask])
    session.paint(stroke, "aorta", erase=True)
    erased = read_labels(seg, volume)
    assert area.reverted > 0 and np.array_equal(erased[confident], before[confident])
    assert np.array_equal(erased[~area.mask], before[~area.mask])
    assert session.undo() and session.undo() and np.array_equal(read_labels(seg, volume), before)

    # accept sample 2 (the mask shrunk by a voxel) for the region
    assert session.alternatives() == ["sample 1", "sample 2", "sample 3"]
    session.accept_alternative(which=1)
    after = read_labels(seg, volume)
    mask = session.region_set.mask(region.id)
    rgb_after = red.save_png(_png_dir(tmp_path) / "review_ct_region_alternative.png")
    changed_px = np.argwhere(np.abs(rgb_after.astype(int) - rgb_before.astype(int)).sum(axis=2) > 6)
    assert len(changed_px) > 10, "the accepted alternative is not visible on the region's slice"
    lo_ras, hi_ras = session.region_set.box_ras(region)
    corners = red.world_to_pixel([lo_ras, hi_ras])
    assert (changed_px.min(axis=0) >= corners.min(axis=0) - 15).all()
    assert (changed_px.max(axis=0) <= corners.max(axis=0) + 15).all()
    sample = nodes_io.load_segmentation(ct.scene, ct.case_dir / "sample_1.seg.nrrd", "sample check")
    sample_labels = read_segment(sample, sample.GetSegmentation().GetNthSegmentID(0), volume).astype(np.uint16)
    assert np.array_equal(after[mask], sample_labels[mask]) and np.array_equal(after[~mask], before[~mask])
    assert (after != before).any() and session.status(region.id) == "corrected"

    record = session.save(tmp_path / "corrections")
    assert verify_record(tmp_path / "corrections", ct.case) == []
    saved = nodes_io.load_segmentation(ct.scene, tmp_path / "corrections" / "labels" / "aorta_ct.seg.nrrd", "saved")
    assert np.array_equal(read_segment(saved, saved.GetSegmentation().GetNthSegmentID(0), volume), after == 1)
    assert record["changes"]["voxels_changed"] == int((after != before).sum())
    assert record["threshold"]["source"] == "caller" and record["review"]["corrected"] == 1
    assert session.undo() == "accept the alternative" and np.array_equal(read_labels(seg, volume), before)


def test_ct_with_the_installed_model(mrml_scene, red, tmp_path):
    """The same editable-area rule on a real ct-organs prediction, when a ct-organs model is installed."""
    from uqseg.models.registry import ModelError, find_model

    try:
        find_model("ct-organs")
    except ModelError as e:
        pytest.skip(f"no ct-organs model installed ({e})")
    from uqseg.cli import predict

    ct_path = SHARED / "ct_totalseg" / "pulmonary_report__models__ct_cropped.nii.gz"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        summaries, errors = predict("ct-organs", [str(ct_path)], tmp_path, device="cpu", quiet=True)
    assert not errors
    case_dir = tmp_path / summaries[0]["case"]
    volume = load_input_volume(mrml_scene.scene, ct_path, name="ct")
    results = load_results(mrml_scene.scene, case_dir, volume)
    session = ReviewSession(results)
    session.start_corrections()
    if not session.regions:
        pytest.skip("the prediction has no uncertain region")
    region = session.next()
    seg = results.nodes["segmentation"]
    before = read_labels(seg, volume)
    stroke = np.ones(before.shape, bool)
    sid = next(iter(label_segments(seg)))
    session.paint(stroke, sid)
    session.paint(stroke, sid, erase=True)
    assert np.array_equal(read_labels(seg, volume)[~session.area.mask], before[~session.area.mask])
    assert json.loads((case_dir / "summary.json").read_text())["task"] == "ct-organs" and region.id == 1
