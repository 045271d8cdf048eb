"""Jump the slice views to a region: centre on it and zoom so that it fills about half of the view.

Works on the slice NODES (vtkMRMLSliceNode), so it needs no slice widget or application: in Slicer the slice
logics and views follow their nodes; on slicer-core the offscreen renderers of `render.py` do.

Frames: RAS millimetres (MRML world). `jump_to_box(scene, lo_ras, hi_ras)` takes the region's bounding box as two
opposite RAS corners; for every slice node (all of the scene's, or the ones given):
1. `JumpSliceByCentering(r, a, s)` at the region's focus point (`centre_ras`, default the box centre) — the slice
   plane passes through it and the view is centred on it;
2. the box's extent along the slice's in-plane axes (the first two columns of SliceToRAS) times `margin`, at
   least `min_fov_mm`, widened to the view's aspect ratio (its pixel dimensions), becomes `SetFieldOfView`
   (the slice thickness, the third value, is kept).
"""

from __future__ import annotations

import numpy as np

DEFAULT_MARGIN = 2.0  # the region fills about half of the view along its larger in-plane extent
MIN_FOV_MM = 20.0


def slice_nodes(scene) -> list:
    nodes = scene.GetNodesByClass("vtkMRMLSliceNode")
    return [nodes.GetItemAsObject(k) for k in range(nodes.GetNumberOfItems())]


def _slice_axes(node) -> np.ndarray:
    m = node.GetSliceToRAS()
    return np.array([[m.GetElement(r, c) for r in range(3)] for c in range(3)])  # rows: x, y, normal in RAS


def box_corners(lo_ras, hi_ras) -> np.ndarray:
    lo, hi = np.asarray(lo_ras, float), np.asarray(hi_ras, float)
    return np.array([[(lo, hi)[b >> k & 1][k] for k in range(3)] for b in range(8)])


def field_of_view_for(node, lo_ras, hi_ras, margin: float = DEFAULT_MARGIN,
                      min_fov_mm: float = MIN_FOV_MM) -> tuple[float, float, float]:
    """The (x, y, z) field of view (mm) that shows the box with `margin` in this slice node's orientation."""
    axes = _slice_axes(node)
    corners = box_corners(lo_ras, hi_ras)
    proj = corners @ axes[:2].T  # (8, 2) extent along the slice x and y axes
    extent = proj.max(axis=0) - proj.min(axis=0)
    fx, fy = (max(float(e) * margin, min_fov_mm) for e in extent)
    dims = node.GetDimensions()
    aspect = float(dims[1]) / float(dims[0]) if dims[0] > 0 else 1.0  # view height / width
    fx = max(fx, fy / aspect)
    return fx, fx * aspect, float(node.GetFieldOfView()[2])


def jump_to_box(scene, lo_ras, hi_ras, centre_ras=None, margin: float = DEFAULT_MARGIN,
                min_fov_mm: float = MIN_FOV_MM, nodes=None) -> list:
    """Centre every slice view (or `nodes`) on `centre_ras` (default: the box centre) and zoom to the box (module
    docstring); returns the nodes moved."""
    lo, hi = np.minimum(lo_ras, hi_ras), np.maximum(lo_ras, hi_ras)
    centre = 0.5 * (lo + hi) if centre_ras is None else np.asarray(centre_ras, float)
    moved = []
    for node in (slice_nodes(scene) if nodes is None else nodes):
        was = node.StartModify()
        node.JumpSliceByCentering(*[float(v) for v in centre])
        node.SetFieldOfView(*field_of_view_for(node, lo, hi, margin, min_fov_mm))
        node.UpdateMatrices()
        node.EndModify(was)
        moved.append(node)
    return moved


def view_centre_ras(node) -> np.ndarray:
    """The RAS position at the centre of a slice view (XYToRAS at the middle pixel; used by tests and the GUI)."""
    dims = node.GetDimensions()
    p = node.GetXYToRAS().MultiplyPoint((dims[0] / 2.0, dims[1] / 2.0, 0.0, 1.0))
    return np.array(p[:3])
