"""cxr-landmarks: organ contours whose nodes are coloured by their std, in 3-D and in the slice views.

Files (docs/cli-contract.md): one closed curve ``<organ>.mrk.json`` per organ (right_lung, left_lung, heart) with the
per-node std as the control-point measurement ``std``, ``landmarks.csv``, ``segmentation.seg.nrrd``.

Per organ:
- "curve:<organ>": the closed curve (`vtkMRMLMarkupsClosedCurveNode`). Slicer interpolates the ``std`` values onto
  the curve polydata; the display node's active scalar is that point array, with the project's viridis map, a
  manual scalar range shared by all organs (0 … the largest std of the case) and scalar visibility on: the curve
  is coloured by std in 3-D views. Slice views ignore markups scalars (docs/testing-slicer-code.md), so in 2-D the curve only
  shows its control points (small glyphs, no labels; line hidden) to keep them editable.
- "model:<organ>": a model node mirroring the curve — a `vtkTubeFilter` around `curve.GetCurveWorldConnection()`
  (a live pipeline: moving a control point or changing the measurement re-colours and re-shapes the tube without
  any observer), carrying the same ``std`` point array, with the same colour node and range, `SetVisibility2D(True)`
  and slice display mode "projection": the model slice displayable manager paints the tube's footprint on the
  slice, coloured by std. In 3-D the tube is hidden (the curve shows there).
- "legend": one colour legend ("node std (<units>)", units from the measurement, e.g. mm) on the first model.
- "segmentation": segmentation.seg.nrrd when present: faint fill, no outline (the contours are the curves), with
  standard terminology for the organ segments.

Tube radius: `tube_radius_mm` when given, else 1 % of the curves' larger in-plane extent (at least 1 mm):
about 3 mm on a 512-pixel chest X-ray at 0.7 mm/pixel, drawn about 8 pixels wide when the image fills a 512-pixel
view. The 3-D curve line uses the same diameter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..hierarchy import NodeCollector
from .colormaps import color_by_point_array
from .legend import add_legend
from .terminology import load_case_segmentation

ORGANS = ("right_lung", "left_lung", "heart")
VALUE_NAME = "std"
COLORMAP = "viridis"
SEGMENT_FILL_OPACITY = 0.15


def organ_curve_files(case_dir: Path, summary: dict) -> dict[str, Path]:
    """organ → .mrk.json path: the curves summary.json lists (``files.curves`` organ → file, or any file entry
    ending in .mrk.json), else every `*.mrk.json` in the case folder."""
    files = summary.get("files", {}) or {}
    listed: list[str] = []
    for value in files.values():
        for v in (value.values() if isinstance(value, dict) else [value]):
            if isinstance(v, str) and v.endswith(".mrk.json"):
                listed.append(v)
    paths = [case_dir / v for v in listed] if listed else sorted(case_dir.glob("*.mrk.json"))
    out = {p.name[: -len(".mrk.json")]: p for p in paths}
    order = {o: k for k, o in enumerate(ORGANS)}
    return dict(sorted(out.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


def curve_values(curve, name: str = VALUE_NAME) -> np.ndarray:
    """The per-control-point values of the curve's static measurement `name` (empty when absent)."""
    m = curve.GetMeasurement(name)
    values = m.GetControlPointValues() if m is not None else None
    if values is None:
        return np.zeros(0)
    return np.array([values.GetValue(k) for k in range(values.GetNumberOfTuples())])


def color_curve_by_values(scene, curve, value_range, colormap: str = COLORMAP, name: str = VALUE_NAME,
                          line_radius_mm: float = 1.0) -> None:
    """Colour the curve by its `name` point array (3-D views); 2-D shows control points only."""
    display = curve.GetDisplayNode()
    color_by_point_array(scene, display, name, value_range, colormap)
    display.SetPointLabelsVisibility(False)
    display.SetPropertiesLabelVisibility(False)
    # Control points: small white discs (the handles a user drags); the line is coloured by the scalars in 3-D.
    display.SetGlyphTypeFromString("Circle2D")
    display.SetGlyphScale(1.2)
    display.SetSelectedColor(1.0, 1.0, 1.0)
    display.SetColor(1.0, 1.0, 1.0)
    display.SetActiveColor(1.0, 1.0, 1.0)
    display.SetCurveLineSizeMode(display.UseLineDiameter)
    display.SetLineDiameter(2.0 * line_radius_mm)
    display.SetLineThickness(0.1)
    display.SetSliceProjection(False)


