"""The review server: one Slicer MRML scene (trame-slicer's `SlicerApp`), its views streamed to the browser, and the
review of the case on screen — all through `UQSegmentationLib`, the code the Slicer module runs.

What happens where:
- opening a case: `UQSegmentationLib.input_volume.load_input_volume` + `UQSegmentationLib.load_results` (the task's
  display: ±σ band + curve, node-coloured curves with a legend, variance / entropy overlay with a legend; for CT
  the out-of-distribution map as the other overlay, `UQSegmentationLib.display.ood`), then a
  `ReviewSession` (`UQSegmentationLib.review.session`) — regions, Previous / Next (centring the slice views),
  Accept / Mark corrected, the model-aware corrections, undo, save. The previous case's nodes are removed first, so
  one scene serves any number of cases.
- the views: trame-slicer's slice view "Red" (axial; for 2-D images the image plane) and, for CT, its 3-D view,
  rendered offscreen (EGL) and sent as PNG frames (lossless, so the page shows the colours the display code set).
  Mouse events from the page go to Slicer's interactor styles: dragging a curve's control point moves it exactly as
  in Slicer, which starts the debounced, model-aware refit (`UQSegmentationLib.correction`).
- background work (the model run again for corrections, a refit): `ThreadRunner` on a worker thread, delivered on
  the asyncio loop (`scheduling.py`); the page shows a progress bar while anything runs.
- errors: every action catches its exception and shows one line on the page (`state.error`); the traceback goes to
  the server's log, never to the browser.
- two reviewers: `editing.py` (marks, refusing a save over someone else's).

Segment colours are set explicitly from each segmentation file's own header (`pin_segment_colours`): without it a
segment's colour could differ between server starts (terminology look-ups fill in colours otherwise).
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from pathlib import Path

import numpy as np

from . import editing
from .folder import Case, corrections_root, read_cases
from .scheduling import LoopTimer, poll_forever

log = logging.getLogger("uqseg.review")

IMAGE_LAYOUT = "image"  # one slice view
VOLUME_LAYOUT = "volume"  # slice view + 3-D view (ct-organs)
VOLUME_TASKS = ("ct-organs",)
OVERLAY_TASKS = ("mammo-breast", "ct-organs")
PAINT_TASKS = ("mammo-breast", "ct-organs")
CURVE_TASKS = ("mammo-pectoral", "cxr-landmarks")
LEGEND_SAMPLES = 16  # colour stops of the page's HTML legend bar
QUEUE_S = 2.0  # how often the queue (statuses, other reviewers' marks) is read again


def pin_segment_colours(segmentation_node, seg_path: Path) -> int:
    """Set every segment that the .seg.nrrd file describes to the file's own colour (Segment<k>_ID / _Color)."""
    import nrrd

    try:
        header = nrrd.read_header(str(seg_path))
    except (OSError, nrrd.NRRDError):
        return 0
    segmentation = segmentation_node.GetSegmentation()
    done = 0
    for key, value in header.items():
        if key.startswith("Segment") and key.endswith("_ID"):
            prefix = key[: -len("_ID")]
            colour = header.get(prefix + "_Color")
            segment = segmentation.GetSegment(str(value))
            if segment is not None and colour:
                segment.SetColor(*[float(v) for v in str(colour).split()[:3]])
                done += 1
    return done


def shown_overlay(results, ood: bool):
    """The overlay volume node on screen: the OOD map (ct-organs, when asked for and present) or the task's
    variance / entropy overlay (None when the result has neither)."""
    if results is None:
        return None
    if ood and results.nodes.get("ood") is not None:
        return results.nodes["ood"]
    return results.overlay


