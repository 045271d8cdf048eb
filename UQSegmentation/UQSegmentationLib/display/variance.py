"""ct-organs / mammo-breast: a voxel variance or entropy volume as a colour overlay on the slice views.

The overlay volume is the FOREGROUND layer of every slice view (slice composite nodes), over the input volume as
background, with:
- the project's perceptually uniform colormap (default inferno: low = dark, high = bright yellow),
- a fixed colour range 0 … the volume's maximum (window/level not automatic, so the colours mean the same values
  while the user changes the threshold),
- the foreground opacity (`set_overlay_opacity`, default 0.6),
- a lower threshold (`set_overlay_threshold`): voxels below it are fully transparent, so the background shows
  there (Slicer's scalar volume display node threshold: values outside [lower, upper] get alpha 0 in the slice
  layer, which the slice logic's blend honours). None turns the threshold off; the default is the task's
  ``<overlay>_display_threshold`` from summary.json when it gives one (mammo-breast: the entropy at which the
  model's validation pixel error rate reaches 5 %), else 5 % of the maximum, so confident tissue is not darkened
  by the low end of the map,
- a colour legend with title and units.

Files (docs/cli-contract.md): ``mammo-breast``: ``segmentation.seg.nrrd`` (breast, pectoral), ``uncertainty.nrrd``
(entropy); ``ct-organs``: ``segmentation.seg.nrrd``, ``probability.nrrd``, ``variance.nrrd``. The segmentation is
loaded with its names and colours (and standard terminology filled in where the file has none), outline + light
fill so the overlay stays readable; ``probability.nrrd`` is loaded (role "probability") but not shown.

The overlay settings are stored on the overlay volume node (attributes ``UQSegmentation.Opacity``,
``UQSegmentation.Threshold``) as well as in the views, so a GUI can read them back.
"""

from __future__ import annotations

from pathlib import Path

from ..hierarchy import NodeCollector
from .colormaps import get_or_create_colormap
from .legend import add_legend
from .terminology import load_case_segmentation
from .views import set_slice_layers, views_showing_foreground

ATTR_OPACITY = "UQSegmentation.Opacity"
ATTR_THRESHOLD = "UQSegmentation.Threshold"
DEFAULT_OPACITY = 0.6
DEFAULT_COLORMAP = "inferno"
SEGMENT_FILL_OPACITY = 0.1
#: default lower threshold of `show_overlay`, as a fraction of the overlay's maximum
DEFAULT_THRESHOLD_FRACTION = 0.05


def _display(overlay_node):
    display = overlay_node.GetDisplayNode()
    if display is None:
        overlay_node.CreateDefaultDisplayNodes()
        display = overlay_node.GetDisplayNode()
    return display


def _value_range(overlay_node) -> tuple[float, float]:
    lo, hi = overlay_node.GetImageData().GetScalarRange()
    return float(lo), float(hi)


def set_overlay_colormap(scene, overlay_node, name: str = DEFAULT_COLORMAP) -> None:
    """Colour the overlay with the project colormap `name` over 0 … max (fixed, not auto window/level)."""
    display = _display(overlay_node)
    display.SetAndObserveColorNodeID(get_or_create_colormap(scene, name).GetID())
    lo, hi = _value_range(overlay_node)
    lo = min(0.0, lo)
    if hi <= lo:
        hi = lo + 1.0
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(lo, hi)


def set_overlay_opacity(scene, overlay_node, opacity: float) -> int:
    """Foreground opacity (0..1) in every slice view showing the overlay; returns the number of views changed."""
    opacity = min(1.0, max(0.0, float(opacity)))
    overlay_node.SetAttribute(ATTR_OPACITY, repr(opacity))
    views = views_showing_foreground(scene, overlay_node)
    for comp in views:
        comp.SetForegroundOpacity(opacity)
    return len(views)


def get_overlay_opacity(scene, overlay_node) -> float:
    views = views_showing_foreground(scene, overlay_node)
    if views:
        return float(views[0].GetForegroundOpacity())
    value = overlay_node.GetAttribute(ATTR_OPACITY)
    return float(value) if value else DEFAULT_OPACITY


def set_overlay_threshold(scene, overlay_node, lower: float | None) -> None:
    """Voxels below `lower` become transparent (the background shows); None: show every voxel."""
    display = _display(overlay_node)
    display.AutoThresholdOff()
    if lower is None:
        display.ApplyThresholdOff()
        overlay_node.SetAttribute(ATTR_THRESHOLD, "")
        return
    _, hi = _value_range(overlay_node)
    was = display.StartModify()
    display.SetUpperThreshold(max(hi, float(lower)) + abs(hi) * 1e-6 + 1e-12)
    display.SetLowerThreshold(float(lower))
    display.ApplyThresholdOn()
    display.EndModify(was)
    overlay_node.SetAttribute(ATTR_THRESHOLD, repr(float(lower)))


