"""What the module's "Review" section holds between clicks: the review session of the case on screen, the batch
queue, and the background runner — so that the widget only forwards button presses (`act`, `go_to_row`) and shows
what `UQSegmentationLib.panel.review_view` computes from it.

    controller = ReviewController(scene, parameter_node, runner=ThreadRunner(), timer=SingleShotTimer(qt.QTimer()))
    controller.review(results)        # after a run, or when a queue case is opened
    controller.open_queue(path)       # queue.csv of `uqseg predict`; opens the first (most uncertain) case
    controller.next_case() / previous_case()
    controller.poll()                 # the widget's timer: delivers finished background work on the GUI thread
    controller.act("next") / act("accept_alternative", alternative=1) / go_to_row(row)   # the section's buttons

One session at a time: reviewing another case closes the previous session (its observers, its editable area);
statuses stay in the parameter node. Queue cases reuse their input volume node when opened again (the node carries
the attribute ``UQSegmentation.QueueCase`` = the case folder), so going back and forth replaces results instead of
piling them up.
"""

from __future__ import annotations

from .scheduling import SynchronousRunner

ATTR_QUEUE_CASE = "UQSegmentation.QueueCase"


class ReviewController:
    def __init__(self, scene, parameter_node=None, runner=None, timer=None, delay_ms: int = 300,
                 on_change=None) -> None:
        self.scene = scene
        self.parameter_node = parameter_node
        self.runner = runner or SynchronousRunner()
        self.timer = timer
        self.delay_ms = delay_ms
        self.on_change = on_change
        self.session = None
        self.queue = None
        self.message = ""

    # -------------------------------------------------------------------------------------------- sessions
    def review(self, results, threshold: float | None = None):
        """Start reviewing a loaded result (closing the previous session); returns the session."""
        from .session import ReviewSession

        self.close_session()
        if results is None or results.input_volume is None:
            self.message = "Nothing to review: run a task or open a queue first."
            return None
        self.session = ReviewSession(results, self.parameter_node, threshold=threshold, runner=self.runner,
                                     timer=self.timer, delay_ms=self.delay_ms, on_change=self._session_changed)
        self.session.start_corrections()
        self.message = self.summary()
        self._changed("session")
        return self.session

    def close_session(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    def summary(self) -> str:
        s = self.session
        if s is None:
            return self.message
        c = s.counts()
        text = (f"{s.results.case}: {len(s.regions)} uncertain regions (threshold {s.region_set.threshold.value:.3g}"
                f", {s.region_set.threshold.source}) — {c['accepted']} accepted, {c['corrected']} corrected, "
                f"{c['unreviewed']} to review")
        if self.queue is not None and self.queue.current is not None:
            text = f"case {self.queue.current.rank} of {len(self.queue.entries)} — " + text
        if s.error:
            text += f"\n{s.error}"
        return text

    def table_rows(self) -> list[dict]:
        return self.session.rows() if self.session is not None else []

    def poll(self) -> int:
        return self.runner.poll()

    # -------------------------------------------------------------------------------------------- buttons
    ACTIONS = ("previous", "next", "accept", "mark_corrected", "undo", "accept_alternative")

    def act(self, action: str, alternative: int = 0):
        """What a button of the Review section does to the session on screen (nothing without one): one of
        `ACTIONS`; "accept_alternative" takes `alternative`, the index into `session.alternatives()` (the combo
        box's current index; negative, i.e. none chosen: the first). Returns what the session returned."""
        if action not in self.ACTIONS:
            raise ValueError(f"unknown review action {action!r}; one of {', '.join(self.ACTIONS)}")
        if self.session is None:
            return None
        if action == "accept_alternative":
            return self.session.accept_alternative(which=max(0, int(alternative)))
        return getattr(self.session, action)()

    def go_to_row(self, row: int):
        """Jump to the region of row `row` of `table_rows()` (a click in the table); None outside the table."""
        rows = self.table_rows()
        if not 0 <= row < len(rows):
            return None
        return self.session.go_to(rows[row]["id"])

    # -------------------------------------------------------------------------------------------- queue
    def open_queue(self, path):
        """Read queue.csv (a file or its folder) and open its first case with results; returns the session."""
        from .batch_queue import CaseQueue

        self.queue = CaseQueue.open(path)
        return self.next_case()

    def next_case(self):
        return self._open(self.queue.next() if self.queue is not None else None)

    def previous_case(self):
        return self._open(self.queue.previous() if self.queue is not None else None)

    def _open(self, entry):
        from ..input_volume import load_input_volume
        from ..results import load_results
        from .batch_queue import input_path

        if entry is None:
            self.message = "No more cases in the queue." if self.queue is not None else "Open a queue first."
            self._changed("queue")
            return None
        volume = None
        nodes = self.scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
        for k in range(nodes.GetNumberOfItems()):
            node = nodes.GetItemAsObject(k)
            if node.GetAttribute(ATTR_QUEUE_CASE) == str(entry.case_dir):
                volume = node
                break
        if volume is None:
            volume = load_input_volume(self.scene, input_path(entry), name=entry.case)
            volume.SetAttribute(ATTR_QUEUE_CASE, str(entry.case_dir))
        results = load_results(self.scene, entry.case_dir, volume)
        return self.review(results)

    # -------------------------------------------------------------------------------------------- end
    def close(self) -> None:
        self.close_session()
        self.queue = None
        self.runner.shutdown()

    def _session_changed(self, session, what) -> None:
        self.message = self.summary()
        self._changed(what)

    def _changed(self, what) -> None:
        if self.on_change is not None:
            self.on_change(self, what)
