"""A locked point list that marks findings in the views: multimodal pectoral runs, ct-organs' detached fragments.

Points are in Slicer's world frame (RAS, mm); each has a label (shown beside the glyph) and a description (shown in
the Markups module). Locked: the points mark where to look, they are not meant to be dragged. Glyph and text are
scaled up so the mark is found at a glance on a whole-image view."""

from __future__ import annotations


def locked_point_list(scene, name: str, points, color: tuple[float, float, float]):
    """A new vtkMRMLMarkupsFiducialNode named `name` in `scene` with one control point per (ras, label, description)
    of `points`, locked, in `color` (0..1 RGB) selected or not."""
    import slicer

    node = slicer.vtkMRMLMarkupsFiducialNode()
    node.SetName(name)
    scene.AddNode(node)
    node.CreateDefaultDisplayNodes()
    for ras, label, description in points:
        k = node.AddControlPoint([float(c) for c in ras], label)
        node.SetNthControlPointDescription(k, description)
    node.SetLocked(True)
    display = node.GetDisplayNode()
    display.SetSelectedColor(*color)
    display.SetColor(*color)
    display.SetTextScale(3.0)
    display.SetGlyphScale(2.5)
    return node


__all__ = ["locked_point_list"]
