"""Uncertain regions of one case, ranked by the uncertainty they hold (highest first), for guided review.

Three kinds of result, one extractor each; all take the threshold in the SAME units as the uncertainty they are given
(see `uqseg.correction.thresholds` for the card default and its conversion to a case's units):

- `pectoral_regions` — runs of consecutive boundary rows (input pixel rows, as in `PectoralResult.rows` /
  boundary.csv) whose σ (input pixels) exceeds the threshold OR that are multimodal;
- `cxr_regions` — arcs of consecutive nodes of one organ ring whose node std (input pixels) exceeds the threshold;
  rings are CLOSED, so an arc may wrap around the ring's first node;
- `component_regions` — connected components (8-connectivity in 2-D, 26 in 3-D) of an uncertainty map (CT
  predictive variance, breast entropy) above the threshold, small ones dropped.

Every region is a `Region`. Coordinates are INPUT pixel / voxel indices (pixel centres) in ARRAY order: ``(row,
col)`` for 2-D, ``(slice, row, col)`` for 3-D — for chest X-ray nodes given as (x, y) that is (y, x). Columns are in
the input's own orientation (a mammogram's un-flipped columns, as in boundary.csv).

Ranking: by `integrated` (descending), ties by `peak` (descending), then by position; `id` is the rank (1 = most
uncertainty). `integrated` is the sum of the uncertainty over the region's members:
- pectoral: Σ σ over the run's rows (input px × rows; = half the area of the ±σ band in px²);
- chest X-ray: Σ node std over the arc's nodes (input px × nodes);
- components: Σ uncertainty over the voxels × the voxel volume (units × mm³; mm² for 2-D), so regions of volumes
  with different spacing compare physically; `sum_voxels` in `details` holds the plain voxel sum.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import NamedTuple, Sequence

import numpy as np
from scipy import ndimage

#: Region kinds.
PECTORAL_ROWS = "pectoral_rows"
CXR_ARC = "cxr_arc"
COMPONENT = "component"


@dataclass(frozen=True)
class Region:
    """One uncertain region, in input pixel / voxel indices (array order: (row, col) or (slice, row, col)).

    id: rank, 1 = most integrated uncertainty. kind: PECTORAL_ROWS, CXR_ARC or COMPONENT.
    bbox_min, bbox_max: inclusive index bounds per axis (floats for the pectoral band and cxr nodes, which are
        continuous; integers for components). centre: where a viewer jumps to (the mean position of the members).
    size: rows (pectoral), nodes (cxr) or voxels (components). peak: the largest uncertainty in the region.
    integrated: the summed uncertainty (module docstring: units per kind). volume_mm3: voxels × voxel volume
        (mm² for 2-D maps; None for pectoral and cxr). organ: the chest X-ray ring (None otherwise).
    members: the boundary rows (pectoral) or node indices in ring order (cxr; global node indices as in
        landmarks.csv); empty for components (their voxels are the label `id` in `ComponentRegions.labels`).
    details: kind-specific extras (e.g. `multimodal_rows`, `wraps`, `sum_voxels`)."""

    id: int
    kind: str
    bbox_min: tuple
    bbox_max: tuple
    centre: tuple
    size: int
    peak: float
    integrated: float
    volume_mm3: float | None = None
    organ: str | None = None
    members: tuple = ()
    details: dict = field(default_factory=dict, compare=False)

    def as_dict(self) -> dict:
        """JSON-friendly summary (members included)."""
        return {"id": self.id, "kind": self.kind, "organ": self.organ, "bbox_min": list(self.bbox_min),
                "bbox_max": list(self.bbox_max), "centre": list(self.centre), "size": self.size,
                "peak": self.peak, "integrated": self.integrated, "volume_mm3": self.volume_mm3,
                "members": list(self.members), "details": dict(self.details)}


def rank_regions(regions: Sequence[Region]) -> list[Region]:
    """Sorted highest integrated uncertainty first (ties: higher peak, then smaller centre), ids set to 1..n."""
    order = sorted(regions, key=lambda r: (-r.integrated, -r.peak, tuple(r.centre)))
    return [replace(r, id=k + 1) for k, r in enumerate(order)]


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) index pairs (stop exclusive) of the runs of True in a 1-D bool array."""
    f = np.concatenate([[False], np.asarray(flags, bool), [False]])
    edges = np.flatnonzero(f[1:] != f[:-1])
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


