"""The uncertain regions of a loaded result, from its nodes and files, ranked (uqseg.correction.regions), with
their positions in RAS for jumping the views.

Per task:
- mammo-pectoral: boundary.csv of the case folder (rows, mean_col, std_col, multimodal; input pixels) →
  `pectoral_regions`; threshold = the card's σ (256-grid columns) × `col_scale(width)`.
- cxr-landmarks: the three closed curves ("curve:<organ>") — node positions from their control points (RAS →
  the input's IJK), node std from their ``std`` measurement (mm → input pixels: ÷ the mean in-plane spacing, exact
  for square pixels) → `cxr_regions`; threshold = the card's std (512-square px) × max(H, W) / 512.
- mammo-breast / ct-organs: the overlay volume (entropy / variance) on the input grid → `component_regions`
  (cut into pieces of at most `max_extent_mm`, so a band along the whole skin line becomes a series of regions);
  threshold = the card's value, else (no card value, e.g. ct-organs) the 90th percentile of the overlay inside the
  segmentation's voxels (`uqseg.correction.thresholds`).

Frames. Regions are in INPUT array indices ((row, col) or (slice, row, col), pixel centres) as uqseg returns them;
`RegionSet.box_ras(region)` turns the index box (grown by half a voxel, so it covers whole pixels) into two RAS
corners through the input volume's IJK→RAS (i = col, j = row, k = slice) and `focus_ras(region)` is the point the
views centre on: the members' mean position, or for a component whose mean falls outside it, its most uncertain
voxel (`details["peak_at"]`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..segment_arrays import grid_matrix, grid_shape, label_map

#: pieces of a breast / CT uncertain component are at most this long along any axis (mm)
BREAST_MAX_EXTENT_MM = 40.0
CT_MAX_EXTENT_MM = 30.0
BREAST_MIN_AREA_MM2 = 4.0
CT_MIN_VOLUME_MM3 = 20.0


@dataclass
class RegionSet:
    """Ranked regions of one case and what is needed to place them in the scene."""

    task: str
    regions: list
    threshold: object  # uqseg.correction.thresholds.Threshold
    ijk_to_ras: np.ndarray  # 4 × 4 of the input grid
    shape: tuple  # array shape of the input: (rows, cols) or (slices, rows, cols)
    labels: np.ndarray | None = field(default=None, repr=False)  # component map (breast / CT), else None

    def __len__(self) -> int:
        return len(self.regions)

    def by_id(self, region_id: int):
        for r in self.regions:
            if r.id == int(region_id):
                return r
        raise KeyError(f"no region {region_id}")

    def index_to_ras(self, index) -> np.ndarray:
        """Array index ((row, col) or (slice, row, col)) → RAS."""
        idx = [float(v) for v in index]
        ijk = idx[::-1] + [0.0] * (3 - len(idx))
        return (self.ijk_to_ras @ np.array(ijk + [1.0]))[:3]

    def box_ras(self, region) -> tuple[np.ndarray, np.ndarray]:
        """Two opposite RAS corners of the region's index box, grown by half a voxel."""
        lo = np.asarray(region.bbox_min, float) - 0.5
        hi = np.asarray(region.bbox_max, float) + 0.5
        corners = []
        for b in range(1 << len(lo)):
            corners.append(self.index_to_ras([(lo, hi)[b >> k & 1][k] for k in range(len(lo))]))
        corners = np.array(corners)
        return corners.min(axis=0), corners.max(axis=0)

    def focus_ras(self, region) -> np.ndarray:
        centre = np.asarray(region.centre, float)
        if self.labels is not None:
            idx = tuple(int(np.clip(np.rint(c), 0, n - 1)) for c, n in zip(centre, self.labels.shape))
            if self.labels[idx] != region.id and "peak_at" in region.details:
                centre = np.asarray(region.details["peak_at"], float)
        return self.index_to_ras(centre)

    def mask(self, region_id: int) -> np.ndarray:
        """bool mask of a component region on the input grid (breast / CT only)."""
        if self.labels is None:
            raise ValueError(f"{self.task}: regions are not voxel components")
        return self.labels == int(region_id)


# ------------------------------------------------------------------------------------------------------ helpers
def volume_array(volume_node) -> np.ndarray:
    """The volume's voxels as float64 ``[slice, row, col]`` (a copy)."""
    from vtk.util.numpy_support import vtk_to_numpy

    k, j, i = grid_shape(volume_node)
    scalars = volume_node.GetImageData().GetPointData().GetScalars()
    return np.array(vtk_to_numpy(scalars), dtype=np.float64).reshape(k, j, i)


def in_plane_spacing(ijk_to_ras: np.ndarray) -> tuple[float, float]:
    """(column spacing, row spacing) in mm: the lengths of the first two IJK axes in RAS."""
    return float(np.linalg.norm(ijk_to_ras[:3, 0])), float(np.linalg.norm(ijk_to_ras[:3, 1]))


def model_card(summary: dict):
    """The model card named in summary.json (id), or None when that model is not installed."""
    from uqseg.models.registry import ModelError, find_model

    model = summary.get("model") or {}
    try:
        return find_model(summary["task"], model.get("id"))
    except (ModelError, KeyError):
        return None


def _input_grid(results) -> tuple[np.ndarray, tuple]:
    volume = results.input_volume
    if volume is None:
        raise ValueError(f"{results.case}: reviewing needs the input volume (load the results with it)")
    k, j, i = grid_shape(volume)
    return grid_matrix(volume), ((j, i) if k == 1 else (k, j, i))


