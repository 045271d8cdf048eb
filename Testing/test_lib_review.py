"""The review workflow on real Slicer MRML (slicer-core) with REAL predictions of the shipped models:
mammo-pectoral on real DDSM MLO mammograms and cxr-landmarks on a real JSRT validation radiograph.

What is shown:
- regions come from the files / nodes of the real result (boundary.csv; the curves' std measurement) with the
  model card's threshold, and Next / Previous centre and zoom the slice view on them (the view's centre pixel IS
  the region's focus in RAS; the region's box fits in the field of view);
- region status lives in the module's parameter node and survives the scene's MRML (XML) round trip;
- moving a control point programmatically (`SetNthControlPointPositionWorld`) fires the model-aware update —
  debounced: a burst of moves is ONE update, and nothing happens before the timer fires — and the curve, its σ /
  std measurement and colours change as the model says (pectoral: the DP path through the click; chest X-ray: the
  pinned-node refit), checked on the nodes and on the rendered slice view (PNGs written, see below);
- the threaded runner gives the same result as the synchronous one (the work runs off the caller's thread, the
  nodes are written on it);
- undo restores positions, measurement values, segments and statuses EXACTLY (array_equal);
- saved files read back equal what was shown (pectoral label PNG / boundary CSV, landmark JSON);
- queue.csv of a real batch is read in its order and its cases open one after the other.

PNGs go to $UQSEG_RENDER_DIR when set, else to the test's tmp_path.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("slicer", reason="real Slicer MRML (slicer-core) is not installed")

from UQSegmentationLib import load_input_volume, load_results  # noqa: E402
from UQSegmentationLib.display.band import BAND_SEGMENT, band_mask, read_boundary_csv  # noqa: E402
from UQSegmentationLib.display.colormaps import colormap_rgb  # noqa: E402
from UQSegmentationLib.display.node_colormap import curve_values  # noqa: E402
from UQSegmentationLib.render import SliceViewRenderer  # noqa: E402
from UQSegmentationLib.review.batch_queue import CaseQueue, open_case, read_queue  # noqa: E402
from UQSegmentationLib.review.navigation import view_centre_ras  # noqa: E402
from UQSegmentationLib.review.scheduling import ManualTimer, ThreadRunner  # noqa: E402
from UQSegmentationLib.review.session import ReviewSession, read_landmarks_csv  # noqa: E402
from UQSegmentationLib.review.state import ReviewState, case_key, find_or_create_parameter_node  # noqa: E402
from UQSegmentationLib.segment_arrays import grid_matrix, read_segment  # noqa: E402

SHARED = Path(os.environ.get("UQSEG_SHARED_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
# Real DDSM MLO views: A_0279 is the most uncertain of the first twelve (two uncertain row runs with the card's
# threshold), the others make a batch for the queue.
PECTORAL_IMAGES = ("A_0279_1.RIGHT_MLO.png", "A_0016_1.RIGHT_MLO.png", "A_0003_1.RIGHT_MLO.png")
CXR_IMAGE = "JPCLN001"  # a JSRT image of the validation split (not trained on)


# --------------------------------------------------------------------------------------------------- helpers
def _png_dir(tmp_path: Path) -> Path:
    d = Path(os.environ["UQSEG_RENDER_DIR"]) if os.environ.get("UQSEG_RENDER_DIR") else tmp_path
    d.mkdir(parents=True, exist_ok=True)
    return d


def _predict(task, inputs, out: Path):
    from uqseg.cli import predict

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        summaries, errors = predict(task, [str(p) for p in inputs], out, device="cpu", quiet=True)
    assert not errors and len(summaries) == len(inputs), (errors, err.getvalue())
    return {s["case"]: out / s["case"] for s in summaries}


def _pixel(rgb, rc) -> np.ndarray:
    r, c = int(round(rc[0])), int(round(rc[1]))
    return rgb[r, c].astype(float)


def _is_yellow(p) -> bool:
    return p[0] > 150 and p[1] > 130 and p[2] < 110


def _viridis_t(rgb255) -> float:
    ts = np.linspace(0, 1, 256)
    table = np.array([colormap_rgb("viridis", t) for t in ts]) * 255
    return float(ts[np.argmin(((table - np.asarray(rgb255, float)) ** 2).sum(axis=1))])


def _positions(curve) -> np.ndarray:
    return np.array([curve.GetNthControlPointPositionWorld(k) for k in range(curve.GetNumberOfControlPoints())])


@pytest.fixture(scope="session")
def pectoral_batch(tmp_path_factory):
    """`uqseg predict --task mammo-pectoral` once on three real DDSM MLO PNGs (writes queue.csv)."""
    images = [SHARED / "mammo_ddsm" / "images" / name for name in PECTORAL_IMAGES]
    if not all(p.is_file() for p in images):
        pytest.skip("../shared/data/mammo_ddsm images not found")
    out = tmp_path_factory.mktemp("review_pectoral")
    return {"out": out, "cases": _predict("mammo-pectoral", images, out), "images": dict(zip(
        [Path(n).stem for n in PECTORAL_IMAGES], images))}


@pytest.fixture(scope="session")
def cxr_prediction(tmp_path_factory):
    """`uqseg predict --task cxr-landmarks` once on a real JSRT validation radiograph."""
    image = SHARED / "cxr_jsrt" / "images" / f"{CXR_IMAGE}.png"
    truth = SHARED / "cxr_jsrt" / "landmarks" / f"{CXR_IMAGE}.json"
    if not image.is_file() or not truth.is_file():
        pytest.skip("../shared/data/cxr_jsrt not found")
    assert json.loads(truth.read_text())["split"] == "val"
    out = tmp_path_factory.mktemp("review_cxr")
    return {"dir": _predict("cxr-landmarks", [image], out)[CXR_IMAGE], "image": image, "truth": truth}


def _load(scene, image_path, case_dir, name):
    from uqseg.io.load import load_image

    volume = load_input_volume(scene, load_image(image_path), name=name)
    return load_results(scene, case_dir, volume)


@pytest.fixture
def red(mrml_scene):
    """The Red slice view, created before any result is loaded (as in Slicer)."""
    view = SliceViewRenderer(mrml_scene.scene, mrml_scene.app_logic, size=(500, 500))
    yield view
    view.close()


@pytest.fixture
def pectoral(mrml_scene, red, pectoral_batch):
    case = "A_0279_1.RIGHT_MLO"
    return _load(mrml_scene.scene, pectoral_batch["images"][case], pectoral_batch["cases"][case], case)


@pytest.fixture
def cxr(mrml_scene, red, cxr_prediction):
    return _load(mrml_scene.scene, cxr_prediction["image"], cxr_prediction["dir"], CXR_IMAGE)


# ------------------------------------------------------------------------------------------------ regions, views
def test_pectoral_regions_are_the_rows_of_boundary_csv_above_the_card_threshold(pectoral):
    from uqseg.correction.regions import pectoral_regions
    from uqseg.mammo.boundary_grid import col_scale

    session = ReviewSession(pectoral)
    b = read_boundary_csv(pectoral.case_dir / "boundary.csv")
    card_value = session.card["uncertainty"]["region_threshold"]
    assert session.region_set.threshold.source == "model card"
    assert session.region_set.threshold.value == pytest.approx(card_value * col_scale(480))
    expected = pectoral_regions(b["rows"], b["std_col"], b["multimodal"], b["mean_col"],
                                session.region_set.threshold.value, width=480)
    assert [r.members for r in session.regions] == [r.members for r in expected] and len(expected) >= 2
    rows = session.rows()
    assert [r["id"] for r in rows] == list(range(1, len(expected) + 1))
    assert rows[0]["uncertainty"] >= rows[1]["uncertainty"] and {r["status"] for r in rows} == {"unreviewed"}


def test_next_and_previous_centre_and_zoom_the_slice_view(pectoral, red, tmp_path):
    session = ReviewSession(pectoral)
    red.fit(pectoral.input_volume)
    whole = red.save_png(_png_dir(tmp_path) / "review_pectoral_whole.png")
    fov_whole = np.array(red.slice_node.GetFieldOfView())
    visited = []
    while True:
        region = session.next()
        if region is None:
            break
        visited.append(region.id)
        focus = session.region_set.focus_ras(region)
        assert np.allclose(view_centre_ras(red.slice_node), focus, atol=1e-6)
        lo, hi = session.region_set.box_ras(region)
        fov = np.array(red.slice_node.GetFieldOfView())
        assert (hi - lo)[0] <= fov[0] + 1e-6 and (hi - lo)[1] <= fov[1] + 1e-6, "the region does not fit"
        rgb = red.save_png(_png_dir(tmp_path) / f"review_pectoral_region{region.id}.png")
        # the region's band rows fill the view: the band (cyan tint) is at the view centre row
        centre_px = red.world_to_pixel([focus])[0]
        assert np.allclose(centre_px, [249.5, 249.5], atol=1.0)
        row = rgb[int(centre_px[0])].astype(int)
        assert (row[:, 2] - row[:, 0] > 40).sum() >= 10, "no band pixels on the region's centre row"
    assert visited == [r.id for r in session.regions]
    assert session.current == visited[-1] and session.next() is None
    assert session.previous().id == visited[-2] and session.current == visited[-2]
    assert np.all(np.array(red.slice_node.GetFieldOfView())[:2] < fov_whole[:2])  # zoomed in
    assert whole.shape == rgb.shape


def test_region_status_survives_the_scene_round_trip(mrml_scene, pectoral):
    import slicer

    session = ReviewSession(pectoral)
    session.next()
    session.accept()
    session.mark_corrected(2)
    assert session.counts() == {"unreviewed": len(session.regions) - 2, "accepted": 1, "corrected": 1}
    scene = mrml_scene.scene
    scene.SetSaveToXMLString(1)
    scene.Commit()
    xml = scene.GetSceneXMLString()
    assert "UQSegmentation.Review:mammo-pectoral/A_0279_1.RIGHT_MLO" in xml
    other = slicer.vtkMRMLScene()
    other.SetLoadFromXMLString(1)
    other.SetSceneXMLString(xml)
    other.Import()
    node = find_or_create_parameter_node(other)
    assert node.GetID() == find_or_create_parameter_node(scene).GetID()
    state = ReviewState(node, case_key("mammo-pectoral", "A_0279_1.RIGHT_MLO"))
    assert state.statuses() == {1: "accepted", 2: "corrected"} and state.current == 1
    # a session on the same case in the first scene picks the statuses up again (same regions, same threshold)
    again = ReviewSession(pectoral)
    assert again.state.statuses() == {1: "accepted", 2: "corrected"}
    # another threshold gives other regions: the review starts over
    again_other = ReviewSession(pectoral, threshold=1.5 * session.region_set.threshold.value)
    assert again_other.state.statuses() == {}


# ------------------------------------------------------------------------------------------------ pectoral
def test_moving_a_pectoral_point_reshapes_boundary_band_and_muscle(pectoral, red, tmp_path):
    timer = ManualTimer()
    session = ReviewSession(pectoral, timer=timer)
    session.start_corrections()
    corrector = session.corrector
    curve, seg, volume = pectoral.nodes["curve"], pectoral.nodes["segmentation"], pectoral.input_volume
    region = session.next()
    m = grid_matrix(volume)
    before = corrector.result
    positions = _positions(curve)
    rows = [int(np.rint(corrector.ras_to_pixel(p)[0])) for p in positions]
    mid = (region.members[0] + region.members[-1]) / 2
    k = int(np.argmin([abs(r - mid) if r in region.members else 1e9 for r in rows]))
    row = rows[k]
    i = int(np.flatnonzero(before.rows == row)[0])
    old_col, sigma = float(before.mean_col[i]), float(before.std_col[i])
    new_col = old_col + 1.5 * sigma  # the user drags the point 1.5 σ towards the breast
    std_before = curve_values(curve).copy()
    band_before = read_segment(seg, BAND_SEGMENT, volume)
    rgb_before = red.save_png(_png_dir(tmp_path) / "review_pectoral_move_before.png")

    # a drag: three moves in a row, then the user lets go — one update, and only when the timer fires
    target = corrector.pixel_to_ras(row, new_col)
    for f in (0.3, 0.7, 1.0):
        curve.SetNthControlPointPositionWorld(k, *(positions[k] + f * (target - positions[k])))
    assert timer.starts == 3 and corrector.updates == 0 and corrector.result is before
    assert timer.fire() and corrector.updates == 1 and not timer.active

    after = corrector.result
    assert corrector.clicks == [(row, pytest.approx(new_col))]
    # the clicked point stays put (the curve may have been laid out again: the muscle rows grew at the bottom)
    now_rows = [int(np.rint(corrector.ras_to_pixel(p)[0])) for p in _positions(curve)]
    assert now_rows[0] == after.rows[0] and now_rows[-1] == after.rows[-1] and row in now_rows
    k_after = now_rows.index(row)
    assert np.allclose(curve.GetNthControlPointPositionWorld(k_after), target, atol=1e-9)
    j = int(np.flatnonzero(after.rows == row)[0])
    assert after.mean_col[j] == pytest.approx(new_col, abs=1e-9) and after.std_col[j] < 0.5 * sigma
    # the whole ambiguous stretch follows (smooth path), far rows keep the model's boundary
    near = [r for r in range(row - 10, row + 11) if r != row and r in after.rows and r in before.rows]
    shift = {r: after.mean_col[after.rows == r][0] - before.mean_col[before.rows == r][0] for r in near}
    assert all(s > 0 for s in shift.values()) and max(shift.values()) > 0.3 * sigma
    far = [r for r in before.rows if abs(r - row) > 200 and r in after.rows]
    unchanged = [abs(after.mean_col[after.rows == r][0] - before.mean_col[before.rows == r][0]) < 1e-6 for r in far]
    assert far and np.mean(unchanged) > 0.9
    # nodes show the corrected result: band, muscle, σ of the curve in mm (column spacing)
    assert np.array_equal(read_segment(seg, BAND_SEGMENT, volume),
                          band_mask(after.rows, after.mean_col, after.std_col, after.shape))
    assert np.array_equal(read_segment(seg, corrector.muscle_id, volume), after.muscle_mask().astype(bool))
    assert not np.array_equal(read_segment(seg, BAND_SEGMENT, volume), band_before)
    std_after = curve_values(curve)
    col_mm = float(np.linalg.norm(m[:3, 0]))
    assert std_after[k_after] == pytest.approx(after.std_col[j] * col_mm)
    assert std_after[k_after] < 0.5 * std_before[k]
    assert session.status(region.id) == "corrected"  # the click is in the region

    # pixels: the yellow curve has moved from the old column to the click at that row; the band there narrowed
    rgb_after = red.save_png(_png_dir(tmp_path) / "review_pectoral_move_after.png")
    old_px = red.world_to_pixel([corrector.pixel_to_ras(row, old_col)])[0]
    new_px = red.world_to_pixel([target])[0]
    assert _is_yellow(_pixel(rgb_after, new_px)) and not _is_yellow(_pixel(rgb_before, new_px))
    assert _is_yellow(_pixel(rgb_before, old_px)) and not _is_yellow(_pixel(rgb_after, old_px))
    r_px = int(round(new_px[0]))

    def cyan_run(rgb):
        line = rgb[r_px].astype(int)
        return int(((line[:, 2] - line[:, 0]) > 40).sum())

    assert cyan_run(rgb_after) < cyan_run(rgb_before), "the ±σ band did not narrow at the clicked row"

    # undo: everything exactly as before the drag
    assert session.undo() == "move pectoral boundary point"
    assert np.array_equal(_positions(curve), positions)
    assert np.array_equal(curve_values(curve), std_before)
    assert np.array_equal(read_segment(seg, BAND_SEGMENT, volume), band_before)
    assert np.array_equal(read_segment(seg, corrector.muscle_id, volume), before.muscle_mask().astype(bool))
    assert corrector.clicks == [] and session.status(region.id) == "unreviewed"
    assert np.array_equal(corrector.result.mean_col, before.mean_col) and not hasattr(corrector.result, "clicks")
    assert corrector.updates == 1 and not timer.active  # restoring did not trigger the model
    rgb_undone = red.save_png(_png_dir(tmp_path) / "review_pectoral_move_undone.png")
    assert np.array_equal(rgb_undone, rgb_before)


def test_saved_pectoral_correction_reads_back_as_shown(pectoral, tmp_path):
    from PIL import Image as PILImage

    from uqseg.correction.save import read_record, verify_record

    session = ReviewSession(pectoral)
    session.start_corrections()
    corrector, curve = session.corrector, pectoral.nodes["curve"]
    k = curve.GetNumberOfControlPoints() // 3
    p = np.array(curve.GetNthControlPointPositionWorld(k))
    row, col = corrector.ras_to_pixel(p)
    curve.SetNthControlPointPositionWorld(k, *corrector.pixel_to_ras(np.rint(row), col - 12.0))
    assert corrector.updates == 1
    session.accept(1)
    record = session.save(tmp_path / "corrections")
    root = tmp_path / "corrections"
    case = pectoral.case
    assert verify_record(root, case) == [] and read_record(root, case)["review"]["accepted"] == 1
    label = np.array(PILImage.open(root / "labels" / f"{case}.png"))
    shown = read_segment(pectoral.nodes["segmentation"], corrector.muscle_id, pectoral.input_volume)
    assert np.array_equal(label == 3, shown) and set(np.unique(label)) <= {0, 3}
    b = read_boundary_csv(root / "boundary" / f"{case}.csv")
    shown_band = read_segment(pectoral.nodes["segmentation"], BAND_SEGMENT, pectoral.input_volume)
    assert np.array_equal(band_mask(b["rows"], b["mean_col"], b["std_col"], shown.shape), shown_band)
    assert record["changes"]["clicks"] == [{"row": int(np.rint(row)), "col": pytest.approx(col - 12.0)}]
    assert record["model"]["id"] == "mammo-pectoral-hhr" and record["changes"]["rows_changed"] > 0
    assert session.corrector.result.rows.tolist() == b["rows"].tolist()
    # default place: next to the results, DIR/corrections
    assert session.save()["case"] == case and (pectoral.case_dir.parent / "corrections" / "corrections"
                                               / f"{case}.json").is_file()


# ------------------------------------------------------------------------------------------------ chest X-ray
def test_moving_a_cxr_node_refits_the_contour_and_recolours_it(cxr, cxr_prediction, red, tmp_path):
    from uqseg.cxr.graph import organ_slices
    from uqseg.cxr.landmarks_io import read_landmarks

    truth, _ = read_landmarks(cxr_prediction["truth"])
    timer = ManualTimer()
    # threshold 8 px: with the calibrated node std of cxr-hybridgnet-vae 1.1.0 this well-predicted image has no node
    # above the card's region threshold (12.3 px, the 90th percentile over all val nodes); the test needs an arc
    session = ReviewSession(cxr, timer=timer, threshold=8.0)
    session.start_corrections()
    corrector = session.corrector
    region = session.next()  # the most uncertain arc; the view is zoomed on it
    organ = region.organ
    sl = organ_slices()[organ]
    node = max(region.members, key=lambda n: corrector.state.base.node_std[n])
    k = node - sl.start
    curve = cxr.nodes[f"curve:{organ}"]
    tube = cxr.nodes[f"model:{organ}"]
    others = {o: _positions(cxr.nodes[f"curve:{o}"]) for o in organ_slices() if o != organ}
    positions, std_before = _positions(curve), curve_values(curve).copy()
    base = corrector.state.base
    err_before = np.linalg.norm(base.mean[sl] - truth[sl], axis=1)
    rgb_before = red.save_png(_png_dir(tmp_path) / "review_cxr_move_before.png")
    tube_range_before = tube.GetPolyData().GetPointData().GetArray("std").GetRange()

    # the simulated user drags the most uncertain node of the arc onto its true position
    target = corrector.xy_to_ras(truth[node])
    curve.SetNthControlPointPositionWorld(k, *target)
    assert corrector.updates == 0 and timer.fire() and corrector.updates == 1

    after = corrector.result
    assert corrector.pins == {node: pytest.approx(tuple(truth[node]))}
    now = _positions(curve)
    assert np.allclose(now[k], target, atol=1e-9)  # the pinned node stays where the user put it
    assert np.allclose(after.mean[node], truth[node], atol=1e-9)
    moved = np.linalg.norm(now - positions, axis=1)
    assert (np.delete(moved, k) > 0.5).sum() >= 3, "the neighbours did not follow"
    for o, p in others.items():
        assert np.array_equal(_positions(cxr.nodes[f"curve:{o}"]), p), f"{o} changed"
    std_after = curve_values(curve)
    sx = float(np.linalg.norm(grid_matrix(cxr.input_volume)[:3, 0]))
    assert np.allclose(std_after, 0.5 * (after.std[sl, 0] + after.std[sl, 1]) * sx)
    n = sl.stop - sl.start
    ring = [(k + d) % n for d in (-1, 1)]
    assert std_after[k] < 0.3 * std_before[k] and all(std_after[r] < std_before[r] for r in ring)
    err_after = np.linalg.norm(after.mean[sl] - truth[sl], axis=1)
    others_idx = [i for i in range(n) if i != k]
    print(f"{organ}: mean error of the other nodes {err_before[others_idx].mean():.2f} → "
          f"{err_after[others_idx].mean():.2f} px after pinning node {node}")
    assert err_after[others_idx].mean() < err_before[others_idx].mean()
    assert session.status(region.id) == "corrected"

    # the tube (what colours the contour in 2-D) carries the new std; its colour at the node turns dark
    tube_range_after = tube.GetPolyData().GetPointData().GetArray("std").GetRange()
    assert tube_range_after[0] < tube_range_before[0] or tube_range_after[1] != tube_range_before[1]
    rgb_after = red.save_png(_png_dir(tmp_path) / "review_cxr_move_after.png")
    px = red.world_to_pixel([target])[0]
    hi = cxr.nodes[f"model:{organ}"].GetDisplayNode().GetScalarRange()[1]

    def tube_t(rgb, at):
        """viridis position of the brightest tube pixel around `at` (the white control-point disc masked out)."""
        r, c = int(round(at[0])), int(round(at[1]))
        best = None
        for dr in range(-8, 9):
            for dc in range(-8, 9):
                p = rgb[r + dr, c + dc].astype(float)
                if p.min() > 200 or p.sum() < 60:  # the white disc, the dark image
                    continue
                t = _viridis_t(p)
                err = np.abs(np.array(colormap_rgb("viridis", t)) * 255 - p).sum()
                if err < 40 and (best is None or dr * dr + dc * dc < best[0]):
                    best = (dr * dr + dc * dc, t)
        return None if best is None else best[1]

    t_before = tube_t(rgb_before, red.world_to_pixel([positions[k]])[0])
    t_after = tube_t(rgb_after, px)
    assert t_before is not None and t_after is not None
    assert t_before == pytest.approx(std_before[k] / hi, abs=0.15)
    assert t_after < t_before - 0.4, f"the node's colour did not darken ({t_before:.2f} → {t_after:.2f})"

    # undo: the three curves and their std exactly as before
    assert session.undo() == "move chest X-ray contour node"
    assert np.array_equal(_positions(curve), positions) and np.array_equal(curve_values(curve), std_before)
    assert corrector.pins == {} and session.status(region.id) == "unreviewed"
    rgb_undone = red.save_png(_png_dir(tmp_path) / "review_cxr_move_undone.png")
    assert np.array_equal(rgb_undone, rgb_before)


def test_threaded_refit_equals_the_synchronous_one(cxr):
    """ThreadRunner: the refit runs on a worker thread, the curves are written on this thread by poll()."""
    from uqseg.cxr.graph import organ_slices

    runner = ThreadRunner()
    try:
        session = ReviewSession(cxr, runner=runner)
        session.start_corrections()
        assert session.corrector is None  # the model runs in the background
        assert runner.wait(120) and session.corrector is not None, session.error
        corrector = session.corrector
        curve = cxr.nodes["curve:left_lung"]
        k = 10
        p = np.array(curve.GetNthControlPointPositionWorld(k))
        applied_on = []
        corrector.on_update = lambda c, info: applied_on.append(threading.get_ident())
        curve.SetNthControlPointPositionWorld(k, p[0] + 6.0, p[1] - 4.0, p[2])
        assert corrector.updates == 0 and corrector.jobs.running
        assert runner.wait(120) and corrector.updates == 1
        assert applied_on == [threading.get_ident()]
        from UQSegmentationLib.correction.models import refit_with_pins

        expected = refit_with_pins(corrector.state, corrector.pins)
        sl = organ_slices()["left_lung"]
        xy = np.array([corrector.ras_to_xy(q) for q in _positions(curve)])
        assert np.allclose(xy, expected.mean[sl], atol=1e-9)
        assert np.allclose(curve_values(curve), corrector.node_std_mm(expected)[sl])
    finally:
        runner.shutdown()


def test_saved_landmarks_read_back_as_shown(cxr, tmp_path):
    from uqseg.correction.save import verify_record
    from uqseg.cxr.landmarks_io import read_landmarks

    session = ReviewSession(cxr)
    session.start_corrections()
    curve = cxr.nodes["curve:heart"]
    p = np.array(curve.GetNthControlPointPositionWorld(3))
    curve.SetNthControlPointPositionWorld(3, p[0] - 5.0, p[1], p[2])
    record = session.save(tmp_path)
    nodes, meta = read_landmarks(tmp_path / "landmarks" / f"{cxr.case}.json")
    from UQSegmentationLib.review.save import curve_nodes_xy

    assert np.allclose(nodes, curve_nodes_xy(cxr), atol=5e-4)  # the JSON keeps 3 decimals
    assert verify_record(tmp_path, cxr.case) == []
    assert record["changes"]["pinned_nodes"] == [94 + 3]
    assert record["changes"]["nodes_changed_per_organ"]["heart"] >= 3
    assert record["changes"]["nodes_changed_per_organ"]["right_lung"] == 0
    before = read_landmarks_csv(cxr.case_dir / "landmarks.csv")
    assert np.allclose(np.delete(nodes, np.s_[94:], 0), before[:94], atol=1e-3)


# ------------------------------------------------------------------------------------------------ queue
def test_queue_lists_the_batch_by_uncertainty_and_opens_each_case(mrml_scene, pectoral_batch):
    entries = read_queue(pectoral_batch["out"])
    summaries = {c: json.loads((d / "summary.json").read_text()) for c, d in pectoral_batch["cases"].items()}
    assert [e.case for e in entries] == sorted(summaries, key=lambda c: -summaries[c]["image_uncertainty"])
    assert [e.rank for e in entries] == [1, 2, 3]
    assert all(e.image_uncertainty == pytest.approx(summaries[e.case]["image_uncertainty"], abs=1e-4)
               for e in entries)
    queue = CaseQueue.open(pectoral_batch["out"] / "queue.csv")
    assert list(queue.cases()) == [pectoral_batch["cases"][e.case] for e in entries]
    assert queue.previous() is None
    opened = []
    while (entry := queue.next()) is not None:
        results = open_case(mrml_scene.scene, entry)
        assert results.task == "mammo-pectoral" and results.case == entry.case
        assert results.input_volume.GetImageData().GetDimensions()[:2] == (480, 960)
        opened.append(entry.case)
    assert opened == [e.case for e in entries] and queue.current.case == entries[-1].case
    assert queue.previous().case == entries[-2].case


class HeldRunner:
    """An injected runner that runs a job only when told (`run_next`), to show what happens when the user moves
    points again while the model is still working."""

    def __init__(self):
        self.jobs = []

    def submit(self, work, done, failed=None):
        self.jobs.append((work, done, failed))

    def run_next(self):
        work, done, failed = self.jobs.pop(0)
        done(work())

    def poll(self):
        return 0

    def wait(self, timeout=None):
        while self.jobs:
            self.run_next()
        return True

    def shutdown(self):
        pass


def test_a_move_during_the_update_wins_over_the_stale_result(pectoral):
    from uqseg.correction.pectoral_path import correct_pectoral

    runner = HeldRunner()
    session = ReviewSession(pectoral, runner=runner)
    session.start_corrections()
    runner.run_next()  # the model state
    corrector, curve = session.corrector, pectoral.nodes["curve"]
    n = curve.GetNumberOfControlPoints()
    a, b = n // 4, n // 2
    pa, pb = np.array(curve.GetNthControlPointPositionWorld(a)), np.array(curve.GetNthControlPointPositionWorld(b))
    curve.SetNthControlPointPositionWorld(a, pa[0] - 6.0, pa[1], pa[2])  # first move: update 1 submitted
    assert len(runner.jobs) == 1 and corrector.jobs.running
    curve.SetNthControlPointPositionWorld(b, pb[0] + 6.0, pb[1], pb[2])  # second move while 1 runs: waits
    assert len(runner.jobs) == 1 and corrector.jobs.waiting
    runner.run_next()  # result 1 is stale: dropped, update 2 (both clicks) starts
    assert corrector.updates == 0 and len(runner.jobs) == 1
    assert np.allclose(curve.GetNthControlPointPositionWorld(b), [pb[0] + 6.0, pb[1], pb[2]])  # the move is kept
    runner.run_next()
    assert corrector.updates == 1 and len(corrector.clicks) == 2
    expected = correct_pectoral(corrector.state.base, corrector.clicks)
    assert np.array_equal(corrector.result.mean_col, expected.mean_col)
    assert len(session.undo_stack.entries) == 2


def test_review_panel_follows_a_real_review(mrml_scene, pectoral):
    """`UQSegmentationLib.panel.review_view` and the Review section's buttons on a real pectoral prediction."""
    from UQSegmentationLib import panel
    from UQSegmentationLib.review.controller import ReviewController

    controller = ReviewController(mrml_scene.scene)
    empty = panel.review_view(controller)
    assert empty.cells == [] and not (empty.has_regions or empty.can_save or empty.has_queue)
    controller.review(pectoral)
    rows = controller.session.rows()
    view = panel.review_view(controller)
    assert [cells[0] for cells in view.cells] == [str(r["id"]) for r in rows] and len(rows) >= 2
    assert {cells[1] for cells in view.cells} == {"pectoral rows"} and view.cells[0][2] == rows[0]["where"]
    assert view.summary == controller.message and "uncertain regions" in view.summary
    assert view.has_regions and view.can_save and not view.region_selected and view.selected_row == -1
    assert not view.can_accept_alternative and not view.can_edit_in_segment_editor  # edited through the contour
    controller.act("next")
    controller.act("accept")
    view = panel.review_view(controller)
    assert view.selected_row == 0 and view.region_selected and view.cells[0][4] == "accepted"
    controller.go_to_row(1)
    controller.act("mark_corrected")
    view = panel.review_view(controller)
    assert view.selected_row == 1 and view.cells[1][4] == "corrected" and "1 accepted, 1 corrected" in view.summary
    assert controller.go_to_row(len(rows)) is None and panel.review_view(controller).selected_row == 1
    controller.close()