# ------------------------------------------------------------------------------------------------------ pectoral
def pectoral_regions(rows, std_col, multimodal, mean_col, threshold: float, *, min_rows: int = 1,
                     width: int | None = None) -> list[Region]:
    """Runs of consecutive boundary rows with σ > `threshold` or flagged multimodal, ranked.

    rows: input pixel rows (integers, ascending, as in `PectoralResult.rows` or boundary.csv `row`); a gap in the
        row numbers ends a run. std_col: σ per row in input pixels (`std_col`); threshold in input pixels too
        (a card's grid-column value × `boundary_grid.col_scale(width)`). multimodal: bool per row.
    mean_col: boundary column per row (input pixels, input orientation) — gives the box and the centre.
    min_rows: shorter runs are dropped. width: when given, the box's columns are clipped to 0..width − 1.
    Box: rows of the run × columns spanned by mean_col ± σ over the run; centre: (mean row, mean of mean_col).
    details: `multimodal_rows` (how many rows of the run are multimodal), `sigma_rows` (how many exceed σ)."""
    rows = np.asarray(rows, dtype=np.int64)
    std = np.asarray(std_col, dtype=np.float64)
    multi = np.asarray(multimodal, dtype=bool)
    mean = np.asarray(mean_col, dtype=np.float64)
    if not (rows.shape == std.shape == multi.shape == mean.shape) or rows.ndim != 1:
        raise ValueError("rows, std_col, multimodal and mean_col must be 1-D arrays of the same length")
    above = std > threshold
    flagged = above | multi
    contiguous = np.concatenate([[False], np.diff(rows) == 1])  # row k continues the run of row k − 1
    out = []
    for start, stop in _runs(flagged):
        # split at gaps in the row numbers
        cuts = [start] + [k for k in range(start + 1, stop) if not contiguous[k]] + [stop]
        for a, b in zip(cuts[:-1], cuts[1:]):
            if b - a < min_rows:
                continue
            s, m = std[a:b], mean[a:b]
            lo, hi = float(np.min(m - s)), float(np.max(m + s))
            if width is not None:
                lo, hi = max(lo, 0.0), min(hi, float(width - 1))
            out.append(Region(0, PECTORAL_ROWS, (int(rows[a]), lo), (int(rows[b - 1]), hi),
                              (float(rows[a:b].mean()), float(m.mean())), int(b - a), float(s.max()),
                              float(s.sum()), members=tuple(int(r) for r in rows[a:b]),
                              details={"multimodal_rows": int(multi[a:b].sum()),
                                       "sigma_rows": int(above[a:b].sum())}))
    return rank_regions(out)


# --------------------------------------------------------------------------------------------------- chest X-ray
def ring_arcs(above: np.ndarray) -> list[list[int]]:
    """Arcs (lists of ring positions in ring order) of a CLOSED ring's True entries; an arc may wrap past 0.

    A ring whose entries are all True is one arc starting at position 0."""
    above = np.asarray(above, dtype=bool)
    n = above.size
    if n == 0 or not above.any():
        return []
    if above.all():
        return [list(range(n))]
    start = int(np.flatnonzero(~above)[0]) + 1  # begin just after a False entry, so no arc is cut at the seam
    order = [(start + k) % n for k in range(n)]
    arcs, current = [], []
    for i in order:
        if above[i]:
            current.append(i)
        elif current:
            arcs.append(current)
            current = []
    if current:
        arcs.append(current)
    return arcs


