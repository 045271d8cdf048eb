"""Which volumes the slice views show: the slice composite nodes (background / foreground layers, opacity).

Slicer keeps one `vtkMRMLSliceCompositeNode` per slice view (Red, Yellow, Green, ...). Setting the layers on all
of them is what Slicer's "show in all views" does; it needs no slice logic, only the scene. Slice views must exist
first (they always do in Slicer; offscreen views of `render.py` are created before results are loaded).
"""

from __future__ import annotations


def composite_nodes(scene) -> list:
    """Every slice composite node of the scene."""
    nodes = scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
    return [nodes.GetItemAsObject(k) for k in range(nodes.GetNumberOfItems())]


_UNSET = object()


def set_slice_layers(scene, background=_UNSET, foreground=_UNSET, foreground_opacity=None) -> int:
    """Show `background` / `foreground` volume nodes (None clears the layer) in every slice view.

    Arguments left out are not changed. foreground_opacity: 0..1. Returns the number of views changed.
    """
    targets = composite_nodes(scene)
    for comp in targets:
        was = comp.StartModify()
        if background is not _UNSET:
            comp.SetBackgroundVolumeID(background.GetID() if background is not None else None)
        if foreground is not _UNSET:
            comp.SetForegroundVolumeID(foreground.GetID() if foreground is not None else None)
        if foreground_opacity is not None:
            comp.SetForegroundOpacity(min(1.0, max(0.0, float(foreground_opacity))))
        comp.EndModify(was)
    return len(targets)


def views_showing_foreground(scene, volume_node) -> list:
    """The composite nodes whose foreground layer is `volume_node`."""
    vid = volume_node.GetID()
    return [c for c in composite_nodes(scene) if c.GetForegroundVolumeID() == vid]
