"""ct-organs' detached fragments in MRML: one locked point list, a point on each fragment.

summary.json lists, per organ, the pieces of it that do not touch its main body (uqseg.ct.fragments): the point is
each piece's `point_lps_mm` (its voxel nearest its centroid, so it lies ON the piece even when the piece is a curved
sliver), in LPS mm. Slicer's world frame is RAS, so (x, y, z) LPS is placed at (−x, −y, z). Each point is labelled
"<organ> <ml> ml" so a reader can jump to it from the Markups list and decide whether to keep it; the node is locked
(the points mark findings, they are not meant to be dragged). No node is made when no organ has a fragment."""

from __future__ import annotations

FRAGMENTS_TITLE = "detached fragments"
FRAGMENT_COLOR = (1.0, 0.55, 0.0)  # orange: a finding, distinct from the organ colours and the viridis overlays


def fragment_points(summary: dict) -> list[tuple[tuple[float, float, float], str, str]]:
    """(RAS mm, label, description) of every fragment in summary.json, largest first within each organ."""
    points = []
    for organ, row in (summary.get("organs") or {}).items():
        for f in (row or {}).get("fragments") or []:
            x, y, z = (float(v) for v in f.get("point_lps_mm") or f["centroid_lps_mm"])
            s0, s1 = f.get("slices", [None, None])
            points.append(((-x, -y, z), f"{organ} {f['ml']:g} ml",
                           f"{organ}: detached fragment of {f['ml']:g} ml (working-grid slices {s0}-{s1})"))
    return points


def load_ct_fragments(scene, case_dir, summary: dict, collector, case: str):
    """Add the fragments' point list to `collector` as role "fragments" (None when there is none)."""
    from .points import locked_point_list

    points = fragment_points(summary)
    if not points:
        return None
    return collector.add("fragments", locked_point_list(scene, f"{case} {FRAGMENTS_TITLE}", points, FRAGMENT_COLOR))


__all__ = ["FRAGMENTS_TITLE", "FRAGMENT_COLOR", "fragment_points", "load_ct_fragments"]