def cxr_regions(node_std, organs: Sequence[str], positions_xy, threshold: float, *,
                min_nodes: int = 1) -> list[Region]:
    """Arcs of consecutive nodes of one organ with node std > `threshold`, ranked.

    node_std: (N,) per-node std in input pixels (½(std_x + std_y), as `LandmarkResult.node_std`); threshold in
        input pixels (a card's 512-square value × max(H, W) / 512). organs: (N,) organ name per node (landmarks.csv
        `organ`; the nodes of an organ, in index order, are its closed ring — `uqseg.cxr.graph`: right lung 44,
        left lung 50, heart 26). positions_xy: (N, 2) node positions (x = column, y = row), input pixel centres.
    min_nodes: shorter arcs are dropped. Box and centre in (row, col); members = global node indices in ring order.
    details: `wraps` (the arc passes the ring's first node), `whole_ring`."""
    std = np.asarray(node_std, dtype=np.float64).reshape(-1)
    pos = np.asarray(positions_xy, dtype=np.float64)
    organs = list(organs)
    if pos.shape != (std.size, 2) or len(organs) != std.size:
        raise ValueError(f"node_std ({std.size}), organs ({len(organs)}) and positions_xy {pos.shape} disagree")
    out = []
    for organ in dict.fromkeys(organs):  # organs in order of first appearance
        idx = np.array([i for i, o in enumerate(organs) if o == organ])
        for arc in ring_arcs(std[idx] > threshold):
            if len(arc) < min_nodes:
                continue
            nodes = idx[arc]
            yx = pos[nodes][:, ::-1]
            out.append(Region(0, CXR_ARC, tuple(float(v) for v in yx.min(0)), tuple(float(v) for v in yx.max(0)),
                              tuple(float(v) for v in yx.mean(0)), len(arc), float(std[nodes].max()),
                              float(std[nodes].sum()), organ=organ, members=tuple(int(i) for i in nodes),
                              details={"wraps": bool(len(arc) > 1 and any(b < a for a, b in zip(arc, arc[1:]))),
                                       "whole_ring": len(arc) == idx.size}))
    return rank_regions(out)


# ---------------------------------------------------------------------------------------------------- components
class ComponentRegions(NamedTuple):
    """regions: ranked; labels: int32 map of the input's shape, 0 = not in a kept region, k = region with id k."""

    regions: list[Region]
    labels: np.ndarray

    def mask(self, region_id: int) -> np.ndarray:
        """bool mask of one region (same shape as the uncertainty map)."""
        return self.labels == int(region_id)


def voxel_size_mm(spacing: Sequence[float], ndim: int) -> np.ndarray:
    """Spacing given in the project's (x=col, y=row[, z=slice]) order → per ARRAY axis ((slice,) row, col), mm."""
    sp = [float(s) for s in spacing]
    if len(sp) < ndim:
        raise ValueError(f"{ndim}-D map needs {ndim} spacings (x=col, y=row[, z=slice]), got {spacing!r}")
    sp = sp[:ndim]
    if not all(np.isfinite(s) and s > 0 for s in sp):
        raise ValueError(f"spacing must be positive, got {spacing!r}")
    return np.array(sp[::-1])


def _tiled_labels(hot: np.ndarray, vox_mm: np.ndarray, max_extent_mm: float,
                  structure: np.ndarray) -> tuple[np.ndarray, int]:
    """Pieces of the components: the connected parts of `hot` within each cell of a regular grid of cells
    `max_extent_mm` wide along every axis (cell k of an axis holds the indices i with ⌊i·spacing / extent⌋ = k)."""
    step = [max(1, int(np.floor(max_extent_mm / v))) for v in vox_mm]
    pieces = np.zeros(hot.shape, dtype=np.int32)
    count = 0
    for start in np.ndindex(*[int(np.ceil(n / s)) for n, s in zip(hot.shape, step)]):
        cell = tuple(slice(k * s, (k + 1) * s) for k, s in zip(start, step))
        sub, n = ndimage.label(hot[cell], structure=structure)
        if n:
            pieces[cell] = np.where(sub > 0, sub + count, 0)
            count += n
    return pieces, count


