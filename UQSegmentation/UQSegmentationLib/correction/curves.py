"""Model-aware updates from control-point moves: the common machinery of the pectoral and chest X-ray correctors.

Life of an update:
1. the corrector observes its curves' `PointModifiedEvent` and `PointEndInteractionEvent` (a drag in Slicer fires
   many of the first and one of the second; a script's `SetNthControlPointPositionWorld` fires the first);
2. each event (re)starts the debounce timer (`review.scheduling.Debouncer`, injected timer);
3. when it fires, the control points that moved since the last settled state (more than `MOVE_TOLERANCE_MM`) are
   turned into the model's constraints (`constraints_from_moves`, per subclass: pectoral clicks, cxr pins) and one
   undo entry is pushed holding the SETTLED state (every curve's points and measurements, the derived nodes, the
   constraints) — undo returns to before the drag, whatever the model did since;
4. the model work (`make_work`: reads the nodes on this thread, returns a callable on plain arrays) runs through
   the injected runner via `LatestOnly` (newest request wins; a stale result is never applied over a newer one);
5. `apply(result)` (this thread) writes the result into the nodes with the observers muted, then the new state is
   settled. If the user moved points again while the model worked, that result is dropped (it would overwrite the
   new move): the newer request already waiting runs next, or an update with all moves so far is started.
`suspended()` mutes the observers (undo, loading); `close()` removes them and restores the curves' lock state.
`refresh(curve)` (subclasses) runs on every event and after every applied or restored change, so that nodes drawn
from the curves (the chest X-ray tubes) follow the points while the user drags them, before the model answers.
`on_update(corrector, info)` (optional) is called after each applied update; `on_error(error)` when the model
work fails (the nodes then keep the user's move and the undo entry stays).
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np

from ..review.scheduling import Debouncer, ImmediateTimer, LatestOnly, SynchronousRunner
from ..segment_arrays import grid_matrix
from .undo import CurveSnapshot, ValueSnapshot

log = logging.getLogger(__name__)

MOVE_TOLERANCE_MM = 1e-6
DEFAULT_DELAY_MS = 300


class CurveCorrector:
    """Subclasses call `_bind(results, state)` and set `self.curves` (list of curve nodes) before `_start()`, and
    implement `constraints_from_moves`, `make_work`, `apply` and `derived_snapshots`."""

    label = "correction"

    def __init__(self, undo=None, runner=None, timer=None, delay_ms: int = DEFAULT_DELAY_MS,
                 on_update=None, on_error=None) -> None:
        self.undo = undo
        self.runner = runner or SynchronousRunner()
        self.jobs = LatestOnly(self.runner)
        self.debouncer = Debouncer(timer or ImmediateTimer(), delay_ms, self._update)
        self.on_update, self.on_error = on_update, on_error
        self.extra_snapshots = None  # callable → more snapshots for the same undo entry (e.g. region statuses)
        self.curves: list = []
        self.constraints: dict = {}
        self.updates = 0
        self.last_error: BaseException | None = None
        self._observers: list = []
        self._muted = 0
        self._settled: list[np.ndarray] = []
        self._was_locked: list[bool] = []
        self.closed = False

    # -------------------------------------------------------------------------------------------- life cycle
    def _start(self) -> None:
        import slicer

        self._was_locked = [bool(c.GetLocked()) for c in self.curves]
        for c in self.curves:
            c.SetLocked(False)  # the user may drag the points now; the model keeps the shape plausible
            for event in (slicer.vtkMRMLMarkupsNode.PointModifiedEvent,
                          slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent):
                self._observers.append((c, c.AddObserver(event, self._on_event)))
        self.settle()

    def close(self) -> None:
        self.closed = True
        self.debouncer.cancel()
        for node, tag in self._observers:
            node.RemoveObserver(tag)
        self._observers.clear()
        for c, locked in zip(self.curves, self._was_locked):
            c.SetLocked(locked)

    @contextlib.contextmanager
    def suspended(self):
        """No update is triggered by what happens inside (restoring, applying); the state is settled after."""
        self._muted += 1
        try:
            yield self
        finally:
            self._muted -= 1
            if not self._muted:
                self.settle()
                self.refresh()

    def settle(self) -> None:
        self._settled = [_positions(c) for c in self.curves]

    # -------------------------------------------------------------------------------------------- frames
    def _bind(self, results, state) -> None:
        """The loaded result (`ResultNodes`, with its input volume) and the model state (`state.base`: the model's
        result, shown before any correction); the input's IJK↔RAS matrices for `ras_to_ij` / `ij_to_ras`."""
        self.results = results
        self.state = state
        self.volume = results.input_volume
        self.ijk_to_ras = grid_matrix(self.volume)
        self.ras_to_ijk = np.linalg.inv(self.ijk_to_ras)
        self.result = state.base

    def ras_to_ij(self, ras) -> tuple[float, float]:
        """RAS → (i, j): column and row of the input, pixel-centre indices (float)."""
        ijk = self.ras_to_ijk @ np.array([ras[0], ras[1], ras[2], 1.0])
        return float(ijk[0]), float(ijk[1])

    def ij_to_ras(self, i, j) -> np.ndarray:
        """(i, j) input pixel-centre indices (column, row) → RAS on the input's plane."""
        return (self.ijk_to_ras @ np.array([float(i), float(j), 0.0, 1.0]))[:3]

    # -------------------------------------------------------------------------------------------- events
    def _on_event(self, caller, event) -> None:
        if self._muted:
            return
        self.refresh(caller)
        self.debouncer.trigger()

    def refresh(self, curve=None) -> None:
        """Let views of nodes derived from the curves follow them (subclasses; e.g. the chest X-ray tubes)."""

    def moved_points(self) -> list[tuple[int, int, np.ndarray]]:
        """(curve index, control point index, new RAS position) of every point that moved since the settled state
        (a curve whose number of points changed counts all its points as moved)."""
        out = []
        for ci, c in enumerate(self.curves):
            now = _positions(c)
            before = self._settled[ci] if ci < len(self._settled) else np.zeros((0, 3))
            if now.shape != before.shape:
                out += [(ci, k, now[k]) for k in range(len(now))]
                continue
            moved = np.flatnonzero(np.linalg.norm(now - before, axis=1) > MOVE_TOLERANCE_MM)
            out += [(ci, int(k), now[k]) for k in moved]
        return out

    def _update(self) -> None:
        if self.closed:
            return
        moves = self.moved_points()
        if not moves:
            return
        settled_curves = []
        for ci, c in enumerate(self.curves):
            snap = CurveSnapshot(c)
            if ci < len(self._settled) and self._settled[ci].shape == snap.positions.shape:
                snap.positions = self._settled[ci].copy()  # the points as they were before this drag
            settled_curves.append(snap)
        if self.undo is not None:
            extra = list(self.extra_snapshots()) if self.extra_snapshots is not None else []
            self.undo.push(self.label, settled_curves + self.derived_snapshots()
                           + [ValueSnapshot(lambda: self.constraints, self._set_constraints)] + extra)
        self.constraints = self.constraints_from_moves(moves, dict(self.constraints))
        self.settle()  # the user's positions are the new reference for the next drag
        constraints = dict(self.constraints)
        self.jobs.request(lambda: self.make_work(constraints), self._done, self._failed)

    def _set_constraints(self, value) -> None:
        self.constraints = dict(value)

    def _done(self, result) -> None:
        if self.closed:
            return  # the session ended while the model worked
        if self.jobs.waiting:
            return  # a newer request (with more moves) starts next; this result is stale
        if self.moved_points():
            # the user moved points while the model worked: this result is stale; run again with every move
            self._update()
            return
        with self.suspended():
            info = self.apply(result)
        self.updates += 1
        self.last_error = None
        if self.on_update is not None:
            self.on_update(self, info)

    def _failed(self, error: BaseException) -> None:
        self.last_error = error
        log.error("UQSegmentation: the model-aware update failed: %s", error)
        if self.on_error is not None:
            self.on_error(error)

    def flush(self) -> None:
        """Run a pending debounced update now (e.g. before saving)."""
        pending = getattr(self.debouncer.timer, "active", False)
        if pending:
            self.debouncer.cancel()
            self._update()

    # -------------------------------------------------------------------------------------------- subclass API
    def constraints_from_moves(self, moves, constraints: dict) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def make_work(self, constraints: dict):  # pragma: no cover - abstract
        raise NotImplementedError

    def apply(self, result):  # pragma: no cover - abstract
        raise NotImplementedError

    def derived_snapshots(self) -> list:
        return []


def _positions(curve) -> np.ndarray:
    n = curve.GetNumberOfControlPoints()
    return np.array([curve.GetNthControlPointPositionWorld(k) for k in range(n)], dtype=np.float64).reshape(n, 3)
