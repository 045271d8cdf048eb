"""mammo-pectoral: the mean boundary curve, its ±σ uncertainty band, the muscle, and the multimodal rows.

Files (docs/cli-contract.md): ``boundary.csv`` (row, mean_col, std_col, multimodal — input pixel indices, σ in input
columns), ``pectoral.seg.nrrd`` (segment ``pectoral_muscle`` on the input grid), ``boundary.mrk.json`` (open curve
along the mean boundary, per-point σ in mm as the static measurement ``std``).

What is built (nodes returned by role, each put into the result folder as soon as it exists):

- "segmentation": one segmentation node "<case> pectoral" with three segments on the input's pixel grid —
    ``pectoral_muscle`` (from the file; light fill, no outline: its edge is the mean curve),
    ``uncertainty_band`` — every pixel whose centre lies between the μ−σ and μ+σ curves of its row
        (|col − mean_col| ≤ std_col), from boundary.csv: filled, semi-transparent cyan, its outline (the μ−σ and
        μ+σ curves) opaque,
    ``multimodal_rows`` — the same band restricted to rows flagged multimodal, magenta, drawn over the band
        (absent when no row is multimodal).
  The segments overlap on purpose (the band straddles the muscle edge); Slicer keeps overlapping segments in
  separate labelmap layers. The segmentation's reference geometry is the input volume's, so later editing
  (Segment Editor) happens on the input grid.
- "curve": the mean boundary (`vtkMRMLMarkupsCurveNode` from boundary.mrk.json) with its ``std`` measurement
  kept; yellow line in the slice views, coloured by σ with the project's viridis map (0 … largest σ) in 3-D (slice
  views ignore curve scalars, and the band already shows σ there). A thin line (view-relative width, so zooming
  in never covers the band), small glyphs, point labels hidden, locked (corrections go through the model:
  `UQSegmentationLib.correction.pectoral` unlocks it while a review runs). No colour legend: in the slice views
  the legend would describe a curve drawn in one colour.
- "multimodal": a fiducial node "<case> multimodal rows", one control point per run of consecutive multimodal rows,
  at the run's middle row on the mean boundary, labelled "rows a–b"; its control-point descriptions hold
  "rows a-b" for navigation. Absent when no row is multimodal.

The band's grid is the input volume's (dimensions and IJK→RAS) when given — after checking that its size matches
the result's input — else the grid of pectoral.seg.nrrd (same grid, written by the engine).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..hierarchy import NodeCollector
from .colormaps import color_by_point_array
from .terminology import apply_default_terminology

BAND_SEGMENT = "uncertainty_band"
MULTIMODAL_SEGMENT = "multimodal_rows"
MUSCLE_SEGMENT = "pectoral_muscle"

BAND_COLOR = (0.15, 0.85, 1.0)
MULTIMODAL_COLOR = (1.0, 0.1, 0.85)
CURVE_COLOR = (1.0, 0.9, 0.1)
BAND_FILL_OPACITY = 0.45
MULTIMODAL_FILL_OPACITY = 0.6
MUSCLE_FILL_OPACITY = 0.25


# ------------------------------------------------------------------------------------------------ pure numpy
def read_boundary_csv(path) -> dict[str, np.ndarray]:
    """boundary.csv → arrays rows (int), mean_col, std_col (float), multimodal (bool), sorted by row."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = {"row", "mean_col", "std_col", "multimodal"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        records = [(int(float(r["row"])), float(r["mean_col"]), float(r["std_col"]), int(float(r["multimodal"])))
                   for r in reader]
    a = np.array(records, dtype=float).reshape(-1, 4)
    a = a[np.argsort(a[:, 0], kind="stable")]
    return {"rows": a[:, 0].astype(int), "mean_col": a[:, 1], "std_col": a[:, 2], "multimodal": a[:, 3] != 0}


def band_mask(rows, mean_col, std_col, shape, only=None) -> np.ndarray:
    """(H, W) bool: pixel (r, c) is in the band when row r is listed and |c − mean_col| ≤ std_col (pixel centres).

    only: optional bool per listed row; rows where it is False are left out (e.g. only multimodal rows). The
    definition is the engine's (`uqseg.mammo.pectoral_band.band_mask`, shared with the DICOM Parametric Map),
    imported when called: this module loads in Slicer before the engine's packages may be installed.
    """
    from uqseg.mammo.pectoral_band import band_mask as engine_band_mask

    return engine_band_mask(rows, mean_col, std_col, shape, only=only)


