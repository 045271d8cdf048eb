"""Agreement of the two pectoral-muscle delineations of one MLO mammogram: the breast / pectoral segmentation
(`mammo-breast`, U-Net + MC dropout) and the pectoral-boundary model (`mammo-pectoral`, heatmap regression).

Both are compared on the input's own pixel grid, row by row:
- the segmentation's boundary in a row = the number of its pectoral pixels in that row, counted from the chest-wall
  edge (the muscle is one region against the chest wall, so this is its extent; pixel-centre convention: the boundary
  lies at count − ½ columns from the chest-wall edge);
- the boundary model's boundary = its mean boundary column (`boundary.csv`'s `mean_col`) in the same convention.
Reported (`summary.json` → `pectoral_agreement`):
- `mean_row_distance_px` / `_mm`: mean |difference| over the rows where both find muscle (mm with the input's column
  spacing — the breast task's spacing basis, which for files without a spacing is the documented fallback);
- `max_row_distance_px`, `rows_compared`, `rows_only_segmentation`, `rows_only_boundary_model`;
- `dice`: Dice of the two muscle masks;
- `disagree`: True when the mean row distance exceeds `DISAGREE_MM` mm, the Dice is below `DISAGREE_DICE`, or only
  one of the models finds the muscle (a reviewer should look at this image).
"""

from __future__ import annotations

import numpy as np

DISAGREE_MM = 5.0
DISAGREE_DICE = 0.7


def segmentation_row_extent(pectoral_mask: np.ndarray) -> np.ndarray:
    """(H, W) bool → pectoral pixels per row (H,)."""
    return np.asarray(pectoral_mask, bool).sum(axis=1)


def compare(pectoral_mask: np.ndarray, boundary_rows: np.ndarray, boundary_mean_col: np.ndarray,
            boundary_mask: np.ndarray, chest_wall_right: bool, column_spacing_mm: float) -> dict:
    """Agreement of a segmentation's pectoral mask and a boundary model's per-row boundary (module docstring).

    pectoral_mask, boundary_mask: (H, W) masks on the input grid; boundary_rows / boundary_mean_col: the boundary
    model's rows and mean columns (input pixel indices); chest_wall_right: the chest wall is at column W − 1."""
    seg = np.asarray(pectoral_mask, bool)
    h, w = seg.shape
    count = segmentation_row_extent(seg)
    seg_col = np.where(count > 0, (w - 1) - (count - 0.5) if chest_wall_right else count - 0.5, np.nan)
    model_col = np.full(h, np.nan)
    rows = np.asarray(boundary_rows, int)
    model_col[rows] = np.asarray(boundary_mean_col, float)
    both = np.isfinite(seg_col) & np.isfinite(model_col)
    only_seg = int((np.isfinite(seg_col) & ~np.isfinite(model_col)).sum())
    only_model = int((~np.isfinite(seg_col) & np.isfinite(model_col)).sum())
    d = np.abs(seg_col[both] - model_col[both])
    other = np.asarray(boundary_mask, bool)
    total = seg.sum() + other.sum()
    dice = float(2 * (seg & other).sum() / total) if total else None
    mean_px = float(d.mean()) if d.size else None
    mean_mm = mean_px * float(column_spacing_mm) if mean_px is not None else None
    one_sided = (count > 0).any() != np.isfinite(model_col).any()
    disagree = bool(one_sided or (mean_mm is not None and mean_mm > DISAGREE_MM)
                    or (dice is not None and dice < DISAGREE_DICE))
    return {
        "mean_row_distance_px": _round(mean_px), "mean_row_distance_mm": _round(mean_mm),
        "max_row_distance_px": _round(float(d.max()) if d.size else None),
        "rows_compared": int(both.sum()), "rows_only_segmentation": only_seg, "rows_only_boundary_model": only_model,
        "dice": _round(dice), "disagree": disagree,
        "disagree_rule": f"mean row distance > {DISAGREE_MM:g} mm, Dice < {DISAGREE_DICE:g}, or only one model "
                         "finds the muscle",
    }


def _round(x, nd: int = 3):
    return None if x is None else round(float(x), nd)
