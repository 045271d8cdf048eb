"""The review page (Vue 3 + Vuetify through trame): what the reviewer sees and clicks. Wiring only — every action
calls `ReviewApp` (app.py); nothing here computes or touches MRML.

Left panel, top to bottom: the folder's case queue (rank, case, task, image uncertainty, flags, review status; a
click opens the case), the case line and a warning when another reviewer is editing it, the legend of the task's
uncertainty display, the overlay's opacity and threshold (ct-organs, mammo-breast), for CT the switch between the
variance and the out-of-distribution map, the uncertain regions
(Previous / Next centre the views on them; a click on a row too), Accept / Mark corrected, accept the alternative,
paint inside the region (ct-organs, mammo-breast; brush radius in mm), Undo, Save. Right: the Slicer views (slice
view; with the 3-D view for CT). A progress bar runs while anything is loading or the model is working; errors are
one red line.

Element ids (`uq-...`) name what a user sees, so scripts and the browser tests can find them. trame is imported
inside `build_page`, so that this module imports wherever the module folder is installed (e.g. in Slicer).
"""

from __future__ import annotations


def build_page(server, app):
    """Build the page on `server` (a trame server) for `app` (`ReviewApp`); returns the trame layout."""
    from trame.ui.vuetify3 import SinglePageWithDrawerLayout
    from trame.widgets import client, html
    from trame.widgets import vuetify3 as v3

    ctrl = server.controller
    ctrl.open_case = app.open_case
    ctrl.region = lambda name: app.region_action(name)
    ctrl.go_to_region = lambda rid: app.region_action("go_to", region_id=rid)
    ctrl.save = app.save
    ctrl.paint_mode = lambda on: app.action("paint mode", app.set_paint_mode, bool(on))

    with SinglePageWithDrawerLayout(server, full_height=True) as layout:
        layout.title.set_text("UQSegmentation review")
        layout.drawer.width = 460
        with layout.toolbar:
            html.Span("{{ folder }}", classes="text-caption ml-4", id="uq-folder")
            v3.VSpacer()
            html.Span("{{ busy_message }}", id="uq-busy", classes="text-caption mr-4", v_show="busy")
            v3.VProgressLinear(indeterminate=True, active=("busy",), absolute=True, location="bottom",
                               color="orange", id="uq-progress")
        with layout.drawer:
            with html.Div(classes="pa-2"):
                v3.VAlert(text=("error",), type="error", density="compact", v_show="error", id="uq-error",
                          classes="mb-2")
                v3.VAlert(text=("message",), type="success", density="compact", v_show="message", id="uq-message",
                          classes="mb-2")
                html.Div("Cases (most uncertain first)", classes="text-subtitle-2")
                with html.Table(id="uq-queue", classes="uq-table"):
                    with html.Tr():
                        for head in ("#", "case", "task", "uncertainty", "flags", "review"):
                            html.Th(head)
                    with html.Tr(v_for="row in cases", key="row.case", click=(ctrl.open_case, "[row.case]"),
                                 classes=("{ 'uq-current': row.case === current_case }",), __properties=["key"]):
                        for key in ("rank", "case", "task", "uncertainty", "flags", "status"):
                            html.Td(f"{{{{ row.{key} }}}}")
                html.Div("{{ case_info }}", id="uq-case", classes="text-body-2 mt-2")
                v3.VAlert(text=("`Being edited by ${editing_by}: a save is refused if they save first.`",),
                          type="warning", density="compact", v_show="editing_by", id="uq-editing", classes="my-1")
                with html.Div(v_if="legend", id="uq-legend", classes="my-2"):
                    html.Div("{{ legend.title }}{{ legend.units ? ' (' + legend.units + ')' : '' }}",
                             classes="text-caption")
                    html.Div(v_if="legend.stops.length", classes="uq-bar",
                             style=("{ background: 'linear-gradient(to right,' + legend.stops.map(c => "
                                    "'rgb(' + c.join(',') + ')').join(',') + ')' }",))
                    with html.Div(v_if="legend.stops.length", classes="d-flex text-caption"):
                        html.Span("{{ legend.min.toPrecision(3) }}")
                        v3.VSpacer()
                        html.Span("{{ legend.max.toPrecision(3) }}")
                v3.VCheckbox(v_if="has_ood", v_model=("show_ood",), label="Show the out-of-distribution map",
                             density="compact", hide_details=True, id="uq-ood")
                with html.Div(v_if="has_overlay"):
                    v3.VSlider(v_model=("opacity",), min=0, max=1, step=0.05, label="opacity", density="compact",
                               hide_details=True, id="uq-opacity")
                    v3.VSlider(v_model=("threshold",), min=("threshold_min",), max=("threshold_max",),
                               step=0, label="threshold",
                               density="compact", hide_details=True, id="uq-threshold")
                html.Div("{{ region_summary }}", id="uq-region-summary", classes="text-body-2 mt-2")
                with html.Div(classes="d-flex flex-wrap ga-1 my-1"):
                    for label, name in (("Previous", "previous"), ("Next", "next"), ("Accept", "accept"),
                                        ("Mark corrected", "mark_corrected"), ("Undo", "undo")):
                        v3.VBtn(label, size="small", id=f"uq-{name.replace('_', '-')}",
                                click=(ctrl.region, f"['{name}']"),
                                disabled=("!can_undo",) if name == "undo" else False)
                    v3.VBtn("Save", size="small", color="primary", id="uq-save", click=ctrl.save)
                with html.Div(v_if="alternatives.length", classes="d-flex align-center ga-1 my-1"):
                    v3.VSelect(v_model=("alternative",), items=("alternatives.map((t, i) => ({title: t, value: i}))",),
                               density="compact", hide_details=True, label="alternative", id="uq-alternative-choice")
                    v3.VBtn("Accept the alternative", size="small", id="uq-accept-alternative",
                            click=(ctrl.region, "['accept_alternative']"))
                with html.Div(v_if="can_paint", classes="d-flex align-center ga-1 my-1"):
                    v3.VBtn("{{ paint_mode ? 'Stop painting' : 'Paint in region' }}", size="small", id="uq-paint",
                            color=("paint_mode ? 'orange' : undefined",), click=(ctrl.paint_mode, "[!paint_mode]"))
                    v3.VSelect(v_model=("paint_segment",), items=("paint_segments",), density="compact",
                               hide_details=True, label="segment", id="uq-paint-segment")
                    v3.VCheckbox(v_model=("paint_erase",), label="erase", density="compact", hide_details=True)
                v3.VSlider(v_if="can_paint", v_model=("paint_radius_mm",), min=1, max=30, step=1,
                           label=("`brush ${paint_radius_mm} mm`",), density="compact", hide_details=True,
                           id="uq-paint-radius")
                html.Div("Drag a point of the curve: the model refits the contour around it."
                         "{{ refit_ms !== null ? ' Last refit ' + refit_ms + ' ms.' : '' }}",
                         v_if="can_correct", classes="text-caption", id="uq-drag-hint")
                with html.Table(id="uq-regions", classes="uq-table mt-1"):
                    with html.Tr():
                        for head in ("#", "where", "uncertainty", "peak", "status"):
                            html.Th(head)
                    with html.Tr(v_for="r in regions", key="r.id", click=(ctrl.go_to_region, "[r.id]"),
                                 classes=("{ 'uq-current': r.id === current_region }",), __properties=["key"]):
                        for key in ("id", "where", "uncertainty", "peak", "status"):
                            html.Td(f"{{{{ r.{key} }}}}")
        with layout.content:
            client.Style(STYLE)
            with html.Div(id="uq-views", style="position: relative; width: 100%; height: 100%;"):
                app.layouts.initialize_layout_grid(layout)
    return layout


STYLE = """
.uq-table { border-collapse: collapse; width: 100%; font-size: 12px; }
.uq-table th, .uq-table td { border-bottom: 1px solid #555; padding: 2px 4px; text-align: left; }
.uq-table tr { cursor: pointer; }
.uq-current { background: #3a4a6a; }
.uq-bar { height: 12px; border: 1px solid #777; }
"""
