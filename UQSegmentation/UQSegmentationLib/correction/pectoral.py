"""mammo-pectoral: a moved point of the boundary curve becomes a click for `correct_pectoral`, and the curve, its
σ, the ±σ band, the multimodal rows and the muscle follow the model's most probable path through the clicks.

Frames. Curve control points are RAS (MRML world); a moved point is taken to the input's IJK through the inverse
of the input volume's IJK→RAS: click = (row = round(j), col = i) in input pixel-centre indices, the frame of
`correct_pectoral` and of boundary.csv (the input's own orientation; the engine flips internally). Clicks
accumulate by row (a later click on the same row replaces the earlier one) and ALL of them are passed every time
(`correct_pectoral` starts from the model's result, so the outcome does not depend on the order of the moves).

What `apply` writes (all on the input grid):
- the curve: each control point stays on its row and moves to the new mean column there (a clicked point lands
  exactly on the click, as `correct_pectoral` guarantees); when the muscle rows changed at either end (the curve
  must still run from the first to the last muscle row) or no longer contain every point's row, the points are
  laid out again as the engine lays them out (`curve_point_indices`) plus the clicked rows.
  The ``std`` measurement becomes σ (input px) × the column spacing (mm), as in boundary.mrk.json;
- segments ``uncertainty_band`` (|col − mean| ≤ σ), ``multimodal_rows`` (the band on multimodal rows; kept, maybe
  empty, so undo can restore it exactly) and the muscle (`PectoralResult.muscle_mask()`);
- the "multimodal" fiducials, when the result has that node: one point per multimodal run again.
Undo restores the curve (points and σ), the three segments and the clicks exactly; the fiducials are derived
again from the restored result.
"""

from __future__ import annotations

import numpy as np

from ..display.band import (
    BAND_SEGMENT,
    MULTIMODAL_COLOR,
    MULTIMODAL_FILL_OPACITY,
    MULTIMODAL_SEGMENT,
    MUSCLE_SEGMENT,
    band_mask,
    multimodal_runs,
)
from ..segment_arrays import add_segment, write_segment
from .curves import CurveCorrector
from .undo import SegmentSnapshot, ValueSnapshot, set_measurement_values


def result_from_boundary(boundary: dict, shape, flipped: bool):
    """A `PectoralResult` holding boundary.csv's rows (no heatmap): what is shown before any correction."""
    from uqseg.mammo.pectoral import PectoralResult

    std = np.asarray(boundary["std_col"], float)
    return PectoralResult(tuple(int(s) for s in shape), np.asarray(boundary["rows"], int),
                          np.asarray(boundary["mean_col"], float), std, np.asarray(boundary["multimodal"], bool),
                          bool(flipped), "summary.json", float(std.mean()) if std.size else float("nan"), float("nan"))


