"""Saving what the review shows as corrected labels (uqseg.correction.save), from the nodes.

Where: `corrections_root(results)` = ``<the folder holding the case folder>/corrections`` — beside the results of
`uqseg predict` (DIR/<case>/ → DIR/corrections/), a root in the layout the training recipes read (labels/,
boundary/, landmarks/, corrections/<case>.json; see `uqseg.correction.save`). Every save is atomic (all files of
a case or none) and carries the provenance record (model id and version, regions with their review status,
threshold, what changed).

Nodes → numpy, per task (INPUT pixel coordinates, the frame of the files):
- mammo-pectoral: the corrector's current `PectoralResult` (what the curve, band and muscle show — checked: the
  muscle segment read back from the node must equal `result.muscle_mask()` and the band segment the result's ±σ
  band up to boundary.csv's rounding of σ (`CSV_ROUNDING_PX`), else nothing is written) → labels/<case>.png (3 = muscle), boundary/<case>.csv;
- cxr-landmarks: the 120 control points of the three curves, RAS → the input's IJK (x = i, y = j) →
  landmarks/<case>.json (the shared JSON: corner-origin coordinates, x_json = i + ½);
- mammo-breast / ct-organs: the label segments read on the input grid (`correction.labels.read_labels`) →
  labels/<case>.seg.nrrd with the segments' names, values and colours, geometry from the input volume's IJK→RAS
  converted to the engine's LPS (spacing = IJK axis lengths, direction columns, origin; first two rows negated).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..segment_arrays import grid_matrix, read_segment

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])
CSV_ROUNDING_PX = 1e-3  # boundary.csv holds mean_col and std_col to 3 decimals: ±0.0005 px each


def corrections_root(results) -> Path:
    return Path(results.case_dir).parent / "corrections"


def geometry_lps(volume_node) -> dict:
    """spacing (x, y, z), origin and direction in LPS of the volume's grid, for `uqseg.io.write` (a 2-D image is
    one slice, as `uqseg.io.geometry.volume_geometry` writes it)."""
    m = grid_matrix(volume_node)
    spacing = np.linalg.norm(m[:3, :3], axis=0)
    return {"spacing": tuple(float(s) for s in spacing),
            "origin": tuple(float(v) for v in LPS_FROM_RAS @ m[:3, 3]),
            "direction": LPS_FROM_RAS @ (m[:3, :3] / spacing)}


def _model(results, card):
    if card is not None:
        return card
    info = results.summary.get("model") or {}
    return (info.get("id"), info.get("version"))


def save_pectoral(results, result, root=None, *, card=None, regions=(), status=None, threshold=None,
                  notes=None) -> dict:
    """Save the pectoral boundary shown (module docstring); returns the record."""
    from uqseg.correction.save import save_pectoral_correction

    from ..display.band import BAND_SEGMENT, MUSCLE_SEGMENT, band_mask

    seg, volume = results.nodes["segmentation"], results.input_volume
    shown_muscle = read_segment(seg, MUSCLE_SEGMENT, volume)
    if not np.array_equal(shown_muscle, result.muscle_mask().astype(bool)):
        raise RuntimeError("the muscle shown differs from the boundary being saved (a correction is still running?)")
    shown_band = read_segment(seg, BAND_SEGMENT, volume)
    # Before any correction the band shown comes from boundary.csv (3 decimals) and `result` from the model run again
    # at full precision: a pixel whose |col − mean| is within the rounding of σ may fall either way.
    inner = band_mask(result.rows, result.mean_col, result.std_col - CSV_ROUNDING_PX, result.shape)
    outer = band_mask(result.rows, result.mean_col, result.std_col + CSV_ROUNDING_PX, result.shape)
    if (inner & ~shown_band).any() or (shown_band & ~outer).any():
        raise RuntimeError("the ±σ band shown differs from the boundary being saved")
    return save_pectoral_correction(root or corrections_root(results), results.case, result,
                                    model=_model(results, card), regions=regions, status=status,
                                    threshold=threshold, input_path=results.summary.get("input"), notes=notes)


def curve_nodes_xy(results) -> np.ndarray:
    """(120, 2) input pixel-centre (x, y) of the organ curves' control points."""
    from .regions import cxr_nodes_from_curves

    xy, _, _ = cxr_nodes_from_curves(results)
    return xy


def save_landmarks(results, root=None, *, card=None, before_xy=None, pinned=(), regions=(), status=None,
                   threshold=None, notes=None) -> dict:
    """Save the chest X-ray contours shown (module docstring); returns the record."""
    from uqseg.correction.save import save_landmark_correction

    from ..segment_arrays import grid_shape

    _, rows, cols = grid_shape(results.input_volume)
    source = results.summary.get("input") or ""
    return save_landmark_correction(root or corrections_root(results), results.case, curve_nodes_xy(results),
                                    (rows, cols), model=_model(results, card), before_xy=before_xy,
                                    pinned=sorted(pinned), image=f"images/{Path(source).name or results.case}",
                                    regions=regions, status=status, threshold=threshold, input_path=source or None,
                                    notes=notes)


def save_labels(results, root=None, *, card=None, before=None, regions=(), status=None, threshold=None,
                notes=None) -> dict:
    """Save the label segments shown as labels/<case>.seg.nrrd (module docstring); returns the record."""
    from uqseg.correction.save import save_label_correction

    from ..correction.labels import label_segments, read_labels

    seg, volume = results.nodes["segmentation"], results.input_volume
    labels = read_labels(seg, volume)
    segmentation = seg.GetSegmentation()
    segments = [{"name": segmentation.GetSegment(sid).GetName(), "id": sid, "label": value,
                 "color": tuple(float(c) for c in segmentation.GetSegment(sid).GetColor())}
                for sid, value in label_segments(seg).items()]
    return save_label_correction(root or corrections_root(results), results.case, labels, task=results.task,
                                 model=_model(results, card), segments=segments, before=before,
                                 regions=regions, status=status, threshold=threshold,
                                 input_path=results.summary.get("input"), notes=notes,
                                 **geometry_lps(volume))