def get_overlay_threshold(overlay_node) -> float | None:
    display = overlay_node.GetDisplayNode()
    if display is None or not display.GetApplyThreshold():
        return None
    return float(display.GetLowerThreshold())


def default_threshold(overlay_node) -> float:
    """The default lower threshold: `DEFAULT_THRESHOLD_FRACTION` of the overlay's maximum."""
    lo, hi = _value_range(overlay_node)
    return max(lo, 0.0) + DEFAULT_THRESHOLD_FRACTION * (hi - max(lo, 0.0))


def show_overlay(scene, overlay_node, background_node=None, colormap: str = DEFAULT_COLORMAP,
                 opacity: float = DEFAULT_OPACITY, lower_threshold="auto", title: str = "variance",
                 units: str | None = None, legend: bool = True):
    """Show `overlay_node` as the coloured foreground of every slice view (over `background_node` when given).

    lower_threshold: a value, None (no threshold) or "auto" (`default_threshold`: near-zero uncertainty leaves the
    image untinted). Returns the colour legend display node (None when legend=False).
    """
    set_overlay_colormap(scene, overlay_node, colormap)
    if isinstance(lower_threshold, str):
        if lower_threshold != "auto":
            raise ValueError(f"lower_threshold must be a number, None or 'auto', got {lower_threshold!r}")
        lower_threshold = default_threshold(overlay_node)
    set_overlay_threshold(scene, overlay_node, lower_threshold)
    display = _display(overlay_node)
    display.SetInterpolate(False)
    if background_node is not None:
        set_slice_layers(scene, background=background_node, foreground=overlay_node, foreground_opacity=opacity)
    else:
        set_slice_layers(scene, foreground=overlay_node, foreground_opacity=opacity)
    overlay_node.SetAttribute(ATTR_OPACITY, repr(float(opacity)))
    if not legend:
        return None
    return add_legend(scene, overlay_node, title, units)


def _units(summary: dict, key: str, default: str | None) -> str | None:
    units = summary.get(f"{key}_units")
    return units if isinstance(units, str) else default


def _load_overlay_task(scene, case_dir, summary, input_volume_node, folder_item, overlay_key, overlay_default,
                       title, default_units, extra_volumes=(), more=None) -> dict:
    from .. import nodes_io
    case_dir = Path(case_dir)
    case = summary.get("case") or case_dir.name
    files = summary.get("files", {}) or {}
    out = NodeCollector(scene, folder_item)
    try:
        load_case_segmentation(out, case_dir, files, f"{case} segmentation", input_volume_node, SEGMENT_FILL_OPACITY,
                               1.0)
        overlay_path = case_dir / files.get(overlay_key, overlay_default)
        overlay = out.add("overlay", nodes_io.load_volume(scene, overlay_path, f"{case} {title}"))
        for role, default in extra_volumes:
            path = case_dir / files.get(role, default)
            if path.is_file():
                out.add(role, nodes_io.load_volume(scene, path, f"{case} {role}"))
        threshold = summary.get(f"{overlay_key}_display_threshold")
        legend = show_overlay(scene, overlay, input_volume_node, title=title,
                              units=_units(summary, overlay_key, default_units),
                              lower_threshold=float(threshold) if isinstance(threshold, (int, float)) else "auto")
        out.add("legend", legend)
        if more is not None:
            more(scene, case_dir, summary, out, case)
    except BaseException:
        if not folder_item:
            out.discard()
        raise
    return out.nodes


def load_breast_results(scene, case_dir, summary: dict, input_volume_node=None, folder_item=None) -> dict:
    """mammo-breast: segments breast/pectoral + the MC-dropout entropy overlay (uncertainty.nrrd)."""
    return _load_overlay_task(scene, case_dir, summary, input_volume_node, folder_item, "uncertainty",
                              "uncertainty.nrrd", "entropy", "nats")


def load_ct_results(scene, case_dir, summary: dict, input_volume_node=None, folder_item=None) -> dict:
    """ct-organs: organ segments + the predictive-variance overlay (variance.nrrd); probability.nrrd loaded; the
    out-of-distribution map (ood.nrrd, display/ood.py) loaded and styled, not shown until asked for; the detached
    fragments of summary.json as a locked point list (display/fragments.py, role "fragments")."""
    from .fragments import load_ct_fragments
    from .ood import load_ct_ood

    def more(scene, case_dir, summary, collector, case):
        load_ct_ood(scene, case_dir, summary, collector, case)
        load_ct_fragments(scene, case_dir, summary, collector, case)

    return _load_overlay_task(scene, case_dir, summary, input_volume_node, folder_item, "variance",
                              "variance.nrrd", "variance", None, extra_volumes=(("probability", "probability.nrrd"),),
                              more=more)