# ------------------------------------------------------------------------------------------------------ per task
def pectoral_region_set(results, card=None, threshold: float | None = None) -> RegionSet:
    from uqseg.correction.regions import pectoral_regions
    from uqseg.correction.thresholds import card_to_case_scale, region_threshold

    from ..display.band import read_boundary_csv

    files = results.summary.get("files", {}) or {}
    b = read_boundary_csv(Path(results.case_dir) / files.get("boundary", "boundary.csv"))
    matrix, shape = _input_grid(results)
    thr = region_threshold(card, b["std_col"], override=threshold, scale=card_to_case_scale(results.task, shape),
                           units="input pixels (boundary σ)")
    regions = pectoral_regions(b["rows"], b["std_col"], b["multimodal"], b["mean_col"], thr.value, width=shape[1])
    return RegionSet(results.task, regions, thr, matrix, shape)


def cxr_curve_nodes(results) -> list[tuple[str, object]]:
    """(organ, curve node) in the engine's node order (right lung, left lung, heart)."""
    from uqseg.cxr.graph import organ_slices

    out = []
    for organ in organ_slices():
        curve = results.nodes.get(f"curve:{organ}")
        if curve is None:
            raise ValueError(f"{results.case}: no curve for {organ}")
        out.append((organ, curve))
    return out


def cxr_nodes_from_curves(results) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(positions (120, 2) pixel-centre (x, y) of the input, node std (120,) in input px, organ per node) read
    from the curves' control points and their ``std`` measurement (mm)."""
    from ..display.node_colormap import curve_values

    matrix, _ = _input_grid(results)
    ras_to_ijk = np.linalg.inv(matrix)
    sx, sy = in_plane_spacing(matrix)
    positions, stds, organs = [], [], []
    for organ, curve in cxr_curve_nodes(results):
        n = curve.GetNumberOfControlPoints()
        for k in range(n):
            p = curve.GetNthControlPointPositionWorld(k)
            ijk = ras_to_ijk @ np.array([p[0], p[1], p[2], 1.0])
            positions.append(ijk[:2])
        values = curve_values(curve)
        if values.size != n:
            raise ValueError(f"{curve.GetName()}: {values.size} std values for {n} control points")
        stds.append(values / (0.5 * (sx + sy)))
        organs += [organ] * n
    return np.array(positions), np.concatenate(stds), organs


def cxr_region_set(results, card=None, threshold: float | None = None) -> RegionSet:
    from uqseg.correction.regions import cxr_regions
    from uqseg.correction.thresholds import card_to_case_scale, region_threshold

    matrix, shape = _input_grid(results)
    xy, std, organs = cxr_nodes_from_curves(results)
    thr = region_threshold(card, std, override=threshold, scale=card_to_case_scale(results.task, shape),
                           units="input pixels (node std)")
    return RegionSet(results.task, cxr_regions(std, organs, xy, thr.value), thr, matrix, shape)


def component_region_set(results, card=None, threshold: float | None = None,
                         max_extent_mm: float | None = None) -> RegionSet:
    from uqseg.correction.regions import component_regions
    from uqseg.correction.thresholds import region_threshold

    overlay = results.nodes.get("overlay")
    if overlay is None:
        raise ValueError(f"{results.case}: no uncertainty volume to find regions in")
    matrix, shape = _input_grid(results)
    u = volume_array(overlay)
    u = u[0] if len(shape) == 2 else u
    if u.shape != tuple(shape):
        raise ValueError(f"{overlay.GetName()}: {u.shape} voxels, the input has {shape}")
    sx, sy = in_plane_spacing(matrix)
    spacing = (sx, sy, float(np.linalg.norm(matrix[:3, 2])))
    inside = None
    seg = results.nodes.get("segmentation")
    if seg is not None:
        from ..correction.labels import label_segments

        inside = label_map(seg, results.input_volume, {s: 1 for s in label_segments(seg)}) != 0
    values = u[inside] if inside is not None and inside.any() else u[u > 0]
    thr = region_threshold(card, values, override=threshold, units=results.summary.get(
        "uncertainty_units" if results.task == "mammo-breast" else "variance_units"))
    is_ct = results.task == "ct-organs"
    found = component_regions(u, thr.value, spacing,
                              max_extent_mm=max_extent_mm or (CT_MAX_EXTENT_MM if is_ct else BREAST_MAX_EXTENT_MM),
                              min_volume_mm3=CT_MIN_VOLUME_MM3 if is_ct else BREAST_MIN_AREA_MM2)
    return RegionSet(results.task, found.regions, thr, matrix, shape, labels=found.labels)


REGION_SOURCES = {
    "mammo-pectoral": pectoral_region_set,
    "cxr-landmarks": cxr_region_set,
    "mammo-breast": component_region_set,
    "ct-organs": component_region_set,
}


def compute_regions(results, threshold: float | None = None, card="auto") -> RegionSet:
    """The ranked regions of a loaded result (module docstring). threshold: the user's value in the case's units
    (None: the model card's default). card: a model card, None (no card: case percentile), or "auto" (the card of
    the model named in summary.json, when installed)."""
    source = REGION_SOURCES.get(results.task)
    if source is None:
        raise ValueError(f"no uncertain regions defined for task {results.task!r}")
    if isinstance(card, str) and card == "auto":
        card = model_card(results.summary)
    return source(results, card=card, threshold=threshold)