class PectoralCorrector(CurveCorrector):
    """Observe the boundary curve of a loaded mammo-pectoral result and correct it through the model.

    results: `ResultNodes` (roles "curve", "segmentation", optionally "multimodal"), loaded WITH the input volume.
    state: `correction.models.PectoralModelState` (the model's result with its heatmap, checked against the files).
    undo, runner, timer, delay_ms, on_update, on_error: see `correction.curves.CurveCorrector`."""

    label = "move pectoral boundary point"

    def __init__(self, results, state, **kwargs) -> None:
        super().__init__(**kwargs)
        self.curve = results.nodes["curve"]
        self.segmentation = results.nodes["segmentation"]
        self.fiducials = results.nodes.get("multimodal")
        self.curves = [self.curve]
        self._bind(results, state)
        self.col_spacing_mm = float(np.linalg.norm(self.ijk_to_ras[:3, 0]))
        seg = self.segmentation.GetSegmentation()
        self.muscle_id = MUSCLE_SEGMENT if seg.GetSegment(MUSCLE_SEGMENT) is not None else seg.GetNthSegmentID(0)
        if seg.GetSegment(MULTIMODAL_SEGMENT) is None:  # always present (maybe empty), so undo can restore it
            add_segment(self.segmentation, MULTIMODAL_SEGMENT, "multimodal rows",
                        np.zeros(self.state.base.shape, bool), self.volume, MULTIMODAL_COLOR)
            self.segmentation.GetDisplayNode().SetSegmentOpacity2DFill(MULTIMODAL_SEGMENT, MULTIMODAL_FILL_OPACITY)
        self._start()

    # -------------------------------------------------------------------------------------------- constraints
    @property
    def clicks(self) -> list[tuple[int, float]]:
        """(row, col) input pixels, by row."""
        return sorted(self.constraints.items())

    def ras_to_pixel(self, ras) -> tuple[float, float]:
        """RAS → (row, col) input pixel-centre indices (float)."""
        col, row = self.ras_to_ij(ras)
        return row, col

    def pixel_to_ras(self, row, col) -> np.ndarray:
        return self.ij_to_ras(col, row)

    def constraints_from_moves(self, moves, constraints: dict) -> dict:
        h, w = self.state.base.shape
        for _, _, ras in moves:
            row, col = self.ras_to_pixel(ras)
            r = int(np.clip(np.rint(row), 0, h - 1))
            constraints[r] = float(np.clip(col, -0.5, w - 0.5))
        return constraints

    def make_work(self, constraints: dict):
        from uqseg.correction.pectoral_path import correct_pectoral

        base = self.state.base
        clicks = sorted(constraints.items())
        return lambda: correct_pectoral(base, clicks)

    # -------------------------------------------------------------------------------------------- nodes
    def derived_snapshots(self) -> list:
        ids = [self.muscle_id, BAND_SEGMENT, MULTIMODAL_SEGMENT]
        return [SegmentSnapshot(self.segmentation, self.volume, ids),
                ValueSnapshot(lambda: self.result, self._restore_result)]

    def _restore_result(self, result) -> None:
        self.result = result
        self._show_fiducials(result)

    def apply(self, result) -> dict:
        self.result = result
        self.show(result)
        return {"clicks": self.clicks, "rows_changed": len(result.changed_rows())
                if hasattr(result, "changed_rows") else 0}

    def show(self, result) -> None:
        """Write a `PectoralResult` (input coordinates) into the curve, the segments and the fiducials."""
        self._show_curve(result)
        shape = result.shape
        write_segment(self.segmentation, BAND_SEGMENT, band_mask(result.rows, result.mean_col, result.std_col, shape),
                      self.volume)
        write_segment(self.segmentation, MULTIMODAL_SEGMENT,
                      band_mask(result.rows, result.mean_col, result.std_col, shape, only=result.multimodal),
                      self.volume)
        write_segment(self.segmentation, self.muscle_id, result.muscle_mask().astype(bool), self.volume)
        self._show_fiducials(result)

    def _show_curve(self, result) -> None:
        from uqseg.tasks.mammo_pectoral import curve_point_indices

        rows = np.asarray(result.rows, int)
        if rows.size < 2:
            return
        by_row = {int(r): k for k, r in enumerate(rows)}
        n = self.curve.GetNumberOfControlPoints()
        point_rows = [int(np.rint(self.ras_to_pixel(self.curve.GetNthControlPointPositionWorld(k))[0]))
                      for k in range(n)]
        ends = (int(rows[0]), int(rows[-1]))
        if not all(r in by_row for r in point_rows) or (min(point_rows), max(point_rows)) != ends:
            keep = set(rows[curve_point_indices(rows.size)].tolist()) | {r for r in self.constraints if r in by_row}
            point_rows = sorted(keep)
        positions = [self.pixel_to_ras(r, result.mean_col[by_row[r]]) for r in point_rows]
        std_mm = [float(result.std_col[by_row[r]]) * self.col_spacing_mm for r in point_rows]
        import vtk

        was = self.curve.StartModify()
        while self.curve.GetNumberOfControlPoints() > len(positions):
            self.curve.RemoveNthControlPoint(self.curve.GetNumberOfControlPoints() - 1)
        while self.curve.GetNumberOfControlPoints() < len(positions):
            self.curve.AddControlPointWorld(vtk.vtkVector3d(*positions[self.curve.GetNumberOfControlPoints()]))
        for k, p in enumerate(positions):
            self.curve.SetNthControlPointPositionWorld(k, *p)
        if self.curve.GetMeasurement("std") is not None:
            set_measurement_values(self.curve, "std", std_mm)
        self.curve.EndModify(was)

    def _show_fiducials(self, result) -> None:
        node = self.fiducials
        if node is None:
            return
        runs = multimodal_runs(result.rows, result.multimodal)
        by_row = dict(zip(np.asarray(result.rows, int).tolist(), np.asarray(result.mean_col, float).tolist()))
        was = node.StartModify()
        node.RemoveAllControlPoints()
        for r0, r1 in runs:
            mid = (r0 + r1) // 2
            k = node.AddControlPoint(self.pixel_to_ras(mid, by_row.get(mid, by_row.get(r0))).tolist(),
                                     f"rows {r0}–{r1}")
            node.SetNthControlPointDescription(k, f"rows {r0}-{r1}")
        node.EndModify(was)