def mirror_curve_as_tube(scene, curve, value_range, radius_mm: float, colormap: str = COLORMAP,
                         name: str = VALUE_NAME, model_name: str | None = None):
    """A model node: a tube around the curve (live pipeline) coloured by `name`, shown in slice views."""
    import slicer
    import vtk

    tube = vtk.vtkTubeFilter()
    tube.SetInputConnection(curve.GetCurveWorldConnection())
    tube.SetRadius(float(radius_mm))
    tube.SetNumberOfSides(12)
    tube.CappingOn()
    model = slicer.vtkMRMLModelNode()
    model.SetName(model_name or f"{curve.GetName()} ({name})")
    model.SetPolyDataConnection(tube.GetOutputPort())
    model.SetAttribute("UQSegmentation.MirrorOf", curve.GetID())
    scene.AddNode(model)
    model.CreateDefaultDisplayNodes()
    display = model.GetDisplayNode()
    color_by_point_array(scene, display, name, value_range, colormap)
    display.SetVisibility(True)
    display.SetVisibility2D(True)
    display.SetVisibility3D(False)
    display.SetSliceDisplayModeToProjection()
    display.SetSliceIntersectionOpacity(1.0)
    display.SetOpacity(1.0)
    model._uq_tube = tube  # keep the filter alive as long as the Python wrapper of the node
    return model


def load_cxr_results(scene, case_dir, summary: dict, input_volume_node=None, folder_item=None,
                     tube_radius_mm: float | None = None, colormap: str = COLORMAP) -> dict:
    """Build the cxr-landmarks nodes from a case folder; returns role → node (see the module docstring)."""
    from .. import nodes_io
    case_dir = Path(case_dir)
    case = summary.get("case") or case_dir.name
    files = summary.get("files", {}) or {}
    curve_files = organ_curve_files(case_dir, summary)
    if not curve_files:
        raise FileNotFoundError(f"{case_dir}: no <organ>.mrk.json curves")
    out = NodeCollector(scene, folder_item)
    try:
        load_case_segmentation(out, case_dir, files, f"{case} organs", input_volume_node, SEGMENT_FILL_OPACITY, 0.0)
        curves = {organ: out.add(f"curve:{organ}", nodes_io.load_markups(scene, path, f"{case} {organ}"))
                  for organ, path in curve_files.items()}
        all_values = np.concatenate([curve_values(c) for c in curves.values()] or [np.zeros(0)])
        hi = float(all_values.max()) if all_values.size and all_values.max() > 0 else 1.0
        value_range = (0.0, hi)
        units = ""
        for c in curves.values():
            m = c.GetMeasurement(VALUE_NAME)
            if m is not None and m.GetUnits():
                units = m.GetUnits()
                break
        if tube_radius_mm is None:
            extent = 0.0
            for c in curves.values():
                b = [0.0] * 6
                c.GetRASBounds(b)
                extent = max(extent, b[1] - b[0], b[3] - b[2])
            tube_radius_mm = max(1.0, 0.01 * extent)
        first_model = None
        for organ, curve in curves.items():
            color_curve_by_values(scene, curve, value_range, colormap, line_radius_mm=tube_radius_mm)
            model = out.add(f"model:{organ}", mirror_curve_as_tube(scene, curve, value_range, tube_radius_mm,
                                                                   colormap, model_name=f"{case} {organ} std"))
            first_model = first_model or model
        out.add("legend", add_legend(scene, first_model, "node std", units))
    except BaseException:
        if not folder_item:
            out.discard()
        raise
    nodes = dict(out.nodes)
    return nodes