def legend_of(results, ood: bool = False) -> dict | None:
    """What the page's legend shows for the loaded result: title, units, colormap stops, value range. `ood`: the
    out-of-distribution map is the overlay on screen (ct-organs)."""
    from UQSegmentationLib.display.colormaps import colormap_rgb

    def stops(name):
        return [[round(255 * c) for c in colormap_rgb(name, k / (LEGEND_SAMPLES - 1))] for k in range(LEGEND_SAMPLES)]

    task, summary = results.task, results.summary
    overlay = shown_overlay(results, ood)
    if overlay is not None and (overlay is not results.overlay or task in OVERLAY_TASKS):
        from UQSegmentationLib.display.variance import get_overlay_threshold

        if overlay is not results.overlay:  # the OOD map
            from UQSegmentationLib.display.ood import OOD_COLORMAP, OOD_TITLE, OOD_UNITS

            title, units, colormap = OOD_TITLE, OOD_UNITS, OOD_COLORMAP
        else:
            title = "entropy" if task == "mammo-breast" else "variance"
            units = summary.get("uncertainty_units" if task == "mammo-breast" else "variance_units")
            units = units if isinstance(units, str) else ("nats" if task == "mammo-breast" else "")
            colormap = "inferno"
        lo, hi = overlay.GetImageData().GetScalarRange()
        threshold = get_overlay_threshold(overlay)
        return {"title": title, "units": units, "stops": stops(colormap),
                "min": float(threshold if threshold is not None else lo), "max": float(hi)}
    if task == "cxr-landmarks":
        from UQSegmentationLib.display.node_colormap import curve_values

        values = np.concatenate([curve_values(n) for role, n in results.nodes.items() if role.startswith("curve:")])
        return {"title": "node std", "units": "mm", "stops": stops("viridis"), "min": float(values.min()),
                "max": float(values.max())}
    if task == "mammo-pectoral":
        return {"title": "mean boundary (yellow), ±σ band (cyan)", "units": "", "stops": [], "min": 0.0, "max": 0.0}
    return None


