"""What the module panel shows, computed from the run logic and the review controller, so that the widget
(UQSegmentation.py) only copies values onto its widgets and forwards clicks.

    run_view(status, parameters) -> RunView       the Apply / Cancel button, the progress bar and the status line,
                                                  from the logic's `RunStatus` and the module's parameters
    review_view(controller) -> ReviewView         the Review section: table cells, the selected row, the summary
                                                  line, the alternatives and which buttons apply, from the
                                                  `review.controller.ReviewController` (None: nothing to review)
    table_cells(rows) -> [(id, kind, where, uncertainty, status)]   one row of text per region
    first_available(value, options)               a saved task or device this installation does not offer → the first
    retry_on_cpu_question(status), saved_message(case, folder)   texts of the widget's dialogs

`RunView.properties()` and `ReviewView.properties()` name the widgets of Resources/UI/UQSegmentation.ui that show
each value ({widget name: {Qt property: value}}, in the order to set them), so the widget sets them all in one loop;
Testing/test_module_packaging.py checks that every name is a widget of the .ui.

Plain Python, no Qt and no MRML: tested with stand-ins in Testing/test_lib_panel.py. Texts go through Slicer's
translation function when it exists (`slicer.i18n`, in the application; the context is this file's name) and stay
English elsewhere (slicer-core).
"""

from __future__ import annotations

from dataclasses import dataclass, field

try:
    from slicer.i18n import tr as _
except ImportError:  # slicer-core, or no Slicer at all

    def _(text: str) -> str:
        return text


PROGRESS_STEPS = 1000  # the progress bar's maximum while the engine reports progress (0: busy indicator)


@dataclass(frozen=True)
class RunView:
    apply_text: str
    apply_tooltip: str
    apply_enabled: bool
    progress_visible: bool
    progress_maximum: int
    progress_value: int
    progress_format: str
    status_text: str

    def properties(self) -> dict:
        return {"applyButton": {"text": self.apply_text, "toolTip": self.apply_tooltip, "enabled": self.apply_enabled},
                "progressBar": {"visible": self.progress_visible, "maximum": self.progress_maximum,
                                "value": self.progress_value, "format": self.progress_format},
                "statusLabel": {"text": self.status_text}}


def run_view(status, parameters=None) -> RunView:
    """`status`: the logic's RunStatus (running, indeterminate, progress 0..1, message, error); `parameters`: the
    module's parameter node (inputVolume, taskId) or None. Running: Cancel, always enabled; else Apply, enabled
    once an input and a task are chosen (the tooltip says what is missing)."""
    if status.running:
        text, tooltip, enabled = _("Cancel"), _("Stop the model and discard this run"), True
    else:
        missing_input = not getattr(parameters, "inputVolume", None)
        missing_task = not getattr(parameters, "taskId", "")
        text, enabled = _("Apply"), not (missing_input or missing_task)
        if enabled:
            tooltip = _("Run the task on the input image")
        elif missing_input and missing_task:
            tooltip = _("Select an input image and a task")
        elif missing_input:
            tooltip = _("Select an input image")
        else:
            tooltip = _("Select a task")
    progress = min(max(float(status.progress), 0.0), 1.0)
    return RunView(
        apply_text=text, apply_tooltip=tooltip, apply_enabled=enabled,
        progress_visible=bool(status.running),
        progress_maximum=0 if status.indeterminate else PROGRESS_STEPS,
        progress_value=int(round(PROGRESS_STEPS * progress)),
        progress_format=f"%p%  {status.message}" if status.message else "%p%",
        status_text=status.error or status.message)


def table_cells(rows) -> list[tuple[str, ...]]:
    """`ReviewSession.rows()` → the table's text, column by column: rank, kind (words), where, uncertainty, status."""
    return [(str(r["id"]), str(r["kind"]).replace("_", " "), str(r["where"]), f"{float(r['uncertainty']):.3g}",
             str(r["status"])) for r in rows]


@dataclass(frozen=True)
class ReviewView:
    cells: list = field(default_factory=list)  # table_cells of the regions, in rank order
    selected_row: int = -1  # the current region's row; -1: none
    summary: str = ""
    alternatives: list = field(default_factory=list)  # the alternative combo box's items
    has_regions: bool = False  # Previous / Next region
    region_selected: bool = False  # Accept / Mark corrected
    can_accept_alternative: bool = False  # Accept alternative and its combo box
    can_edit_in_segment_editor: bool = False  # a breast / CT region is the editable area
    can_undo: bool = False
    can_save: bool = False
    has_queue: bool = False  # Previous / Next case

    def properties(self) -> dict:
        """The summary line and the buttons' enabled state (the table and the combo box's items are not properties:
        the widget fills them from `cells` and `alternatives`)."""
        enabled = {"previousRegionButton": self.has_regions, "nextRegionButton": self.has_regions,
                   "acceptRegionButton": self.region_selected, "markCorrectedButton": self.region_selected,
                   "alternativeComboBox": self.can_accept_alternative,
                   "acceptAlternativeButton": self.can_accept_alternative,
                   "editInSegmentEditorButton": self.can_edit_in_segment_editor,
                   "undoCorrectionButton": self.can_undo, "saveCorrectionsButton": self.can_save,
                   "previousCaseButton": self.has_queue, "nextCaseButton": self.has_queue}
        return {"reviewSummaryLabel": {"text": self.summary}, **{name: {"enabled": on} for name, on in enabled.items()}}


def review_view(controller) -> ReviewView:
    """The Review section for `controller` (a ReviewController, or None before the widget made one)."""
    if controller is None:
        return ReviewView()
    session = controller.session
    rows = controller.table_rows()
    ids = [row["id"] for row in rows]
    current = session.current if session is not None else None
    alternatives = list(session.alternatives()) if session is not None else []
    selected = current is not None and current in ids
    return ReviewView(
        cells=table_cells(rows), selected_row=ids.index(current) if selected else -1, summary=controller.message,
        alternatives=alternatives, has_regions=bool(rows), region_selected=selected,
        can_accept_alternative=selected and bool(alternatives),
        can_edit_in_segment_editor=selected and session.area is not None,
        can_undo=session is not None and session.undo_stack.can_undo, can_save=session is not None,
        has_queue=controller.queue is not None)


def first_available(value, options):
    """`value` when this installation offers it (or offers nothing), else the first option: a scene saved elsewhere
    may name a task or a device that is not available here."""
    options = list(options)
    return value if value in options or not options else options[0]


def retry_on_cpu_question(status) -> str:
    """The question after a run that ran out of GPU memory (status.oom)."""
    return status.error + "\n\n" + _("Run it again on the CPU now?")


def saved_message(case: str, folder) -> str:
    return _("Saved {case} to {folder}").format(case=case, folder=folder)
