"""The writers of `uqseg.io.write`, checked by loading their files back through Slicer's own readers (slicer-core).

Geometry is oblique on purpose (a rotation about an axis that is none of the coordinate axes) and every mask is
asymmetric, so that a swapped axis, a flipped axis or a forgotten LPS→RAS sign fails a test.
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from slicer_readback import matrix_to_array, segment_mask_on_own_grid
from uqseg.io import write as W
from uqseg.io.write import (
    write_csv,
    write_curve_markups_json,
    write_json,
    write_segmentation_nrrd,
    write_volume_nrrd,
)

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def _rotation(axis, angle):
    """Rodrigues: the rotation by `angle` (rad) about `axis`."""
    k = np.asarray(axis, float) / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * kx @ kx


OBLIQUE = _rotation((1.0, 2.0, 3.0), 0.4)
SPACING = (0.5, 0.7, 2.0)  # x = col, y = row, z = slice
ORIGIN = (10.0, -20.0, 30.0)  # LPS


def _expected_ijk_to_ras(spacing, origin, direction):
    sp = list(spacing) + [1.0] * (3 - len(spacing))
    m = np.eye(4)
    m[:3, :3] = LPS_TO_RAS @ np.asarray(direction) @ np.diag(sp)
    m[:3, 3] = LPS_TO_RAS @ np.asarray(origin)
    return m


def _listdir(path):
    return sorted(p.name for p in path.iterdir())


# ------------------------------------------------------------------------------------------------------ volumes
def test_volume_float32_oblique_roundtrip(mrml_scene, tmp_path):
    vtk = pytest.importorskip("vtk")
    rng = np.random.default_rng(0)
    array = rng.normal(size=(4, 5, 6)).astype(np.float32)  # [slice, row, col], all sizes different
    path = write_volume_nrrd(tmp_path / "v.nrrd", array, SPACING, ORIGIN, OBLIQUE)
    assert path == tmp_path / "v.nrrd" and _listdir(tmp_path) == ["v.nrrd"]

    node = mrml_scene.volumes_logic.AddArchetypeVolume(str(path), "v", 4)  # bit 2: a single file
    assert node is not None and node.GetClassName() == "vtkMRMLScalarVolumeNode"
    assert node.GetImageData().GetScalarType() == vtk.VTK_FLOAT
    loaded = mrml_scene.slicer.util.arrayFromVolume(node)
    assert loaded.dtype == np.float32 and loaded.shape == array.shape
    np.testing.assert_array_equal(loaded, array)
    np.testing.assert_allclose(node.GetSpacing(), SPACING, atol=1e-6)
    np.testing.assert_allclose(node.GetOrigin(), LPS_TO_RAS @ np.array(ORIGIN), atol=1e-6)
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    np.testing.assert_allclose(matrix_to_array(m), _expected_ijk_to_ras(SPACING, ORIGIN, OBLIQUE), atol=1e-6)


def test_volume_2d_integer_is_one_slice(mrml_scene, tmp_path):
    vtk = pytest.importorskip("vtk")
    array = (np.arange(3 * 7, dtype=np.int16).reshape(3, 7) - 10) * 100  # [row, col], negative values too
    path = write_volume_nrrd(tmp_path / "sub" / "img.nrrd", array, (0.3, 0.4), (1.0, 2.0, 3.0))  # folder made
    node = mrml_scene.volumes_logic.AddArchetypeVolume(str(path), "img", 4)
    assert node.GetImageData().GetScalarType() == vtk.VTK_SHORT
    loaded = mrml_scene.slicer.util.arrayFromVolume(node)
    assert loaded.shape == (1, 3, 7)
    np.testing.assert_array_equal(loaded[0], array)
    np.testing.assert_allclose(node.GetSpacing(), (0.3, 0.4, 1.0), atol=1e-6)
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    np.testing.assert_allclose(matrix_to_array(m), _expected_ijk_to_ras((0.3, 0.4), (1, 2, 3), np.eye(3)), atol=1e-6)


def test_volume_header_is_lps_with_scaled_direction_columns(tmp_path):
    nrrd = pytest.importorskip("nrrd")
    array = np.zeros((2, 3, 4), np.uint16)
    array[1, 2, 3] = 7
    write_volume_nrrd(tmp_path / "v.nrrd", array, SPACING, ORIGIN, OBLIQUE)
    data, header = nrrd.read(str(tmp_path / "v.nrrd"), index_order="C")
    assert header["space"] == "left-posterior-superior" and header["encoding"] == "gzip"
    assert header["type"] == "uint16" and list(header["sizes"]) == [4, 3, 2]
    np.testing.assert_allclose(header["space directions"], (OBLIQUE * np.array(SPACING)).T, atol=1e-12)
    np.testing.assert_allclose(header["space origin"], ORIGIN)
    np.testing.assert_array_equal(data, array)


def test_volume_needs_z_spacing_for_several_slices(tmp_path):
    with pytest.raises(ValueError, match="3 spacings"):
        write_volume_nrrd(tmp_path / "v.nrrd", np.zeros((2, 3, 4), np.float32), (1.0, 1.0))
    assert _listdir(tmp_path) == []


# -------------------------------------------------------------------------------------------------- segmentations
def _asymmetric_labelmap():
    lm = np.zeros((3, 6, 8), np.uint8)  # [slice, row, col]
    lm[0, 1, 2] = 1
    lm[0, 1:3, 5:8] = 1  # an L-shape near the top-right of slice 0
    lm[0, 2, 7] = 0
    lm[1, 3:6, 0:3] = 2  # a block at the bottom-left of slice 1
    lm[2, 5, 7] = 2  # one voxel in the last corner
    lm[2, 0, 0] = 1  # and one in the first
    return lm


SEGMENTS = [
    {"name": "breast", "label": 1, "color": (0.9, 0.35, 0.123456789)},
    {"name": "pectoral", "label": 2, "color": (0.1, 0.6, 1.0),
     "terminology": "Segmentation category and type - 3D Slicer General Anatomy list~SCT^85756007^Tissue"
                    "~SCT^85756007^Tissue~^^~Anatomic codes - DICOM master list~^^~^^"},
    {"name": "empty one", "label": 9, "color": (0.0, 0.0, 0.0)},
]


def test_segmentation_oblique_roundtrip(mrml_scene, tmp_path):
    slicer = mrml_scene.slicer
    lm = _asymmetric_labelmap()
    for label in (1, 2):  # the test must be able to see a flip of any axis
        mask = lm == label
        for axis in range(3):
            assert not np.array_equal(mask, np.flip(mask, axis))
    path = write_segmentation_nrrd(tmp_path / "s.seg.nrrd", lm, SEGMENTS, SPACING, ORIGIN, OBLIQUE)

    seg_node = mrml_scene.segmentations_logic.LoadSegmentationFromFile(str(path), False)
    assert seg_node is not None
    segmentation = seg_node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == len(SEGMENTS)
    expected_matrix = _expected_ijk_to_ras(SPACING, ORIGIN, OBLIQUE)
    for i, spec in enumerate(SEGMENTS):
        segment_id = segmentation.GetNthSegmentID(i)
        segment = segmentation.GetSegment(segment_id)
        assert segment_id == spec["name"]
        assert segment.GetName() == spec["name"]
        np.testing.assert_allclose(segment.GetColor(), spec["color"], atol=1e-6)
        assert segment.GetLabelValue() == spec["label"]
        assert not segment.GetNameAutoGenerated() and not segment.GetColorAutoGenerated()
        if "terminology" in spec and hasattr(segment, "GetTerminology"):
            assert segment.GetTerminology() == spec["terminology"]
        mask, matrix = segment_mask_on_own_grid(slicer, seg_node, segment_id, lm.shape)
        np.testing.assert_array_equal(mask, lm == spec["label"], err_msg=spec["name"])
        if mask.any():
            np.testing.assert_allclose(matrix, expected_matrix, atol=1e-6)

    # Independently of the file's grid: resample each segment onto a reference volume whose geometry the test
    # sets itself in RAS; a mis-oriented file lands its voxels elsewhere.
    ref = slicer.util.addVolumeFromArray(np.zeros(lm.shape, np.uint8))
    ref.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(expected_matrix))
    for spec in SEGMENTS[:2]:
        arr = slicer.util.arrayFromSegmentBinaryLabelmap(seg_node, spec["name"], ref)
        np.testing.assert_array_equal(arr != 0, lm == spec["label"], err_msg=spec["name"])


def test_segmentation_2d_is_one_slice(mrml_scene, tmp_path):
    lm2 = _asymmetric_labelmap()[1]  # [row, col]
    path = write_segmentation_nrrd(tmp_path / "s2.seg.nrrd", lm2, SEGMENTS[:2], (0.2, 0.3))
    seg_node = mrml_scene.segmentations_logic.LoadSegmentationFromFile(str(path), False)
    mask, matrix = segment_mask_on_own_grid(mrml_scene.slicer, seg_node, "pectoral", (1,) + lm2.shape)
    np.testing.assert_array_equal(mask[0], lm2 == 2)
    np.testing.assert_allclose(matrix, _expected_ijk_to_ras((0.2, 0.3), (0, 0, 0), np.eye(3)), atol=1e-6)


def test_segmentation_header_has_slicer_keys(tmp_path):
    nrrd = pytest.importorskip("nrrd")
    write_segmentation_nrrd(tmp_path / "s.seg.nrrd", _asymmetric_labelmap(), SEGMENTS, SPACING, ORIGIN, OBLIQUE)
    _, header = nrrd.read(str(tmp_path / "s.seg.nrrd"))
    assert header["Segmentation_MasterRepresentation"] == "Binary labelmap"
    assert header["Segmentation_ContainedRepresentationNames"] == "Binary labelmap|"
    assert header["Segmentation_ReferenceImageExtentOffset"] == "0 0 0"
    for i, spec in enumerate(SEGMENTS):
        for key in ("ID", "Name", "Color", "LabelValue", "Layer", "Extent", "NameAutoGenerated",
                    "ColorAutoGenerated", "Tags"):
            assert f"Segment{i}_{key}" in header
        assert header[f"Segment{i}_Layer"] == "0" and header[f"Segment{i}_Extent"] == "0 7 0 5 0 2"
    assert header["Segment1_Tags"].startswith("TerminologyEntry:") and header["Segment1_Tags"].endswith("|")


@pytest.mark.parametrize("segments, message", [
    ([{"name": "a", "label": 1, "color": (1, 0, 0)}], "belong to no segment"),  # label 2 unclaimed
    ([{"name": "a", "label": 1, "color": (1, 0, 0)}, {"name": "b", "label": 1, "color": (0, 1, 0)}], "unique"),
    ([{"name": "a", "label": 1, "color": (255, 0, 0)}, {"name": "b", "label": 2, "color": (0, 1, 0)}], "0..1"),
    ([{"name": "a", "label": 0, "color": (1, 0, 0)}], "label"),
])
def test_segmentation_rejects_bad_segments(tmp_path, segments, message):
    with pytest.raises(ValueError, match=message):
        write_segmentation_nrrd(tmp_path / "s.seg.nrrd", _asymmetric_labelmap(), segments, SPACING)
    assert _listdir(tmp_path) == []


# ------------------------------------------------------------------------------------------------------ markups
POINTS_LPS = np.array([[10.0, 20.0, 5.0], [14.0, 26.0, 5.5], [20.0, 27.0, 6.0], [25.0, 21.0, 6.5], [21.0, 15.0, 7.0]])
VALUES = [0.5, 1.25, 3.0, 0.75, 2.0]


@pytest.mark.parametrize("closed", [False, True], ids=["Curve", "ClosedCurve"])
def test_curve_with_point_values_roundtrip(mrml_scene, tmp_path, closed):
    slicer = mrml_scene.slicer
    labels = [f"node {k}" for k in range(len(POINTS_LPS))]
    path = write_curve_markups_json(tmp_path / "c.mrk.json", POINTS_LPS, name="heart", closed=closed,
                                    point_values=VALUES, value_name="std", value_unit="mm",
                                    point_labels=labels, description="per-node std of the position")
    node_id = mrml_scene.markups_logic.LoadMarkups(str(path))
    assert node_id
    node = mrml_scene.scene.GetNodeByID(node_id)
    assert node.GetClassName() == ("vtkMRMLMarkupsClosedCurveNode" if closed else "vtkMRMLMarkupsCurveNode")
    assert node.GetName() == "heart"
    ras = slicer.util.arrayFromMarkupsControlPoints(node, world=True)
    np.testing.assert_allclose(ras, POINTS_LPS * [-1.0, -1.0, 1.0], atol=1e-9)
    assert [node.GetNthControlPointLabel(k) for k in range(node.GetNumberOfControlPoints())] == labels

    measurement = node.GetMeasurement("std")
    assert measurement is not None and measurement.IsA("vtkMRMLStaticMeasurement")
    assert measurement.GetEnabled() and measurement.GetUnits() == "mm"
    assert measurement.GetDescription() == "per-node std of the position"
    values = measurement.GetControlPointValues()
    assert values is not None and values.GetName() == "std"
    np.testing.assert_allclose([values.GetValue(k) for k in range(values.GetNumberOfTuples())], VALUES)
    # Slicer interpolates them onto the curve polydata (what colours the curve by uncertainty).
    interpolated = node.GetCurveWorld().GetPointData().GetArray("std")
    assert interpolated is not None and interpolated.GetNumberOfTuples() > len(VALUES)
    lo, hi = interpolated.GetRange()
    assert min(VALUES) - 1e-9 <= lo and hi <= max(VALUES) + 1e-9

    # Same structure as Slicer's own writer: save the loaded node with Slicer and compare the entries.
    storage = node.GetStorageNode()
    storage.SetFileName(str(tmp_path / "resaved.mrk.json"))
    assert storage.WriteData(node)
    ours = json.loads(path.read_text())["markups"][0]
    theirs = json.loads((tmp_path / "resaved.mrk.json").read_text())["markups"][0]
    theirs_std = [m for m in theirs["measurements"] if m["name"] == "std"]
    assert theirs_std == ours["measurements"]
    assert theirs["type"] == ours["type"] and theirs["coordinateSystem"] == "LPS"
    assert len(theirs["controlPoints"]) == len(ours["controlPoints"])
    for a, b in zip(ours["controlPoints"], theirs["controlPoints"]):
        assert a.keys() == b.keys()
        np.testing.assert_allclose(a.pop("position"), b.pop("position"))
        np.testing.assert_allclose(a.pop("orientation"), b.pop("orientation"))
        assert a == b
    for key in ours:
        if key not in ("name", "controlPoints", "measurements"):  # Slicer does not write the node name
            assert ours[key] == theirs[key], key


def test_curve_without_values_has_no_measurement(mrml_scene, tmp_path):
    path = write_curve_markups_json(tmp_path / "b.mrk.json", POINTS_LPS[:2], name="boundary", closed=False)
    doc = json.loads(path.read_text())
    assert doc["@schema"] == W.MARKUPS_SCHEMA and "measurements" not in doc["markups"][0]
    node = mrml_scene.scene.GetNodeByID(mrml_scene.markups_logic.LoadMarkups(str(path)))
    assert node.GetNumberOfControlPoints() == 2 and node.GetMeasurement("std") is None
    assert node.GetNthControlPointLabel(1) == "boundary-2"


@pytest.mark.parametrize("kwargs, message", [
    ({"point_values": [1.0, 2.0]}, "point values"),
    ({"point_values": [1.0, float("nan"), 1, 1, 1]}, "finite"),
    ({"point_labels": ["a"]}, "labels"),
    ({"description": "no values"}, "point_values"),
])
def test_curve_rejects_bad_input(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_curve_markups_json(tmp_path / "c.mrk.json", POINTS_LPS, name="c", closed=True, **kwargs)
    assert _listdir(tmp_path) == []


# -------------------------------------------------------------------------------------------------- CSV and JSON
def test_csv_and_json_content(tmp_path):
    write_csv(tmp_path / "t.csv", ["row", "mean_col", "std_col", "multimodal"],
              [(0, np.float32(1.5), 0.1, False), (np.int64(1), 2.25, np.float64(1 / 3), True)])
    with open(tmp_path / "t.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows == [["row", "mean_col", "std_col", "multimodal"], ["0", "1.5", "0.1", "False"],
                    ["1", "2.25", repr(1 / 3), "True"]]
    with pytest.raises(ValueError, match="fields"):
        write_csv(tmp_path / "bad.csv", ["a", "b"], [(1,)])

    write_json(tmp_path / "s.json", {"task": "mammo-pectoral", "u": np.float32(0.5), "n": np.int64(3),
                                     "nan": float("nan"), "arr": np.arange(3), "flag": np.bool_(True),
                                     "path": tmp_path / "x.csv", "t": (1, 2)})
    assert json.loads((tmp_path / "s.json").read_text()) == {
        "task": "mammo-pectoral", "u": 0.5, "n": 3, "nan": None, "arr": [0, 1, 2], "flag": True,
        "path": str(tmp_path / "x.csv"), "t": [1, 2]}
    assert sorted(_listdir(tmp_path)) == ["s.json", "t.csv"]


# ------------------------------------------------------------------------------------------------------ atomicity
def _failing_nrrd_write(fh, *args, **kwargs):
    fh.write(b"NRRD0005\n# half a file")
    fh.flush()
    raise OSError("disk full (simulated)")


@pytest.mark.parametrize("which", ["volume", "segmentation"])
def test_interrupted_nrrd_write_leaves_nothing(tmp_path, monkeypatch, which):
    nrrd = pytest.importorskip("nrrd")
    monkeypatch.setattr(nrrd, "write", _failing_nrrd_write)
    dest = tmp_path / ("x.nrrd" if which == "volume" else "x.seg.nrrd")
    with pytest.raises(OSError, match="simulated"):
        if which == "volume":
            write_volume_nrrd(dest, np.zeros((2, 3), np.float32), (1, 1))
        else:
            write_segmentation_nrrd(dest, np.ones((2, 3), np.uint8), SEGMENTS[:1], (1, 1))
    assert _listdir(tmp_path) == []


def test_interrupted_write_keeps_the_previous_file(tmp_path):
    dest = tmp_path / "queue.csv"
    write_csv(dest, ["case", "image_uncertainty"], [("a", 0.5)])
    before = dest.read_bytes()

    def rows():
        yield ("b", 0.7)
        raise KeyboardInterrupt  # a user pressing Ctrl-C half-way

    with pytest.raises(KeyboardInterrupt):
        write_csv(dest, ["case", "image_uncertainty"], rows())
    assert dest.read_bytes() == before and _listdir(tmp_path) == ["queue.csv"]


def test_atomic_path_replaces_only_on_success(tmp_path):
    dest = tmp_path / "summary.json"
    with pytest.raises(RuntimeError):
        with W._atomic_path(dest) as tmp:
            assert tmp.parent == tmp_path and tmp.exists() and tmp.name.startswith(".summary.json.")
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert _listdir(tmp_path) == []
    with W._atomic_path(dest) as tmp:
        tmp.write_text("{}")
    assert _listdir(tmp_path) == ["summary.json"] and dest.read_text() == "{}"
