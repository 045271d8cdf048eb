"""ct-organs: the out-of-distribution map (``ood.nrrd``) as its own overlay, with its own legend.

``ood.nrrd`` (docs/cli-contract.md) is the k-nearest-neighbour distance of each region's intensity-context descriptor
to the training patients' (uqseg.ct.ood; Sun et al. 2022), dimensionless, on the input grid. It is shown
like the variance overlay (display/variance.py: foreground layer of every slice view, fixed colour range 0 … max,
opacity) but
- in viridis, so it is never mistaken for the variance (inferno),
- with the lower threshold at the model's OOD threshold (summary.json ``ood_map.threshold``, calibrated on the
  training patients only): tissue like the training data stays untinted, only what the model has not seen is
  coloured,
- with the legend "out of distribution", units "k-NN distance".

The variance and the OOD map share the foreground layer: `show_ct_overlay(scene, nodes, "ood" | "variance")` puts
one there and shows only its legend (the module's "Show the out-of-distribution map" check box calls it through
the logic). `load_ct_ood(...)` is called by the ct-organs loader: it loads and styles the map (role "ood", legend
role "ood_legend") and leaves the variance shown.
"""

from __future__ import annotations

from pathlib import Path

from .legend import add_legend
from .variance import DEFAULT_OPACITY, set_overlay_colormap, set_overlay_threshold
from .views import set_slice_layers

OOD_COLORMAP = "viridis"
OOD_TITLE = "out of distribution"
OOD_UNITS = "k-NN distance"
OVERLAYS = ("variance", "ood")


def ood_threshold(summary: dict) -> float | None:
    spec = summary.get("ood_map") or {}
    value = spec.get("threshold") if isinstance(spec, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


def style_ood(scene, ood_node, threshold: float | None):
    """Colour `ood_node` in viridis, transparent below `threshold`; returns its legend display node (hidden)."""
    set_overlay_colormap(scene, ood_node, OOD_COLORMAP)
    set_overlay_threshold(scene, ood_node, threshold)
    ood_node.GetDisplayNode().SetInterpolate(False)
    legend = add_legend(scene, ood_node, OOD_TITLE, OOD_UNITS)
    legend.SetVisibility(False)
    return legend


def load_ct_ood(scene, case_dir, summary: dict, collector, case: str):
    """Load ``ood.nrrd`` of a ct-organs case (when summary.json lists it) into `collector` as role "ood"."""
    from .. import nodes_io

    name = (summary.get("files") or {}).get("ood")
    if not name or not (Path(case_dir) / name).is_file():
        return None
    node = collector.add("ood", nodes_io.load_volume(scene, Path(case_dir) / name, f"{case} {OOD_TITLE}"))
    collector.add("ood_legend", style_ood(scene, node, ood_threshold(summary)))
    return node


def show_ct_overlay(scene, nodes: dict, which: str, opacity: float | None = None) -> bool:
    """Put the variance ("variance": role "overlay") or the OOD map ("ood") in the foreground of every slice view,
    with its legend shown and the other's hidden. False when the case has no such map."""
    if which not in OVERLAYS:
        raise ValueError(f"which must be one of {OVERLAYS}, got {which!r}")
    roles = {"variance": ("overlay", "legend"), "ood": ("ood", "ood_legend")}
    node = nodes.get(roles[which][0])
    if node is None:
        return False
    set_slice_layers(scene, foreground=node, foreground_opacity=DEFAULT_OPACITY if opacity is None else opacity)
    for key, (_, legend_role) in roles.items():
        legend = nodes.get(legend_role)
        if legend is not None:
            legend.SetVisibility(key == which)
    return True