class ReviewApp:
    """The server side of the page (`page.py` builds the page on it). `folder`: the `uqseg predict` output folder;
    `who`: the reviewer's name shown to others; `device`: where the model runs for corrections."""

    def __init__(self, server, folder, who: str = "a reviewer", device: str = "cpu") -> None:
        from trame_slicer.core import LayoutManager, SlicerApp
        from trame_slicer.rca_view import register_rca_factories
        from trame_slicer.views import Layout, LayoutDirection, ViewLayoutDefinition

        from UQSegmentationLib.review.scheduling import ThreadRunner

        self.server, self.state, self.ctrl = server, server.state, server.controller
        self.folder = Path(folder)
        self.who, self.device = who, device
        self.holder = editing.new_holder()
        self.slicer = SlicerApp()
        self.scene = self.slicer.scene
        register_rca_factories(self.slicer.view_manager, server, slice_view_ui_f=lambda *a: None,
                               three_d_view_ui_f=lambda *a: None, rca_encoder="png", target_fps=20.0,
                               blur_fps=20.0)
        self.layouts = LayoutManager(self.scene, self.slicer.view_manager, server)
        axial, threed = ViewLayoutDefinition.axial_view(), ViewLayoutDefinition.threed_view()
        self.layouts.register_layout(IMAGE_LAYOUT, Layout(LayoutDirection.Vertical, [axial]))
        self.layouts.register_layout(VOLUME_LAYOUT, Layout(LayoutDirection.Horizontal, [axial, threed]))
        self.layouts.set_layout(IMAGE_LAYOUT)
        self.runner = ThreadRunner()
        self.timer = LoopTimer()
        self.cases: list[Case] = []
        self.case: Case | None = None
        self.results = None
        self.session = None
        self.volume = None
        self.opened_saved = None
        self._refit_started = None
        self._paint_observer = None
        self._loading = False
        self._init_state()
        self.ctrl.on_server_ready.add_task(self._on_ready)

    # ------------------------------------------------------------------------------------------------- state
    def _init_state(self) -> None:
        s = self.state
        s.trame__title = "UQSegmentation review"
        s.folder = str(self.folder)
        s.cases, s.current_case, s.case_task, s.case_info, s.editing_by = [], None, "", "", ""
        s.regions, s.current_region, s.region_summary = [], None, ""
        s.busy, s.busy_message = False, ""
        s.error, s.message = "", ""
        s.legend = None
        s.has_overlay, s.opacity, s.threshold, s.threshold_min, s.threshold_max = False, 0.6, 0.0, 0.0, 1.0
        s.has_ood, s.show_ood = False, False
        s.alternatives, s.alternative = [], 0
        s.can_undo, s.can_correct, s.corrections_ready, s.can_paint = False, False, False, False
        s.paint_mode, s.paint_segment, s.paint_segments, s.paint_radius_mm, s.paint_erase = False, "", [], 5.0, False
        s.curve_points, s.view_centre, s.view_size, s.view_mm_per_px = [], [], [0, 0], None
        s.refit_ms, s.refits = None, 0
        s.change("opacity")(self._on_opacity)
        s.change("threshold")(self._on_threshold)
        s.change("show_ood")(self._on_show_ood)

    async def _on_ready(self, **_):
        asyncio.ensure_future(poll_forever(self.runner, self._on_polled))
        asyncio.ensure_future(self._beat())
        self.refresh_cases()
        if self.cases:
            await self.open_case(self.cases[0].case)

    async def _beat(self):
        """Every QUEUE_S seconds the queue is read again (other reviewers' marks and saves); every BEAT_S seconds
        this server's mark is refreshed."""
        last_mark = time.monotonic()
        while True:
            await asyncio.sleep(QUEUE_S)
            try:
                if self.case is not None and time.monotonic() - last_mark >= editing.BEAT_S:
                    editing.write_mark(self.case.case_dir, self.holder, self.who)
                    last_mark = time.monotonic()
                with self.state:
                    self.refresh_cases()
            except Exception:  # the heartbeat never stops the server
                log.exception("heartbeat")

    # ------------------------------------------------------------------------------------------------- errors
    def _fail(self, what: str, error: BaseException) -> None:
        log.error("%s failed:\n%s", what, "".join(traceback.format_exception(type(error), error, error.__traceback__)))
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        self.state.error = f"{what}: {text}"
        self.state.busy, self.state.busy_message = False, ""

    def action(self, what: str, fn, *args, **kwargs):
        """Run a page action: its error becomes one line on the page; the page is refreshed after it."""
        with self.state:
            self.state.error, self.state.message = "", ""
            try:
                result = fn(*args, **kwargs)
            except Exception as error:
                self._fail(what, error)
                result = None
            self.refresh()
        return result

    # ------------------------------------------------------------------------------------------------- queue
    def refresh_cases(self) -> None:
        from .folder import saved_record

        try:
            self.cases = read_cases(self.folder)
        except Exception as error:
            self._fail(f"{self.folder}", error)
            return
        rows = []
        for c in self.cases:
            others = editing.held_by_others(c.case_dir, self.holder)
            if others:
                status = f"being edited by {', '.join(others)}"
            elif saved_record(c) is not None:
                status = "saved"
            elif self.case is not None and c.case == self.case.case:
                status = "open"
            else:
                status = "to review"
            rows.append({"rank": c.rank, "case": c.case, "task": c.task,
                         "uncertainty": None if c.image_uncertainty is None else round(c.image_uncertainty, 4),
                         "flags": ", ".join(c.flags) or "-", "status": status})
        self.state.cases = rows
        if self.case is not None:
            self.state.editing_by = ", ".join(editing.held_by_others(self.case.case_dir, self.holder))

    async def open_case(self, name: str) -> None:
        case = next((c for c in self.cases if c.case == name), None)
        if case is None:
            with self.state:
                self.state.error = f"{name}: no such case in {self.folder}"
            return
        self._loading = True  # the poller leaves the progress line alone until the case is loaded
        with self.state:
            self.state.error, self.state.message = "", ""
            self.state.busy, self.state.busy_message = True, f"Loading {name}…"
        await asyncio.sleep(0.05)  # let the page show the progress before the (blocking) load
        t0 = time.perf_counter()
        with self.state:
            try:
                self._load(case)
                self.state.message = f"{name} loaded in {time.perf_counter() - t0:.1f} s"
            except Exception as error:
                self._fail(f"{name}", error)
            self._loading = False
            self.state.busy, self.state.busy_message = bool(self.runner.busy), (
                "Preparing the model-aware corrections…" if self.runner.busy else "")
            self.refresh_cases()
            self.refresh()

    def _close_case(self) -> None:
        from UQSegmentationLib.hierarchy import remove_results

        self.set_paint_mode(False)
        if self.session is not None:
            self.session.close()
            self.session = None
        if self.results is not None:
            remove_results(self.scene, self.results.folder_item)
            self.results = None
        if self.volume is not None:
            self.scene.RemoveNode(self.volume)
            self.volume = None
        if self.case is not None:
            editing.remove_mark(self.case.case_dir, self.holder)
            self.case = None

    def _load(self, case: Case) -> None:
        from UQSegmentationLib import load_input_volume, load_results
        from UQSegmentationLib.review.batch_queue import QueueEntry, input_path
        from UQSegmentationLib.review.session import ReviewSession

        self._close_case()
        entry = QueueEntry(case.rank, case.case, case.case_dir, case.image_uncertainty)
        self.volume = load_input_volume(self.scene, input_path(entry), name=case.case)
        self.results = load_results(self.scene, case.case_dir, self.volume)
        seg = self.results.nodes.get("segmentation")
        files = self.results.summary.get("files", {}) or {}
        if seg is not None:
            name = files.get("segmentation") or ("pectoral.seg.nrrd" if case.task == "mammo-pectoral"
                                                 else "segmentation.seg.nrrd")
            pin_segment_colours(seg, case.case_dir / name)
            if case.task in VOLUME_TASKS:
                seg.CreateClosedSurfaceRepresentation()
        self.case = case
        self.opened_saved = editing.record_saved_time(case.case_dir, case.case)
        editing.write_mark(case.case_dir, self.holder, self.who)
        self.layouts.set_layout(VOLUME_LAYOUT if case.task in VOLUME_TASKS else IMAGE_LAYOUT)
        for view in self.slicer.view_manager.get_slice_views():
            view.set_background_volume_id(self.volume.GetID())
            if self.results.overlay is not None:
                view.set_foreground_volume_id(self.results.overlay.GetID())
            view.fit_view_to_content()
        self._fit_threed_views()
        self.session = ReviewSession(self.results, runner=self.runner, timer=self.timer, delay_ms=300,
                                     device=self.device, on_change=self._on_session_change)
        self.session.start_corrections()
        import slicer

        for role, node in self.results.nodes.items():  # a drag ends: the refit time runs from here
            if role == "curve" or role.startswith("curve:"):
                node.AddObserver(slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent,
                                 lambda *_: self.note_point_moved())
        s = self.state
        s.current_case, s.case_task = case.case, case.task
        u = case.image_uncertainty
        s.case_info = (f"rank {case.rank} of {len(self.cases)} · {case.task} · image uncertainty "
                       f"{'n/a' if u is None else f'{u:.4g}'}" + (f" · {', '.join(case.flags)}" if case.flags else ""))
        s.has_ood, s.show_ood = self.results.nodes.get("ood") is not None, False
        s.has_overlay = self.results.overlay is not None
        self._overlay_state()
        s.alternatives = self.session.alternatives()
        s.alternative = 0
        s.can_paint = case.task in PAINT_TASKS
        if s.can_paint:
            from UQSegmentationLib.correction.labels import label_segments

            segs = [sid for sid in label_segments(seg)]
            s.paint_segments = segs
            s.paint_segment = segs[0] if segs else ""

    def _overlay_state(self) -> None:
        """The legend and the opacity / threshold sliders of the overlay on screen (variance or OOD map)."""
        from UQSegmentationLib.display.variance import get_overlay_opacity, get_overlay_threshold

        s = self.state
        s.legend = legend_of(self.results, bool(s.show_ood))
        node = shown_overlay(self.results, bool(s.show_ood))
        if node is not None:
            lo, hi = node.GetImageData().GetScalarRange()
            s.threshold_min, s.threshold_max = float(lo), float(hi)
            threshold = get_overlay_threshold(node)
            s.threshold = float(lo if threshold is None else threshold)
            s.opacity = float(get_overlay_opacity(self.scene, node))

    def _on_show_ood(self, show_ood, **_):
        """ct-organs: put the out-of-distribution map (or back the variance) in the slice views, with its legend
        and its threshold on the sliders (`UQSegmentationLib.display.ood.show_ct_overlay`)."""
        if self.results is None or self.results.nodes.get("ood") is None:
            return
        from UQSegmentationLib.display.ood import show_ct_overlay

        def run():
            show_ct_overlay(self.scene, self.results.nodes, "ood" if show_ood else "variance", float(self.state.opacity))
            self._overlay_state()

        self.action("out-of-distribution map", run)

    def _fit_threed_views(self) -> None:
        """Look at the segmentation from below (as the axial slice is drawn), fitted to the view's current size; done
        again whenever the browser resizes the view (`_on_polled`)."""
        from trame_slicer.views.threed_view import ViewDirection

        self._threed_sizes = {}
        if self.case is None or self.case.task not in VOLUME_TASKS:
            return
        for view in self.slicer.view_manager.get_threed_views():
            view.render()  # the displayable managers build the surfaces first, then the camera fits them
            view.fit_view_to_content()
            view.rotate_to_view_direction(ViewDirection.INFERIOR)
            view.reset_camera()
            view.schedule_render()
            self._threed_sizes[view.get_singleton_tag()] = tuple(view.render_window().GetSize())

    # ------------------------------------------------------------------------------------------------- refresh
    def _on_session_change(self, session, what) -> None:
        if what == "correction":
            self.state.refits = int(self.state.refits or 0) + 1
            if self._refit_started is not None:
                self.state.refit_ms = round((time.perf_counter() - self._refit_started) * 1000.0, 1)
                self._refit_started = None
        with self.state:
            if session.error:
                self.state.error = session.error
                session.error = ""
            self.refresh()

    def _on_polled(self, delivered) -> None:
        view = self._slice_view()
        if view is not None and self.results is not None:  # the view moved or was resized: where the points are
            stamp = (view.get_view_node().GetMTime(), *[n.GetMTime() for r, n in self.results.nodes.items()
                                                        if r == "curve" or r.startswith("curve:")])
            if stamp != getattr(self, "_view_stamp", None):
                self._view_stamp = stamp
                with self.state:
                    self.state.curve_points = self._curve_points()
                    self.state.view_centre = self._view_centre()
        sizes = getattr(self, "_threed_sizes", {})
        if sizes and any(tuple(v.render_window().GetSize()) != sizes.get(v.get_singleton_tag())
                         for v in self.slicer.view_manager.get_threed_views()):
            self._fit_threed_views()
        if isinstance(delivered, BaseException):
            with self.state:
                self._fail("background work", delivered)
            return
        busy = bool(self.runner.busy) or (self.session is not None and self.session.corrector is not None
                                          and getattr(self.session.corrector, "pending", False))
        if not self._loading and (delivered or busy != self.state.busy):
            with self.state:
                self.state.busy = busy
                self.state.busy_message = ("Updating the contour with the model…" if busy and
                                           self.session is not None and self.session.corrector is not None
                                           else ("Working…" if busy else ""))
                self.refresh()

    def refresh(self) -> None:
        """Copy the session onto the page state (regions, statuses, undo, points, view centre)."""
        s, session = self.state, self.session
        if session is None:
            s.regions, s.current_region, s.region_summary, s.can_undo = [], None, "", False
            s.curve_points = []
            return
        focus = {r.id: session.region_set.focus_ras(r) for r in session.regions}
        s.regions = [{"id": r["id"], "where": r["where"], "uncertainty": round(float(r["uncertainty"]), 4),
                      "peak": round(float(r["peak"]), 4), "status": r["status"],
                      "focus": [round(float(v), 3) for v in focus[r["id"]]]} for r in session.rows()]
        s.current_region = session.current
        c = session.counts()
        s.region_summary = (f"{len(session.regions)} uncertain regions (threshold "
                            f"{session.region_set.threshold.value:.3g}, {session.region_set.threshold.source}): "
                            f"{c['accepted']} accepted, {c['corrected']} corrected, {c['unreviewed']} to review")
        s.can_undo = bool(session.undo_stack.can_undo)
        s.corrections_ready = bool(session.corrections_ready)
        s.can_correct = self.case is not None and self.case.task in CURVE_TASKS and session.corrector is not None
        s.curve_points = self._curve_points()
        s.view_centre = self._view_centre()
        if self.results is not None and self.results.task == "cxr-landmarks":  # the refit changes the node std
            s.legend = legend_of(self.results)

    def _slice_view(self):
        views = self.slicer.view_manager.get_slice_views()
        return views[0] if views else None

    def _view_centre(self) -> list:
        from UQSegmentationLib.review.navigation import view_centre_ras

        view = self._slice_view()
        return [round(float(v), 3) for v in view_centre_ras(view.get_view_node())] if view else []

    def _curve_points(self) -> list:
        """Control points of the result's curves in the slice view's pixels: [role, index, x, y] with (0, 0) the
        view's top-left corner (as the page's image), only those inside the view."""
        view = self._slice_view()
        if view is None or self.results is None:
            return []
        node = view.get_view_node()
        w, h = node.GetDimensions()[:2]
        self.state.view_size = [int(w), int(h)]
        self.state.view_mm_per_px = float(node.GetFieldOfView()[0]) / max(1, int(w))
        import vtk

        inv = vtk.vtkMatrix4x4()
        vtk.vtkMatrix4x4.Invert(node.GetXYToRAS(), inv)
        out = []
        for role, curve in self.results.nodes.items():
            if not (role == "curve" or role.startswith("curve:")):
                continue
            for k in range(curve.GetNumberOfControlPoints()):
                x, y = inv.MultiplyPoint((*curve.GetNthControlPointPositionWorld(k), 1.0))[:2]
                if 0 <= x < w and 0 <= y < h:
                    out.append([role, k, round(x, 2), round(h - 1 - y, 2)])
        return out

    # ------------------------------------------------------------------------------------------------- actions
    def region_action(self, name: str, **kwargs):
        def run():
            if self.session is None:
                raise ValueError("open a case first")
            if name == "go_to":
                return self.session.go_to(int(kwargs["region_id"]))
            if name == "accept_alternative":
                return self.session.accept_alternative(which=max(0, int(self.state.alternative or 0)))
            result = getattr(self.session, name)()
            if name in ("next", "previous") and result is None:
                self.state.message = "No more regions in this direction."
            return result

        return self.action(name.replace("_", " "), run)

    def save(self):
        def run():
            if self.session is None:
                raise ValueError("open a case first")
            with editing.checked_save(self.case.case_dir, self.case.case, self.opened_saved):
                record = self.session.save(root=corrections_root(self.case.case_dir.parent))
            self.opened_saved = record.get("saved")
            files = sorted((record.get("files") or {}).values(), key=lambda f: f.get("path", ""))
            self.state.message = (f"Saved {self.case.case}: " + ", ".join(f["path"] for f in files)
                                  + f" in {corrections_root(self.case.case_dir.parent)}")
            self.refresh_cases()
            return record

        return self.action("save", run)

    def _on_opacity(self, opacity, **_):
        node = shown_overlay(self.results, bool(self.state.show_ood))
        if node is None:
            return
        from UQSegmentationLib.display.variance import set_overlay_opacity

        self.action("opacity", set_overlay_opacity, self.scene, node, float(opacity))

    def _on_threshold(self, threshold, **_):
        node = shown_overlay(self.results, bool(self.state.show_ood))
        if node is None:
            return
        from UQSegmentationLib.display.variance import set_overlay_threshold

        def run():
            set_overlay_threshold(self.scene, node, float(threshold))
            self.state.legend = legend_of(self.results, bool(self.state.show_ood))

        self.action("threshold", run)

    # ------------------------------------------------------------------------------------------------- drag timing
    def note_point_moved(self) -> None:
        """A control point was released (curve tasks): the refit time runs from here to the updated curve."""
        self._refit_started = time.perf_counter()

    # ------------------------------------------------------------------------------------------------- painting
    def set_paint_mode(self, on: bool) -> None:
        """Breast / CT: while on, a left click in the slice view paints a disc (radius `paint_radius_mm`) of the chosen
        segment there, inside the current region's editable area (`ReviewSession.paint`)."""
        view = self._slice_view()
        if view is None:
            return
        interactor = view.interactor()
        if self._paint_observer is not None:
            interactor.RemoveObserver(self._paint_observer)
            self._paint_observer = None
        self.state.paint_mode = bool(on)
        if on:
            self._paint_observer = interactor.AddObserver("LeftButtonPressEvent", self._on_paint_click, 10.0)

    def _on_paint_click(self, interactor, event):
        view = self._slice_view()
        x, y = interactor.GetEventPosition()
        ras = view.get_view_node().GetXYToRAS().MultiplyPoint((float(x), float(y), 0.0, 1.0))[:3]
        self.action("paint", self.paint_at, ras)
        if self._paint_observer is not None:  # Slicer's interactor style must not also pan / window-level here
            interactor.GetCommand(self._paint_observer).SetAbortFlag(1)

    def paint_at(self, ras) -> int:
        """Paint (or erase) a disc of `paint_radius_mm` around the RAS point on the current slice
        (`painting.disc_stroke`), inside the current region's editable area."""
        from UQSegmentationLib.segment_arrays import grid_matrix

        from .painting import disc_stroke

        if self.session is None or self.session.area is None:
            raise ValueError("select an uncertain region first (Next), then paint inside it")
        stroke = disc_stroke(grid_matrix(self.volume), self.session.region_set.shape, ras,
                             float(self.state.paint_radius_mm))
        changed = self.session.paint(stroke, self.state.paint_segment, erase=bool(self.state.paint_erase))
        self.state.message = f"painted: {changed} voxels changed inside the editable area"
        return changed

    # ------------------------------------------------------------------------------------------------- end
    def close(self) -> None:
        try:
            self._close_case()
        finally:
            self.runner.shutdown()
