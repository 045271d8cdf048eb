"""cxr-landmarks: moved nodes of the organ contours become pins; the model refits the pinned organs
(`uqseg.correction.cxr_pinned.refit_with_pins`) and the whole contour, its per-node std and the colours follow.

Frames. The three closed curves hold the 120 nodes in the engine's order (right lung 0..43, left lung 44..93,
heart 94..119; control point k of an organ's curve = global node organ_start + k). A moved control point (RAS) is
taken to the input's IJK through the inverse IJK→RAS of the input volume: pin = (x = i, y = j), input pixel-centre
coordinates, the frame of `LandmarkResult` and landmarks.csv. Pins accumulate (a node moved again is re-pinned at
its new place) and all of them are passed every time; `refit_with_pins` starts from the model's result, so the
outcome does not depend on the order of the moves.

`apply` writes every node of each refitted organ back (x, y → RAS) and its ``std`` measurement in mm,
½ (σx·sx + σy·sy) as the engine writes it (`uqseg.tasks.cxr_landmarks.node_std_mm`); organs without pins are left
exactly as they are. The 2-D colours come from the mirrored tube models ("model:<organ>"): a live pipeline on the
curves' interpolated ``std`` array, coloured with the fixed range of the load (so a colour keeps its meaning before and
after). The pipeline's data follow the curve, but Slicer's model slice displayable manager only re-cuts a model on
its MeshModifiedEvent, so `refresh` sends that event whenever a curve changed (while dragging, after the refit,
after undo) — without it the slice view keeps showing the old tube. Undo restores the three curves (points and
std) and the pins exactly.
"""

from __future__ import annotations

import numpy as np

from ..review.regions import cxr_curve_nodes
from .curves import CurveCorrector
from .undo import set_measurement_values


class CxrCorrector(CurveCorrector):
    """Observe the organ curves of a loaded cxr-landmarks result and refit them from moved nodes.

    results: `ResultNodes` (roles "curve:<organ>"), loaded WITH the input volume; state: `correction.models.
    CxrModelState`. undo, runner, timer, delay_ms, on_update, on_error: see `correction.curves.CurveCorrector`."""

    label = "move chest X-ray contour node"

    def __init__(self, results, state, **kwargs) -> None:
        from uqseg.cxr.graph import organ_slices

        super().__init__(**kwargs)
        self.organs = [organ for organ, _ in cxr_curve_nodes(results)]
        self.curves = [curve for _, curve in cxr_curve_nodes(results)]
        self.slices = [organ_slices()[o] for o in self.organs]
        for organ, sl, curve in zip(self.organs, self.slices, self.curves):
            if curve.GetNumberOfControlPoints() != sl.stop - sl.start:
                raise ValueError(f"{curve.GetName()}: {curve.GetNumberOfControlPoints()} control points, the model "
                                 f"has {sl.stop - sl.start} {organ} nodes")
        self._bind(results, state)
        self.spacing_xy = (float(np.linalg.norm(self.ijk_to_ras[:3, 0])), float(np.linalg.norm(self.ijk_to_ras[:3, 1])))
        self._start()

    @property
    def pins(self) -> dict[int, tuple[float, float]]:
        return dict(self.constraints)

    def ras_to_xy(self, ras) -> tuple[float, float]:
        return self.ras_to_ij(ras)

    def xy_to_ras(self, xy) -> np.ndarray:
        return self.ij_to_ras(xy[0], xy[1])

    def constraints_from_moves(self, moves, constraints: dict) -> dict:
        for ci, k, ras in moves:
            constraints[self.slices[ci].start + int(k)] = self.ras_to_xy(ras)
        return constraints

    def make_work(self, constraints: dict):
        from .models import refit_with_pins

        state = self.state
        pins = {int(k): tuple(v) for k, v in constraints.items()}
        return lambda: refit_with_pins(state, pins)

    def node_std_mm(self, result) -> np.ndarray:
        sx, sy = self.spacing_xy
        return 0.5 * (result.std[:, 0] * sx + result.std[:, 1] * sy)

    def apply(self, result) -> dict:
        previous, self.result = self.result, result
        std_mm = self.node_std_mm(result)
        changed = []
        for organ, sl, curve in zip(self.organs, self.slices, self.curves):
            if np.array_equal(result.mean[sl], previous.mean[sl]) and np.array_equal(result.std[sl], previous.std[sl]):
                continue
            was = curve.StartModify()
            for k, xy in enumerate(result.mean[sl]):
                curve.SetNthControlPointPositionWorld(k, *self.xy_to_ras(xy))
            if curve.GetMeasurement("std") is not None:
                set_measurement_values(curve, "std", std_mm[sl])
            curve.EndModify(was)
            changed.append(organ)
        return {"pins": self.pins, "organs_changed": changed}

    def refresh(self, curve=None) -> None:
        import slicer

        for organ, c in zip(self.organs, self.curves):
            if curve is not None and c is not curve:
                continue
            model = self.results.nodes.get(f"model:{organ}")
            if model is not None:
                model.InvokeCustomModifiedEvent(slicer.vtkMRMLModelNode.MeshModifiedEvent)

    def derived_snapshots(self) -> list:
        from .undo import ValueSnapshot

        return [ValueSnapshot(lambda: self.result, lambda r: setattr(self, "result", r))]