def multimodal_runs(rows, multimodal) -> list[tuple[int, int]]:
    """Runs of consecutive image rows flagged multimodal: [(first_row, last_row), ...] in row order."""
    rows = np.asarray(rows, int)
    flags = np.asarray(multimodal, bool)
    runs: list[tuple[int, int]] = []
    for r in rows[flags]:
        if runs and r == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], int(r))
        else:
            runs.append((int(r), int(r)))
    return runs


# ------------------------------------------------------------------------------------------------ MRML helpers
def _vtk_matrix(m):
    import vtk

    out = vtk.vtkMatrix4x4()
    for i in range(4):
        for j in range(4):
            out.SetElement(i, j, float(m[i][j]))
    return out


def _np_matrix(vtk_matrix) -> np.ndarray:
    return np.array([[vtk_matrix.GetElement(i, j) for j in range(4)] for i in range(4)])


def input_grid(input_volume_node=None, segmentation_node=None, segment_id=None, shape_hint=None):
    """(shape (H, W), IJK→RAS 4×4) of the input's pixel grid: from the volume node, else from a segment."""
    import slicer
    import vtk

    if input_volume_node is not None and input_volume_node.GetImageData() is not None:
        dims = input_volume_node.GetImageData().GetDimensions()
        m = vtk.vtkMatrix4x4()
        input_volume_node.GetIJKToRASMatrix(m)
        return (dims[1], dims[0]), _np_matrix(m)
    if segmentation_node is None:
        raise ValueError("no input volume and no segmentation to take the pixel grid from")
    oi = slicer.vtkOrientedImageData()
    segmentation_node.GetBinaryLabelmapRepresentation(segment_id, oi)
    m = vtk.vtkMatrix4x4()
    oi.GetImageToWorldMatrix(m)
    if shape_hint is not None:
        shape = (int(shape_hint[0]), int(shape_hint[1]))
    else:
        ext = oi.GetExtent()
        shape = (ext[3] + 1, ext[1] + 1)
    return shape, _np_matrix(m)


def add_mask_segment(segmentation_node, mask2d: np.ndarray, ijk_to_ras: np.ndarray, segment_id: str, name: str,
                     color) -> str:
    """Add (or replace) a segment holding `mask2d` ([row, col] on the grid of `ijk_to_ras`); returns its ID."""
    import slicer
    import vtk
    from vtk.util.numpy_support import numpy_to_vtk

    segmentation = segmentation_node.GetSegmentation()
    if segmentation.GetSegment(segment_id) is not None:
        segmentation.RemoveSegment(segment_id)
    h, w = mask2d.shape
    oi = slicer.vtkOrientedImageData()
    oi.SetExtent(0, w - 1, 0, h - 1, 0, 0)
    oi.GetPointData().SetScalars(numpy_to_vtk(np.ascontiguousarray(mask2d, np.uint8).reshape(-1), deep=True,
                                              array_type=vtk.VTK_UNSIGNED_CHAR))
    oi.SetImageToWorldMatrix(_vtk_matrix(ijk_to_ras))
    segment = slicer.vtkSegment()
    segment.SetName(name)
    segment.SetColor(*color)
    segment.AddRepresentation(slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName(), oi)
    segmentation.AddSegment(segment, segment_id)
    return segment_id


def style_boundary_curve(scene, curve, std_max: float | None = None) -> None:
    """Yellow locked curve in 2-D; coloured by its `std` point array (viridis, 0..max) in 3-D."""
    curve.SetLocked(True)
    display = curve.GetDisplayNode()
    display.SetColor(*CURVE_COLOR)
    display.SetSelectedColor(*CURVE_COLOR)
    display.SetActiveColor(*CURVE_COLOR)
    display.SetPointLabelsVisibility(False)
    display.SetPropertiesLabelVisibility(False)
    # Sizes relative to the view (not in mm): the line stays a thin ~2-pixel line at any zoom, so it never hides
    # the band it sits in. 60 control points: small glyphs.
    display.SetGlyphScale(0.6)
    display.SetLineThickness(0.6)
    display.SetOpacity(1.0)
    if curve.GetMeasurement("std") is not None:
        color_by_point_array(scene, display, "std", (0.0, std_max if std_max and std_max > 0 else 1.0), "viridis")


