"""What the module panel shows (`UQSegmentationLib.panel`), the Review section's buttons
(`ReviewController.act` / `go_to_row`) and the debounce timer on a QTimer (`review.scheduling.SingleShotTimer`):
the logic that UQSegmentation.py only wires to its widgets, checked here with stand-ins for the session and the
QTimer. The same view on a real review of a real prediction: Testing/test_lib_review.py
(test_review_panel_follows_a_real_review); the widget names against the .ui: Testing/test_module_packaging.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

MODULE_DIR = Path(__file__).resolve().parents[1] / "UQSegmentation"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from UQSegmentationLib import panel  # noqa: E402
from UQSegmentationLib.logic import FAILED, RUNNING, RunStatus  # noqa: E402
from UQSegmentationLib.review.controller import ReviewController  # noqa: E402
from UQSegmentationLib.review.scheduling import Debouncer, SingleShotTimer  # noqa: E402


# ------------------------------------------------------------------------------------------------------ run state
def params(volume=None, task=""):
    return SimpleNamespace(inputVolume=volume, taskId=task)


def test_apply_says_what_is_missing_before_a_run():
    idle = RunStatus()
    for parameters, tooltip in ((None, "Select an input image and a task"),
                                (params(), "Select an input image and a task"),
                                (params(task="mammo-pectoral"), "Select an input image"),
                                (params(volume=object()), "Select a task")):
        view = panel.run_view(idle, parameters)
        assert (view.apply_text, view.apply_enabled, view.apply_tooltip) == ("Apply", False, tooltip)
        assert not view.progress_visible and view.status_text == ""
    ready = panel.run_view(idle, params(object(), "mammo-pectoral"))
    assert ready.apply_enabled and ready.apply_tooltip == "Run the task on the input image"


def test_a_run_turns_apply_into_cancel_with_a_busy_indicator_then_a_progress_bar():
    starting = RunStatus(state=RUNNING, progress=0.05, message="starting mammo-pectoral on cpu")
    view = panel.run_view(starting, params())  # Cancel works whatever the parameters say now
    assert (view.apply_text, view.apply_enabled) == ("Cancel", True)
    assert view.progress_visible and view.progress_maximum == 0  # busy indicator: the engine said nothing yet
    assert view.progress_format == "%p%  starting mammo-pectoral on cpu"
    assert view.status_text == "starting mammo-pectoral on cpu"
    halfway = panel.run_view(RunStatus(state=RUNNING, progress=0.5, message="m"), params())
    assert (halfway.progress_maximum, halfway.progress_value) == (panel.PROGRESS_STEPS, panel.PROGRESS_STEPS // 2)
    silent = panel.run_view(RunStatus(state=RUNNING, progress=0.7), params())
    assert silent.progress_format == "%p%" and silent.progress_value == 700


def test_an_error_is_the_status_line_and_the_run_can_start_again():
    failed = RunStatus(state=FAILED, message="failed", error="'chest': not a 2-D image", progress=0.3)
    view = panel.run_view(failed, params(object(), "cxr-landmarks"))
    assert view.status_text == "'chest': not a 2-D image" and view.apply_enabled and not view.progress_visible
    assert panel.retry_on_cpu_question(RunStatus(error="The GPU ran out of memory.")) == (
        "The GPU ran out of memory.\n\nRun it again on the CPU now?")


def test_run_view_properties_name_the_widgets_and_set_the_range_before_the_value():
    props = panel.run_view(RunStatus(state=RUNNING, progress=1.5), params()).properties()
    assert list(props) == ["applyButton", "progressBar", "statusLabel"]
    assert list(props["progressBar"]) == ["visible", "maximum", "value", "format"]  # value after its range
    assert props["progressBar"]["value"] == panel.PROGRESS_STEPS  # clamped to the range
    assert props["applyButton"] == {"text": "Cancel", "toolTip": "Stop the model and discard this run",
                                    "enabled": True}


# ------------------------------------------------------------------------------------------------------ review
class FakeSession:
    """What review_view and ReviewController read of a ReviewSession, and a log of what the buttons called."""

    def __init__(self, rows, alternatives=(), area=None, can_undo=False):
        self._rows, self._alternatives, self.area = rows, list(alternatives), area
        self.current = None
        self.undo_stack = SimpleNamespace(can_undo=can_undo)
        self.calls = []

    def rows(self):
        return self._rows

    def alternatives(self):
        return self._alternatives

    def go_to(self, region_id):
        self.current = region_id
        self.calls.append(("go_to", region_id))

    def __getattr__(self, name):  # previous, next, accept, mark_corrected, undo, accept_alternative
        if name in ReviewController.ACTIONS:
            return lambda **kwargs: self.calls.append((name, kwargs))
        raise AttributeError(name)

    def close(self):
        pass


ROWS = [{"id": 1, "kind": "ct_component", "where": "slices 3–7, 812 mm³", "uncertainty": 12.3456,
         "status": "accepted"},
        {"id": 2, "kind": "ct_component", "where": "slices 9–9, 40 mm³", "uncertainty": 0.001234,
         "status": "unreviewed"}]


def controller_with(session, queue=None, message="case summary"):
    controller = ReviewController(scene=None)
    controller.session, controller.queue, controller.message = session, queue, message
    return controller


def test_table_cells_are_text_in_the_columns_of_the_ui():
    assert panel.table_cells(ROWS) == [("1", "ct component", "slices 3–7, 812 mm³", "12.3", "accepted"),
                                       ("2", "ct component", "slices 9–9, 40 mm³", "0.00123", "unreviewed")]


def test_nothing_to_review_disables_every_review_button():
    for view in (panel.review_view(None), panel.review_view(controller_with(None, message="Open a queue first."))):
        assert view.cells == [] and view.selected_row == -1 and view.alternatives == []
        props = view.properties()
        assert all(not p["enabled"] for name, p in props.items() if name != "reviewSummaryLabel")
    assert panel.review_view(controller_with(None, message="Open a queue first.")).summary == "Open a queue first."


def test_buttons_follow_the_session_selection_area_undo_and_queue():
    session = FakeSession(ROWS, alternatives=["sample 1", "sample 2"])
    view = panel.review_view(controller_with(session))
    assert view.has_regions and view.can_save and not view.region_selected and view.selected_row == -1
    assert not (view.can_accept_alternative or view.can_edit_in_segment_editor or view.can_undo or view.has_queue)
    assert view.alternatives == ["sample 1", "sample 2"] and view.summary == "case summary"
    session.current, session.area, session.undo_stack.can_undo = 2, object(), True
    view = panel.review_view(controller_with(session, queue=object()))
    assert view.selected_row == 1 and view.region_selected and view.can_accept_alternative
    assert view.can_edit_in_segment_editor and view.can_undo and view.has_queue
    props = view.properties()
    assert props["reviewSummaryLabel"] == {"text": "case summary"}
    assert props["alternativeComboBox"] == props["acceptAlternativeButton"] == {"enabled": True}
    assert {name for name, p in props.items() if p.get("enabled") is False} == set()
    # a contour task: no alternatives, no Segment Editor area
    session = FakeSession(ROWS[:1])
    session.current = 1
    view = panel.review_view(controller_with(session))
    assert view.region_selected and not view.can_accept_alternative and not view.can_edit_in_segment_editor


def test_review_buttons_call_the_session_and_the_table_row_jumps_to_its_region():
    session = FakeSession(ROWS, alternatives=["sample 1", "sample 2"])
    controller = controller_with(session)
    for action in ("next", "previous", "accept", "mark_corrected", "undo"):
        controller.act(action, alternative=5)
    controller.act("accept_alternative", alternative=1)
    controller.act("accept_alternative", alternative=-1)  # nothing chosen in the combo box: the first
    assert session.calls == [("next", {}), ("previous", {}), ("accept", {}), ("mark_corrected", {}), ("undo", {}),
                             ("accept_alternative", {"which": 1}), ("accept_alternative", {"which": 0})]
    controller.go_to_row(1)
    assert session.current == 2 and session.calls[-1] == ("go_to", 2)
    assert controller.go_to_row(2) is None and controller.go_to_row(-1) is None and len(session.calls) == 8
    with pytest.raises(ValueError, match="unknown review action"):
        controller.act("save")
    idle = controller_with(None)
    assert idle.act("next") is None and idle.go_to_row(0) is None


def test_first_available_keeps_a_known_value_and_replaces_an_unknown_one():
    assert panel.first_available("cpu", ["auto", "cuda", "cpu"]) == "cpu"
    assert panel.first_available("mps", ["auto", "cuda", "cpu"]) == "auto"  # a scene saved on a Mac
    assert panel.first_available("", ["mammo-pectoral", "ct-organs"]) == "mammo-pectoral"
    assert panel.first_available("ct-organs", []) == "ct-organs"  # nothing offered: leave it


def test_texts_stay_english_without_slicers_translation():
    assert panel.saved_message("A_0279", "/tmp/corrections") == "Saved A_0279 to /tmp/corrections"
    assert panel._("Apply") == "Apply"


# ------------------------------------------------------------------------------------------------------ timer
class FakeQTimer:
    """The part of qt.QTimer that SingleShotTimer uses; `timeout()` fires it as Qt's event loop would."""

    def __init__(self):
        self.single_shot, self.interval, self.running, self._slots = None, None, False, []
        self.timeout = SimpleNamespace(connect=self._slots.append)

    def setSingleShot(self, on):
        self.single_shot = on

    def start(self, ms):
        self.interval, self.running = ms, True

    def stop(self):
        self.running = False

    def isActive(self):
        return self.running

    def fire(self):
        if self.running:
            self.running = not self.single_shot
            for slot in self._slots:
                slot()


def test_single_shot_timer_on_a_qtimer_debounces_a_burst_into_one_call():
    qtimer, calls = FakeQTimer(), []
    timer = SingleShotTimer(qtimer)
    assert qtimer.single_shot is True and not timer.active
    debouncer = Debouncer(timer, 300, lambda: calls.append("update"))
    for _ in range(5):  # a drag: many point-modified events
        debouncer.trigger()
    assert timer.active and qtimer.interval == 300 and calls == []
    qtimer.fire()
    qtimer.fire()  # single shot: nothing more
    assert calls == ["update"] and not timer.active
    timer.start(10, lambda: calls.append("cancelled"))
    timer.stop()
    qtimer.running = True  # a timeout already queued when stop() came
    qtimer.fire()
    assert calls == ["update"]
