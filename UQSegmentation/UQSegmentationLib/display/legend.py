"""Colour legends: Slicer's `vtkMRMLColorLegendDisplayNode`, shown in slice and 3-D views, with a title and units.

`add_legend(scene, displayable_node, title, units)` uses the Colors module logic's own
`vtkSlicerColorLogic.AddDefaultColorLegendDisplayNode` (as Slicer's Colors module does), so the legend follows the
displayable node's colour node and scalar range (for a volume: its window/level range; for a model or markups
curve: its display node's scalar range). The units go into the title ("node std (mm)") and the label format
("%.3g mm"), so every tick reads as a physical value.

On `slicer-core` the Colors module's Qt part (which registers the legend node class with each scene in Slicer) is
absent, so the class is registered here when the scene does not know it; in Slicer this is a no-op. The legend is
drawn by `vtkMRMLColorLegendDisplayableManager`, which `render.py` registers in its offscreen views (the Slicer
application registers it in every view).
"""

from __future__ import annotations

LEGEND_CLASS = "vtkMRMLColorLegendDisplayNode"


def _register_legend_class(scene) -> None:
    import slicer

    if not scene.IsNodeClassRegistered(LEGEND_CLASS):
        scene.RegisterNodeClass(slicer.vtkMRMLColorLegendDisplayNode())


def legend_title(title: str, units: str | None) -> str:
    return f"{title} ({units})" if units else title


def add_legend(scene, displayable_node, title: str, units: str | None = None, *, label_format: str | None = None,
               position=(0.95, 0.5), size=(0.12, 0.45), visible: bool = True):
    """Show (and return) the colour legend of `displayable_node` with `title` and `units`.

    The node must already have a display node with a colour node. Reuses the node's existing legend if any.
    position/size: fractions of the view (Slicer's defaults place it at the right edge, vertical).
    """
    import slicer

    if displayable_node is None or displayable_node.GetDisplayNode() is None:
        raise ValueError("add_legend needs a displayable node with a display node")
    _register_legend_class(scene)
    legend = slicer.vtkSlicerColorLogic.GetColorLegendDisplayNode(displayable_node)
    if legend is None:
        legend = slicer.vtkSlicerColorLogic.AddDefaultColorLegendDisplayNode(displayable_node)
    if legend is None:
        raise RuntimeError(f"could not create a colour legend for {displayable_node.GetName()!r}")
    legend.SetTitleText(legend_title(title, units))
    legend.SetLabelFormat(label_format or ("%.3g " + units if units else "%.3g"))
    legend.SetOrientation(legend.Vertical)
    legend.SetPosition(*position)
    legend.SetSize(*size)
    legend.SetVisibility(bool(visible))
    legend.SetName(f"{displayable_node.GetName()} legend")
    return legend