def multimodal_fiducials(scene, name: str, runs, rows, mean_col, ijk_to_ras):
    """A locked fiducial node, one point per multimodal run at its middle row on the mean boundary."""
    from .points import locked_point_list

    by_row = dict(zip(np.asarray(rows, int).tolist(), np.asarray(mean_col, float).tolist()))
    points = []
    for r0, r1 in runs:
        mid = (r0 + r1) // 2
        col = by_row.get(mid, by_row.get(r0))
        ras = ijk_to_ras @ np.array([col, mid, 0.0, 1.0])
        points.append((ras[:3].tolist(), f"rows {r0}–{r1}", f"rows {r0}-{r1}"))
    return locked_point_list(scene, name, points, MULTIMODAL_COLOR)


# ------------------------------------------------------------------------------------------------ the loader
def load_pectoral_results(scene, case_dir, summary: dict, input_volume_node=None, folder_item=None) -> dict:
    """Build the mammo-pectoral nodes from a case folder; returns role → node (see the module docstring).

    Each node goes into `folder_item` (a result folder) as soon as it is created; on an error the nodes made so
    far are removed when no folder was given (with a folder, the caller removes the folder).
    """
    from .. import nodes_io
    case_dir = Path(case_dir)
    files = summary.get("files", {}) or {}
    case = summary.get("case") or case_dir.name
    boundary = read_boundary_csv(case_dir / files.get("boundary", "boundary.csv"))
    shape_hint = (summary.get("input_geometry") or {}).get("shape")
    if input_volume_node is not None and shape_hint is not None:
        dims = input_volume_node.GetImageData().GetDimensions()
        if (dims[1], dims[0]) != tuple(shape_hint[:2]):
            raise ValueError(f"{case_dir}: the result is for a {shape_hint[1]}×{shape_hint[0]} image, but the "
                             f"input volume {input_volume_node.GetName()!r} is {dims[0]}×{dims[1]}")
    out = NodeCollector(scene, folder_item)
    try:
        seg_path = case_dir / files.get("segmentation", "pectoral.seg.nrrd")
        segmentation = out.add("segmentation", nodes_io.load_segmentation(scene, seg_path, f"{case} pectoral"))
        apply_default_terminology(segmentation)
        seg = segmentation.GetSegmentation()
        muscle_id = MUSCLE_SEGMENT if seg.GetSegment(MUSCLE_SEGMENT) is not None else seg.GetNthSegmentID(0)
        shape, ijk_to_ras = input_grid(input_volume_node, segmentation, muscle_id, shape_hint)
        if input_volume_node is not None:
            segmentation.SetReferenceImageGeometryParameterFromVolumeNode(input_volume_node)

        rows, mean, std, mm = boundary["rows"], boundary["mean_col"], boundary["std_col"], boundary["multimodal"]
        add_mask_segment(segmentation, band_mask(rows, mean, std, shape), ijk_to_ras, BAND_SEGMENT,
                         "uncertainty band (±1σ)", BAND_COLOR)
        runs = multimodal_runs(rows, mm)
        if runs:
            add_mask_segment(segmentation, band_mask(rows, mean, std, shape, only=mm), ijk_to_ras,
                             MULTIMODAL_SEGMENT, "multimodal rows", MULTIMODAL_COLOR)
        display = segmentation.GetDisplayNode()
        display.SetSegmentOpacity2DFill(muscle_id, MUSCLE_FILL_OPACITY)
        display.SetSegmentOpacity2DOutline(muscle_id, 0.0)  # its edge is the mean curve, drawn on top
        display.SetSegmentOpacity2DFill(BAND_SEGMENT, BAND_FILL_OPACITY)
        display.SetSegmentOpacity2DOutline(BAND_SEGMENT, 1.0)  # the μ−σ and μ+σ curves
        if runs:
            display.SetSegmentOpacity2DFill(MULTIMODAL_SEGMENT, MULTIMODAL_FILL_OPACITY)
            out.add("multimodal", multimodal_fiducials(scene, f"{case} multimodal rows", runs, rows, mean,
                                                       ijk_to_ras))

        curve_file = files.get("curve", "boundary.mrk.json")
        if (case_dir / curve_file).is_file():
            curve = out.add("curve", nodes_io.load_markups(scene, case_dir / curve_file, f"{case} pectoral boundary"))
            m = curve.GetMeasurement("std")
            values = m.GetControlPointValues() if m is not None else None
            std_max = values.GetRange()[1] if values is not None and values.GetNumberOfTuples() else None
            style_boundary_curve(scene, curve, std_max)
    except BaseException:
        if not folder_item:
            out.discard()
        raise
    return out.nodes