def component_regions(uncertainty: np.ndarray, threshold: float, spacing: Sequence[float] = (1.0, 1.0, 1.0), *,
                      min_voxels: int = 10, min_volume_mm3: float = 0.0,
                      max_extent_mm: float | None = None) -> ComponentRegions:
    """Connected components of `uncertainty > threshold`, ranked by integrated uncertainty.

    uncertainty: 2-D ``[row, col]`` or 3-D ``[slice, row, col]`` map on the input's grid (e.g. variance.nrrd's
        array, the breast entropy); NaN counts as not uncertain. threshold: same units.
    spacing: mm in the project's order (x = col, y = row[, z = slice]), as `Image.spacing`.
    Connectivity: 8 (2-D) / 26 (3-D) neighbours. Components with fewer than `min_voxels` voxels or less than
    `min_volume_mm3` (mm² in 2-D) are dropped (their voxels are 0 in `labels`).
    max_extent_mm: when given, each component is cut by a regular grid of cells that many mm wide and every
        connected piece becomes a region of its own (min sizes apply to the pieces): an uncertain band that runs
        along a whole organ or skin line — one component — becomes a series of regions a viewer can jump to;
        `details["component"]` is the index of the uncut component a piece belongs to (the same for its pieces).
    Each Region: size = voxels, volume_mm3, peak, integrated (Σ u × voxel volume), centre = the voxels' mean index
    (may lie outside a curved region), bbox from the voxels; details `sum_voxels` (Σ u), `mean` and `peak_at`
    (the index of the most uncertain voxel: a point inside the region, for jumping to it)."""
    u = np.asarray(uncertainty, dtype=np.float64)
    if u.ndim not in (2, 3):
        raise ValueError(f"uncertainty must be 2-D or 3-D, got shape {u.shape}")
    vox = voxel_size_mm(spacing, u.ndim)
    voxel_volume = float(np.prod(vox))
    hot = np.nan_to_num(u, nan=-np.inf) > threshold
    structure = ndimage.generate_binary_structure(u.ndim, u.ndim)
    comps, n = ndimage.label(hot, structure=structure)
    if max_extent_mm is not None and n:
        if not max_extent_mm > 0:
            raise ValueError(f"max_extent_mm must be positive, got {max_extent_mm}")
        parts, n = _tiled_labels(hot, vox, float(max_extent_mm), structure)
    else:
        parts = comps
    labels = np.zeros(u.shape, dtype=np.int32)
    if n == 0:
        return ComponentRegions([], labels)
    index = np.arange(1, n + 1)
    counts = np.bincount(parts.ravel(), minlength=n + 1)[1:]
    sums = ndimage.sum_labels(u, parts, index)
    peaks = ndimage.maximum(u, parts, index)
    peak_at = ndimage.maximum_position(u, parts, index)
    centres = ndimage.center_of_mass(hot, parts, index)
    parent = ndimage.maximum(comps, parts, index) if parts is not comps else index
    boxes = ndimage.find_objects(parts)
    found = []
    for k in range(n):
        if counts[k] < min_voxels or counts[k] * voxel_volume < min_volume_mm3:
            continue
        box = boxes[k]
        found.append((k + 1, Region(0, COMPONENT, tuple(int(s.start) for s in box), tuple(int(s.stop - 1) for s in box),
                                    tuple(float(c) for c in centres[k]), int(counts[k]), float(peaks[k]),
                                    float(sums[k] * voxel_volume), volume_mm3=float(counts[k] * voxel_volume),
                                    details={"sum_voxels": float(sums[k]), "mean": float(sums[k] / counts[k]),
                                             "peak_at": tuple(int(i) for i in peak_at[k]),
                                             "component": int(parent[k])})))
    order = sorted(found, key=lambda kr: (-kr[1].integrated, -kr[1].peak, tuple(kr[1].centre)))
    ranked = rank_regions([r for _, r in order])
    lut = np.zeros(n + 1, dtype=np.int32)
    for rank, (part_id, _) in enumerate(order, start=1):
        lut[part_id] = rank
    return ComponentRegions(ranked, lut[parts])