def test_controller_steps_through_the_queue_without_piling_up_nodes(mrml_scene, red, pectoral_batch):
    from UQSegmentationLib.review.controller import ReviewController

    scene = mrml_scene.scene
    controller = ReviewController(scene)
    entries = read_queue(pectoral_batch["out"])
    first = controller.open_queue(pectoral_batch["out"])
    assert first.results.case == entries[0].case and "case 1 of 3" in controller.summary()
    assert controller.next_case().results.case == entries[1].case
    nodes_after_two = scene.GetNumberOfNodes()
    volumes = scene.GetNodesByClass("vtkMRMLScalarVolumeNode").GetNumberOfItems()
    again = controller.previous_case()
    assert again.results.case == entries[0].case
    assert scene.GetNodesByClass("vtkMRMLScalarVolumeNode").GetNumberOfItems() == volumes  # the volume is reused
    assert scene.GetNumberOfNodes() == nodes_after_two  # results replaced, not duplicated
    again.next()
    again.accept()
    assert controller.table_rows()[0]["status"] == "accepted"
    controller.close()
    assert controller.session is None


def test_an_unchanged_pectoral_case_of_the_shipped_sample_saves(mrml_scene, tmp_path):
    """Saving before any correction: the band shown comes from boundary.csv (3 decimals), the corrector's result
    from the model at full precision; on the shipped MLO sample one band pixel falls either way (found by the browser
    test of `uqseg review`). The save goes through and writes the model's boundary."""
    from uqseg.sample_data import sample_dir

    from UQSegmentationLib.display.band import BAND_SEGMENT, band_mask

    image = sample_dir("mammo-mlo") / "mlo.dcm"
    case_dir = _predict("mammo-pectoral", [image], tmp_path / "out")["mlo"]
    results = _load(mrml_scene.scene, image, case_dir, "mlo")
    session = ReviewSession(results)
    session.start_corrections()
    r = session.corrector.result
    shown = read_segment(results.nodes["segmentation"], BAND_SEGMENT, results.input_volume)
    assert (shown != band_mask(r.rows, r.mean_col, r.std_col, r.shape)).sum() <= 2  # the rounding, nothing more
    record = session.save(root=tmp_path / "corrections")
    saved = read_boundary_csv(tmp_path / "corrections" / "boundary" / "mlo.csv")
    model = read_boundary_csv(case_dir / "boundary.csv")
    assert np.array_equal(saved["rows"], model["rows"])
    assert np.abs(saved["mean_col"] - model["mean_col"]).max() <= 1e-3 and record["case"] == "mlo"
