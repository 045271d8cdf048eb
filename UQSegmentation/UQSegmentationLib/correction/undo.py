"""Undo for the review's corrections: snapshots of exactly what a correction changes, restored exactly.

A correction pushes ONE entry (a label and a list of snapshots taken BEFORE it changed anything); `undo()` restores
them in reverse order. Snapshot kinds:
- `CurveSnapshot(curve)` — every control point's world position (RAS, float64) and the values of every static
  measurement with per-control-point values (e.g. ``std``); restoring sets the same number of points at the same
  positions and the same values (`Modified` on the measurement so the curve's interpolated scalars follow).
- `SegmentSnapshot(segmentation, volume, segment_ids, box=None)` — the voxels of those segments on the volume's grid
  (``[slice, row, col]``), inside an index box (slice0:slice1, row0:row1, col0:col1) or everywhere; restoring writes
  the box back and leaves the voxels outside it as they are now.
- `ValueSnapshot(get, set)` — any Python state (the corrector's clicks / pins, a region's status).
Restoring must not trigger the model-aware update again: the session suspends the correctors while it restores.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from ..segment_arrays import read_segment, write_segment


class CurveSnapshot:
    def __init__(self, curve) -> None:
        self.curve = curve
        n = curve.GetNumberOfControlPoints()
        self.positions = np.array([curve.GetNthControlPointPositionWorld(k) for k in range(n)], dtype=np.float64)
        self.values: dict[str, np.ndarray] = {}
        for m in range(curve.GetNumberOfMeasurements()):
            meas = curve.GetNthMeasurement(m)
            arr = meas.GetControlPointValues() if hasattr(meas, "GetControlPointValues") else None
            if arr is not None and arr.GetNumberOfTuples():
                self.values[meas.GetName()] = np.array([arr.GetValue(i) for i in range(arr.GetNumberOfTuples())])

    def restore(self) -> None:
        import vtk

        curve = self.curve
        was = curve.StartModify()
        n = len(self.positions)
        while curve.GetNumberOfControlPoints() > n:
            curve.RemoveNthControlPoint(curve.GetNumberOfControlPoints() - 1)
        while curve.GetNumberOfControlPoints() < n:
            curve.AddControlPointWorld(vtk.vtkVector3d(*self.positions[curve.GetNumberOfControlPoints()]))
        for k, p in enumerate(self.positions):
            curve.SetNthControlPointPositionWorld(k, *p)
        for name, values in self.values.items():
            set_measurement_values(curve, name, values)
        curve.EndModify(was)


def set_measurement_values(curve, name: str, values) -> None:
    """Replace the per-control-point values of the curve's static measurement `name` (and refresh the curve's
    interpolated point array: the measurement must be Modified after its values change)."""
    import vtk

    meas = curve.GetMeasurement(name)
    if meas is None:
        raise KeyError(f"{curve.GetName()}: no measurement {name!r}")
    arr = vtk.vtkDoubleArray()
    arr.SetName(name)
    for v in np.asarray(values, dtype=np.float64).ravel():
        arr.InsertNextValue(float(v))
    meas.SetControlPointValues(arr)
    meas.Modified()


class SegmentSnapshot:
    def __init__(self, segmentation, volume, segment_ids, box=None) -> None:
        self.segmentation, self.volume = segmentation, volume
        self.box = None if box is None else tuple(slice(int(a), int(b)) for a, b in box)
        self.blocks = {}
        for sid in segment_ids:
            full = read_segment(segmentation, sid, volume, squeeze=False)
            self.blocks[sid] = (full[self.box] if self.box else full).copy()

    def restore(self) -> None:
        for sid, block in self.blocks.items():
            full = read_segment(self.segmentation, sid, self.volume, squeeze=False)
            if self.box:
                full[self.box] = block
            else:
                full = block
            write_segment(self.segmentation, sid, full, self.volume)


class ValueSnapshot:
    def __init__(self, get, set_) -> None:
        self._set = set_
        self.value = copy.deepcopy(get())

    def restore(self) -> None:
        self._set(copy.deepcopy(self.value))


@dataclass
class UndoEntry:
    label: str
    snapshots: list = field(default_factory=list)


class UndoStack:
    """Entries newest last; `undo()` restores the newest and drops it."""

    def __init__(self, limit: int = 50) -> None:
        self.limit = int(limit)
        self.entries: list[UndoEntry] = []

    def push(self, label: str, snapshots) -> UndoEntry:
        entry = UndoEntry(label, list(snapshots))
        self.entries.append(entry)
        if len(self.entries) > self.limit:
            self.entries.pop(0)
        return entry

    @property
    def can_undo(self) -> bool:
        return bool(self.entries)

    def undo(self) -> str | None:
        """Restore the newest entry; its label (None when there is nothing to undo)."""
        if not self.entries:
            return None
        entry = self.entries.pop()
        for snap in reversed(entry.snapshots):
            snap.restore()
        return entry.label

    def clear(self) -> None:
        self.entries.clear()
