"""A review session of one loaded case: its uncertain regions in order, their status, jumping the views, the
model-aware corrections, undo and saving — what the module's "Review" section drives.

    session = ReviewSession(results, parameter_node, runner=..., timer=...)   # results: load_results(...)
    session.start_corrections()        # runs the model once more (runner) and starts observing the nodes
    session.next(); session.accept(); session.mark_corrected(); session.undo(); session.save()

Parts (one module each): `review.regions` (which regions), `review.state` (status in the parameter node),
`review.navigation` (slice views), `correction.pectoral` / `correction.cxr` (control-point moves → model),
`correction.labels` (breast / CT: editable area in the Segment Editor, accept the alternative), `correction.undo`,
`review.save`. The runner and the debounce timer are injected (`review.scheduling`): synchronous in tests and
scripts, a worker thread + QTimer in Slicer. Nothing here imports Qt.

Regions are those of the model's prediction when the session starts (ranked, ids = ranks); corrections do not
re-rank them. A correction marks the regions it touches as "corrected" (pectoral: the region holding a clicked
row; chest X-ray: the region holding a pinned node; breast / CT: the region whose alternative was accepted, and
every region an edit changed voxels in), in the same undo entry as the correction.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..correction.undo import UndoStack, ValueSnapshot
from .navigation import jump_to_box
from .regions import compute_regions, model_card
from .scheduling import ImmediateTimer, SynchronousRunner
from .state import UNREVIEWED, ReviewState, case_key, find_or_create_parameter_node

CURVE_TASKS = ("mammo-pectoral", "cxr-landmarks")
LABEL_TASKS = ("mammo-breast", "ct-organs")


def read_landmarks_csv(path) -> np.ndarray:
    """landmarks.csv → (120, 2) pixel-centre (x, y), by node index."""
    with Path(path).open(newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["node"]))
    return np.array([[float(r["mean_x"]), float(r["mean_y"])] for r in rows])


class ReviewSession:
    """See the module docstring. parameter_node: the module's vtkMRMLScriptedModuleNode (default: found or created
    in the scene). threshold: the user's region threshold in the case's units (None: the model card's). runner /
    timer / delay_ms: injected scheduling. editor_node: a Segment Editor parameter node (breast / CT; None: the
    Segment Editor module's singleton, `correction.labels.segment_editor_node`). dilate_mm: margin of the editable
    area around a region (mm). on_change(session, what): called after anything changed (status, correction,
    undo), for the GUI to refresh."""

    def __init__(self, results, parameter_node=None, *, threshold: float | None = None, runner=None, timer=None,
                 delay_ms: int = 300, editor_node=None, dilate_mm: float | None = None, device: str = "cpu",
                 on_change=None) -> None:
        from ..correction.labels import DEFAULT_DILATE_MM

        self.results = results
        self.scene = results.scene
        self.task = results.task
        self.card = model_card(results.summary)
        self.region_set = compute_regions(results, threshold=threshold, card=self.card)
        self.state = ReviewState(parameter_node or find_or_create_parameter_node(self.scene),
                                 case_key(self.task, results.case))
        self.state.reset_if_changed(self.region_set.threshold.value, len(self.region_set))
        self.undo_stack = UndoStack()
        self.runner = runner or SynchronousRunner()
        self.timer = timer or ImmediateTimer()
        self.delay_ms = int(delay_ms)
        self.editor_node = editor_node
        self.dilate_mm = DEFAULT_DILATE_MM if dilate_mm is None else float(dilate_mm)
        self.device = device
        self.on_change = on_change
        self.corrector = None
        self.area = None
        self.error: str = ""
        self.closed = False  # background work delivered after close() is dropped
        self._probabilities = None
        self._model_labels = None
        if self.task in LABEL_TASKS:  # the model's labels (the file), what saving counts the changes against
            from ..correction.labels import file_label_map

            files = results.summary.get("files", {}) or {}
            self._model_labels = file_label_map(
                self.scene, Path(results.case_dir) / files.get("segmentation", "segmentation.seg.nrrd"),
                results.nodes["segmentation"], results.input_volume)

    # -------------------------------------------------------------------------------------------- regions
    @property
    def regions(self) -> list:
        return self.region_set.regions

    def region(self, region_id: int):
        return self.region_set.by_id(region_id)

    def status(self, region_id: int) -> str:
        return self.state.status(region_id)

    def describe(self, region) -> str:
        """Where the region is, in words for the table (input pixel rows / nodes / slices)."""
        if region.kind == "pectoral_rows":
            return f"rows {region.members[0]}–{region.members[-1]}"
        if region.kind == "cxr_arc":
            return f"{(region.organ or '').replace('_', ' ')} nodes {region.members[0]}–{region.members[-1]}"
        if len(region.bbox_min) == 3:
            return f"slices {region.bbox_min[0]}–{region.bbox_max[0]}, {region.volume_mm3:.0f} mm³"
        return f"rows {region.bbox_min[0]}–{region.bbox_max[0]}, {region.volume_mm3:.0f} mm²"

    def rows(self) -> list[dict]:
        """One dict per region for the GUI table: id (rank), kind, where, uncertainty (integrated), peak, status."""
        st = self.state.statuses()
        return [{"id": r.id, "kind": r.kind, "where": self.describe(r), "uncertainty": r.integrated,
                 "peak": r.peak, "size": r.size, "status": st.get(r.id, UNREVIEWED)} for r in self.regions]

    def counts(self) -> dict[str, int]:
        return self.state.counts([r.id for r in self.regions])

    # -------------------------------------------------------------------------------------------- navigation
    @property
    def current(self) -> int | None:
        return self.state.current

    def go_to(self, region_id: int) -> object:
        """Make `region_id` current, jump every slice view to it and (breast / CT) make it the editable area."""
        region = self.region(region_id)
        self.state.current = region.id
        lo, hi = self.region_set.box_ras(region)
        jump_to_box(self.scene, lo, hi, centre_ras=self.region_set.focus_ras(region))
        if self.task in LABEL_TASKS and self.corrections_ready:
            self.edit_region(region.id)
        self._changed("current")
        return region

    def next(self):
        """The next region in rank order (the first when none is current); None after the last."""
        ids = [r.id for r in self.regions]
        if not ids:
            return None
        k = ids.index(self.current) + 1 if self.current in ids else 0
        return self.go_to(ids[k]) if k < len(ids) else None

    def previous(self):
        ids = [r.id for r in self.regions]
        if not ids or self.current not in ids:
            return None
        k = ids.index(self.current) - 1
        return self.go_to(ids[k]) if k >= 0 else None

    # -------------------------------------------------------------------------------------------- status
    def set_status(self, region_id: int, status: str) -> None:
        self.region(region_id)
        self.state.set_status(region_id, status)
        self._changed("status")

    def accept(self, region_id: int | None = None) -> None:
        """The region is right as the model has it (default: the current one)."""
        self.set_status(self._which(region_id), "accepted")

    def mark_corrected(self, region_id: int | None = None) -> None:
        self.set_status(self._which(region_id), "corrected")

    def _which(self, region_id):
        rid = self.current if region_id is None else region_id
        if rid is None:
            raise ValueError("no region is selected")
        return int(rid)

    def _status_snapshot(self) -> ValueSnapshot:
        return ValueSnapshot(self.state.statuses, self.state.set_statuses)

    def _mark(self, ids) -> None:
        for rid in sorted(set(ids)):
            self.state.set_status(rid, "corrected")

    # -------------------------------------------------------------------------------------------- corrections
    @property
    def corrections_ready(self) -> bool:
        return self.corrector is not None or (self.task in LABEL_TASKS and self._started)

    _started = False

    def start_corrections(self, done=None) -> None:
        """Prepare the model-aware corrections. Curves: run the model once more through the runner (off the GUI
        thread in Slicer) and start observing the curves when it is back; breast / CT: set up the editable area
        of the current region. `done(session)` is called when ready (at once with a synchronous runner)."""
        from ..correction.models import image_from_volume

        results = self.results
        if self.task in LABEL_TASKS:
            self._started = True
            if self.current is not None:
                self.edit_region(self.current)
            if done:
                done(self)
            return
        if self.task not in CURVE_TASKS:
            raise ValueError(f"no corrections for task {self.task!r}")
        image = image_from_volume(results.input_volume, results.summary)  # read the nodes on this thread
        summary = dict(results.summary)
        files = summary.get("files", {}) or {}
        if self.task == "mammo-pectoral":
            from ..correction.models import pectoral_state
            from ..display.band import read_boundary_csv

            boundary = read_boundary_csv(Path(results.case_dir) / files.get("boundary", "boundary.csv"))

            def work():
                return pectoral_state(image, summary, boundary, self.device)
        else:
            from ..correction.models import cxr_state

            nodes_xy = read_landmarks_csv(Path(results.case_dir) / files.get("landmarks", "landmarks.csv"))

            def work():
                return cxr_state(image, summary, nodes_xy, self.device)

        def ready(state):
            if self.closed:
                return
            self._make_corrector(state)
            self._changed("ready")
            if done:
                done(self)

        def failed(error):
            self.error = f"The model-aware corrections are not available: {error}"
            self._changed("error")

        self.runner.submit(work, ready, failed)

    def _make_corrector(self, state) -> None:
        kwargs = dict(undo=self.undo_stack, runner=self.runner, timer=self.timer, delay_ms=self.delay_ms,
                      on_update=self._on_corrected, on_error=self._on_error)
        if self.task == "mammo-pectoral":
            from ..correction.pectoral import PectoralCorrector

            self.corrector = PectoralCorrector(self.results, state, **kwargs)
        else:
            from ..correction.cxr import CxrCorrector

            self.corrector = CxrCorrector(self.results, state, **kwargs)
        self.corrector.extra_snapshots = lambda: [self._status_snapshot()]

    def _on_corrected(self, corrector, info) -> None:
        touched = []
        for r in self.regions:
            if self.task == "mammo-pectoral" and any(row in r.members for row in corrector.constraints):
                touched.append(r.id)
            if self.task == "cxr-landmarks" and any(node in r.members for node in corrector.constraints):
                touched.append(r.id)
        self._mark(touched)
        self._changed("correction")

    def _on_error(self, error) -> None:
        self.error = f"The model could not update the contour: {error}"
        self._changed("error")

    # breast / CT ---------------------------------------------------------------------------------------------
    def edit_region(self, region_id: int):
        """Make the region (grown by `dilate_mm`) the Segment Editor's editable area; returns the EditableArea."""
        from uqseg.correction.editable import editable_mask

        from ..correction.labels import EditableArea

        if self.task not in LABEL_TASKS:
            raise ValueError(f"{self.task}: editing is through the contour, not the Segment Editor")
        region_mask = self.region_set.mask(region_id)
        m = self.region_set.ijk_to_ras
        spacing = tuple(float(v) for v in np.linalg.norm(m[:3, :3], axis=0))
        mask = editable_mask(region_mask.astype(float), 0.5, dilate_mm=self.dilate_mm, spacing=spacing)
        if self.area is not None:
            self.area.close()
        self.area = EditableArea(self.results, mask, self.editor_node, undo=None)
        self.area.region_id = int(region_id)
        return self.area

    def paint(self, stroke, segment_id: str, erase: bool = False) -> int:
        """A Segment Editor stroke (bool mask on the input grid) inside the current editable area; undoable;
        regions whose voxels changed become "corrected"."""
        from ..correction.labels import label_segments, read_labels
        from ..correction.undo import SegmentSnapshot

        if self.area is None:
            raise ValueError("no editable area: select a region first")
        seg, volume = self.results.nodes["segmentation"], self.results.input_volume
        before = read_labels(seg, volume)
        self.undo_stack.push("edit inside the uncertain region",
                             [SegmentSnapshot(seg, volume, list(label_segments(seg)), self.area.box()),
                              self._status_snapshot()])
        changed = self.area.paint(stroke, segment_id, erase=erase)
        if changed:
            diff = read_labels(seg, volume) != before
            self._mark([r.id for r in self.regions if (self.region_set.mask(r.id) & diff).any()])
        self._changed("correction")
        return changed

    def alternatives(self) -> list[str]:
        """What "accept the alternative" can use for this case: ["most probable other class"] (breast) or the
        sample files (ct-organs: "sample 1", ...)."""
        from ..correction.labels import sample_files

        if self.task == "mammo-breast":
            return ["most probable other class"]
        if self.task == "ct-organs":
            return [f"sample {k + 1}" for k in range(len(sample_files(self.results.case_dir)))]
        return []

    def accept_alternative(self, region_id: int | None = None, which: int = 0, done=None) -> None:
        """Replace the region's labels by the alternative `which` (index into `alternatives()`); undoable; the
        region becomes "corrected". Breast: the model's probabilities are computed once (runner)."""
        from ..correction.labels import accept_alternative, best_other_class, file_label_map, read_labels, \
            sample_files

        rid = self._which(region_id)
        mask = self.region_set.mask(rid)
        seg, volume = self.results.nodes["segmentation"], self.results.input_volume

        def apply(alternative):
            entry_snaps = [self._status_snapshot()]
            area = self.area
            ctx = area.suspended() if area is not None else _null()
            with ctx:
                changed = accept_alternative(self.results, mask, alternative, undo=self.undo_stack)
            self.undo_stack.entries[-1].snapshots += entry_snaps
            self._mark([rid])
            self._changed("correction")
            if done:
                done(changed)

        if self.task == "ct-organs":
            files = sample_files(self.results.case_dir)
            apply(file_label_map(self.scene, files[which], seg, volume))
            return
        if self.task != "mammo-breast":
            raise ValueError(f"{self.task}: no alternative labels")
        labels = read_labels(seg, volume)
        if self._probabilities is not None:
            apply(best_other_class(self._probabilities, labels))
            return
        from ..correction.models import breast_probabilities, image_from_volume

        image = image_from_volume(volume, self.results.summary)
        summary, model_labels, device = dict(self.results.summary), self._model_labels, self.device

        def got(probabilities):
            if self.closed:
                return
            self._probabilities = probabilities
            apply(best_other_class(probabilities, read_labels(seg, volume)))

        def failed(error):
            self.error = f"The alternative is not available: {error}"
            self._changed("error")

        self.runner.submit(lambda: breast_probabilities(image, summary, model_labels, device), got, failed)

    # -------------------------------------------------------------------------------------------- undo
    def undo(self) -> str | None:
        """Undo the newest correction exactly (positions, measurement values, segment voxels, statuses)."""
        if not self.undo_stack.can_undo:
            return None
        corrector_ctx = self.corrector.suspended() if self.corrector is not None else _null()
        area_ctx = self.area.suspended() if self.area is not None else _null()
        with corrector_ctx, area_ctx:
            label = self.undo_stack.undo()
        self._changed("undo")
        return label

    # -------------------------------------------------------------------------------------------- saving
    def save(self, root=None, notes=None) -> dict:
        """Write the corrected labels shown (`review.save`); returns the provenance record."""
        from .save import save_labels, save_landmarks, save_pectoral
        if self.corrector is not None:
            self.corrector.flush()
            self.runner.wait()
        st = self.state.statuses()
        common = dict(card=self.card, regions=self.regions, status=st, threshold=self.region_set.threshold,
                      notes=notes)
        if self.task == "mammo-pectoral":
            if self.corrector is not None:
                result = self.corrector.result
            else:
                from ..correction.pectoral import result_from_boundary
                from ..display.band import read_boundary_csv

                files = self.results.summary.get("files", {}) or {}
                boundary = read_boundary_csv(Path(self.results.case_dir) / files.get("boundary", "boundary.csv"))
                flipped = bool((self.results.summary.get("orientation") or {}).get("flipped_for_model"))
                result = result_from_boundary(boundary, self.region_set.shape, flipped)
            return save_pectoral(self.results, result, root, **common)
        if self.task == "cxr-landmarks":
            if self.corrector is not None:
                before, pinned = self.corrector.state.base.mean, list(self.corrector.pins)
            else:
                files = self.results.summary.get("files", {}) or {}
                before = read_landmarks_csv(Path(self.results.case_dir) / files.get("landmarks", "landmarks.csv"))
                pinned = []
            return save_landmarks(self.results, root, before_xy=before, pinned=pinned, **common)
        return save_labels(self.results, root, before=self._model_labels, **common)

    # -------------------------------------------------------------------------------------------- end
    def close(self) -> None:
        self.closed = True
        if self.corrector is not None:
            self.corrector.close()
            self.corrector = None
        if self.area is not None:
            self.area.close()
            self.area = None

    def _changed(self, what: str) -> None:
        if self.on_change is not None:
            self.on_change(self, what)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
