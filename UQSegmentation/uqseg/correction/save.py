"""Saving corrected labels for retraining, with a provenance record, all files of a case as one atomic unit.

Layout of a corrections folder ROOT — the layout of the training data, so the recipes' adapters read it:

    mammo-pectoral   ROOT/labels/<case>.png        uint8 label, 3 = pectoral muscle (`Training/datasets/
                                                   ddsm_pectoral.py` reads ``== 3``), 0 elsewhere — or the
                                                   case's own DDSM label with its muscle replaced (`base_label`)
                     ROOT/boundary/<case>.csv      `row, mean_col, std_col, multimodal` as boundary.csv
    cxr-landmarks    ROOT/landmarks/<case>.json    as ../shared/data/cxr_jsrt/landmarks/*.json: `image`, `space`,
                                                   `split`, `source`, `right_lung` (44), `left_lung` (50),
                                                   `heart` (26) lists of [x, y] with the origin at the top-left
                                                   CORNER of the first pixel (x_json = column index + ½)
    label maps       ROOT/labels/<case>.seg.nrrd   Slicer segmentation (segments given), or <case>.nrrd
    every task       ROOT/corrections/<case>.json  the record (below)

All files of one save go through `FileSet` (`uqseg.correction.transaction`): written to hidden staged files first,
then renamed into place with the record LAST; any failure leaves the old files (or none) and the old record.

The record (`RECORD_FORMAT`):
    format, task, case, model {id, version}, input (the source image, when given), tool {uqseg version},
    created (first save of this case, kept across saves), saved (this save) — UTC ISO 8601,
    threshold (how the regions were found), regions [{id, kind, status, peak, integrated, size, centre, bbox_min,
    bbox_max, organ}], review {unreviewed, accepted, corrected: counts},
    changes (task-specific: pectoral rows / chest X-ray nodes / voxels changed against the model's prediction, and
    the user's clicks or pinned nodes), files {role: {path (relative to ROOT), sha256}}, notes.
Region status is one of STATUSES. Coordinates in the record are input pixel indices, as everywhere in uqseg.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

import uqseg
from uqseg.correction.transaction import FileSet, sha256_file
from uqseg.io.write import write_csv, write_json, write_png_atomically, write_segmentation_nrrd, write_volume_nrrd

RECORD_FORMAT = "uqseg-correction/1"
STATUSES = ("unreviewed", "accepted", "corrected")
PECTORAL_LABEL = 3  # the DDSM label value of the pectoral muscle
FREED_LABEL = 1  # with a base label: former muscle pixels that are no longer muscle become fatty tissue
MIN_SHIFT_PX = 0.5  # a boundary row / node counts as changed when it moved by more than this


# ------------------------------------------------------------------------------------------------------ record
def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _model_info(model: Any) -> dict:
    """{id, version} from a ModelCard, a card dict, or an (id, version) pair."""
    if model is None:
        return {"id": None, "version": None}
    if isinstance(model, (tuple, list)):
        return {"id": str(model[0]), "version": str(model[1])}
    getter = model.get if hasattr(model, "get") else None
    if getter is None:
        raise TypeError(f"model must be a model card or (id, version), got {type(model).__name__}")
    return {"id": getter("id"), "version": getter("version")}


def record_path(root: str | os.PathLike, case: str) -> Path:
    return Path(root) / "corrections" / f"{case}.json"


def read_record(root: str | os.PathLike, case: str) -> dict | None:
    """The case's record, or None when there is none."""
    path = record_path(root, case)
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def verify_record(root: str | os.PathLike, case: str) -> list[str]:
    """Problems with a saved case: files the record lists that are missing or whose sha256 differs ([] = all
    consistent; a missing record is one problem)."""
    rec = read_record(root, case)
    if rec is None:
        return [f"no record {record_path(root, case)}"]
    problems = []
    for role, entry in rec.get("files", {}).items():
        p = Path(root) / entry["path"]
        if not p.is_file():
            problems.append(f"{role}: {entry['path']} is missing")
        elif sha256_file(p) != entry["sha256"]:
            problems.append(f"{role}: {entry['path']} does not match the record (sha256)")
    return problems


def region_entries(regions: Sequence, status: Mapping[int, str] | None = None) -> list[dict]:
    """Record entries for ranked `Region`s with their review status (default "unreviewed")."""
    status = dict(status or {})
    known = {int(r.id) for r in regions}
    unknown = set(int(k) for k in status) - known
    if unknown:
        raise ValueError(f"status given for unknown region ids {sorted(unknown)}")
    out = []
    for r in regions:
        s = status.get(int(r.id), "unreviewed")
        if s not in STATUSES:
            raise ValueError(f"region {r.id}: status must be one of {STATUSES}, got {s!r}")
        out.append({"id": int(r.id), "kind": r.kind, "organ": r.organ, "status": s, "peak": r.peak,
                    "integrated": r.integrated, "size": r.size, "volume_mm3": r.volume_mm3,
                    "centre": list(r.centre), "bbox_min": list(r.bbox_min), "bbox_max": list(r.bbox_max)})
    return out


def _save_case(root: Path, case: str, task: str, model, files: list[tuple[str, Path, Any]], changes: dict, *,
               regions=(), status=None, threshold=None, input_path=None, notes=None) -> dict:
    """Stage `files` ([(role, destination, writer)]) and the record, commit them together; returns the record."""
    if not case or any(sep in case for sep in ("/", "\\")) or case in (".", ".."):
        raise ValueError(f"case must be a plain file name stem, got {case!r}")
    old = read_record(root, case)
    entries = region_entries(regions, status)
    record = {
        "format": RECORD_FORMAT, "task": task, "case": case, "model": _model_info(model),
        "input": None if input_path is None else os.fspath(input_path),
        "tool": {"uqseg": uqseg.__version__},
        "created": (old or {}).get("created") or None, "saved": _now(),
        "threshold": threshold.as_dict() if hasattr(threshold, "as_dict") else threshold,
        "regions": entries,
        "review": {s: sum(e["status"] == s for e in entries) for s in STATUSES},
        "changes": changes, "files": {}, "notes": notes,
    }
    record["created"] = record["created"] or record["saved"]
    with FileSet() as fs:
        for role, dest, writer in files:
            staged = fs.add(dest, writer)  # the record holds the digest of exactly the staged bytes
            record["files"][role] = {"path": dest.relative_to(root).as_posix(), "sha256": sha256_file(staged)}
        fs.add(record_path(root, case), lambda p: write_json(p, record))
        fs.commit()
    return record


# ------------------------------------------------------------------------------------------------------ pectoral
def _boundary_rows(result) -> list[tuple]:
    return [(int(r), round(float(m), 3), round(float(s), 3), int(bool(f)))
            for r, m, s, f in zip(result.rows, result.mean_col, result.std_col, result.multimodal)]


def pectoral_label_png(result, base_label: np.ndarray | None = None) -> np.ndarray:
    """uint8 (H, W) label in the input orientation: PECTORAL_LABEL where `result.muscle_mask()` is set.

    base_label: the case's own DDSM label (0 bg, 1 fatty, 2 fibroglandular, 3 pectoral) to update instead of a
    pectoral-only label: the new muscle becomes 3, former muscle pixels outside it become FREED_LABEL (fatty)."""
    muscle = result.muscle_mask().astype(bool)
    if base_label is None:
        return np.where(muscle, PECTORAL_LABEL, 0).astype(np.uint8)
    lab = np.asarray(base_label)
    if lab.shape != muscle.shape:
        raise ValueError(f"base_label has shape {lab.shape}, the image {muscle.shape}")
    out = lab.astype(np.uint8).copy()
    out[(lab == PECTORAL_LABEL) & ~muscle] = FREED_LABEL
    out[muscle] = PECTORAL_LABEL
    return out


def pectoral_changes(before, after, min_shift_px: float = MIN_SHIFT_PX) -> dict:
    """Rows whose boundary moved (> min_shift_px input px) or were added / removed, and muscle pixels changed."""
    b = dict(zip(before.rows.tolist(), before.mean_col.tolist()))
    a = dict(zip(after.rows.tolist(), after.mean_col.tolist()))
    moved = sorted(r for r in set(a) & set(b) if abs(a[r] - b[r]) > min_shift_px)
    shifts = [abs(a[r] - b[r]) for r in moved]
    return {"rows_changed": len(moved), "rows_changed_list": moved,
            "rows_added": sorted(set(a) - set(b)), "rows_removed": sorted(set(b) - set(a)),
            "max_shift_px": max(shifts) if shifts else 0.0,
            "pixels_changed": int((before.muscle_mask() != after.muscle_mask()).sum()),
            "clicks": [{"row": c[0], "col": c[1]} for c in getattr(after, "clicks", ())]}


def save_pectoral_correction(root: str | os.PathLike, case: str, result, *, model, before=None,
                             base_label: np.ndarray | None = None, regions=(), status=None, threshold=None,
                             input_path=None, notes=None) -> dict:
    """Save a (corrected) pectoral boundary: labels/<case>.png, boundary/<case>.csv, corrections/<case>.json.

    result: a `PectoralResult` (e.g. from `correct_pectoral`), input pixel coordinates. before: the model's
    prediction to diff against (default: `result.base` when the result is a corrected one, else `result`).
    model: the model card or (id, version). Returns the record."""
    root = Path(root)
    before = before if before is not None else (getattr(result, "base", None) or result)
    label = pectoral_label_png(result, base_label)

    def write_label(path):
        from PIL import Image as PILImage

        write_png_atomically(path, lambda tmp: PILImage.fromarray(label, mode="L").save(tmp, format="PNG"))

    files = [("boundary", root / "boundary" / f"{case}.csv",
              lambda p: write_csv(p, ["row", "mean_col", "std_col", "multimodal"], _boundary_rows(result))),
             ("label", root / "labels" / f"{case}.png", write_label)]
    changes = pectoral_changes(before, result)
    changes["label_values"] = {"0": "background", str(FREED_LABEL): "fatty tissue", "2": "fibroglandular tissue",
                               str(PECTORAL_LABEL): "pectoral muscle"} if base_label is not None else \
        {"0": "not pectoral muscle (other tissue not labelled)", str(PECTORAL_LABEL): "pectoral muscle"}
    return _save_case(root, case, "mammo-pectoral", model, files, changes, regions=regions, status=status,
                      threshold=threshold, input_path=input_path, notes=notes)


# --------------------------------------------------------------------------------------------------- chest X-ray
def landmark_document(nodes_xy: np.ndarray, shape: tuple[int, int], *, image: str, split: str = "train",
                      source: str = "uqseg correction") -> dict:
    """The shared landmark JSON (../shared/data/cxr_jsrt/landmarks) for (120, 2) pixel-centre (x, y) nodes."""
    from uqseg.cxr.landmarks_io import to_json_coordinates

    nodes = np.asarray(nodes_xy, dtype=np.float64)
    if nodes.shape != (120, 2) or not np.all(np.isfinite(nodes)):
        raise ValueError(f"nodes must be 120 finite (x, y) positions, got shape {nodes.shape}")
    h, w = shape
    return {"image": image, "space": f"pixels of the {w}x{h} image, (x, y)", "split": split, "source": source,
            **to_json_coordinates(nodes)}


def landmark_changes(before_xy, after_xy, pinned: Sequence[int] = (), min_shift_px: float = MIN_SHIFT_PX) -> dict:
    from uqseg.cxr.graph import node_organs

    b, a = np.asarray(before_xy, float), np.asarray(after_xy, float)
    shift = np.linalg.norm(a - b, axis=1)
    moved = np.flatnonzero(shift > min_shift_px)
    organs = node_organs()
    return {"nodes_changed": int(moved.size), "nodes_changed_list": moved.tolist(),
            "nodes_changed_per_organ": {o: int(sum(organs[i] == o for i in moved)) for o in dict.fromkeys(organs)},
            "max_shift_px": float(shift.max()) if shift.size else 0.0,
            "pinned_nodes": [int(i) for i in pinned]}


def save_landmark_correction(root: str | os.PathLike, case: str, nodes_xy: np.ndarray, shape: tuple[int, int], *,
                             model, before_xy: np.ndarray | None = None, pinned: Sequence[int] = (),
                             split: str = "train", image: str | None = None, regions=(), status=None,
                             threshold=None, input_path=None, notes=None) -> dict:
    """Save corrected chest X-ray landmarks: landmarks/<case>.json (shared format) + corrections/<case>.json.

    nodes_xy: (120, 2) pixel-centre (x, y) of the input image (right lung, left lung, heart, as landmarks.csv);
    shape: the input's (rows, cols). before_xy: the model's mean nodes (default: no change recorded against a
    prediction). pinned: node indices the user placed. Returns the record."""
    root = Path(root)
    info = _model_info(model)
    doc = landmark_document(nodes_xy, shape, image=image or f"images/{case}.png", split=split,
                            source=f"uqseg correction of {info['id']} {info['version']}")
    changes = landmark_changes(before_xy if before_xy is not None else nodes_xy, nodes_xy, pinned)
    files = [("landmarks", root / "landmarks" / f"{case}.json", lambda p: write_json(p, doc))]
    return _save_case(root, case, "cxr-landmarks", model, files, changes, regions=regions, status=status,
                      threshold=threshold, input_path=input_path, notes=notes)


# ---------------------------------------------------------------------------------------------------- label maps
def label_changes(before: np.ndarray | None, after: np.ndarray, top: int = 20) -> dict:
    """Voxels changed and the most frequent (old label → new label) transitions."""
    if before is None:
        return {"voxels_changed": None}
    b, a = np.asarray(before), np.asarray(after)
    if b.shape != a.shape:
        raise ValueError(f"before {b.shape} and after {a.shape} differ in shape")
    diff = b != a
    pairs, counts = np.unique(np.stack([b[diff], a[diff]]), axis=1, return_counts=True) if diff.any() else \
        (np.zeros((2, 0), int), np.zeros(0, int))
    order = np.argsort(-counts)[:top]
    return {"voxels_changed": int(diff.sum()),
            "transitions": [{"from": int(pairs[0, k]), "to": int(pairs[1, k]), "voxels": int(counts[k])}
                            for k in order]}


def save_label_correction(root: str | os.PathLike, case: str, label: np.ndarray, *, task: str, model,
                          spacing: Sequence[float], origin=(0.0, 0.0, 0.0), direction=None,
                          segments: Sequence[Mapping] | None = None, before: np.ndarray | None = None,
                          regions=(), status=None, threshold=None, input_path=None, notes=None) -> dict:
    """Save a corrected label map: labels/<case>.seg.nrrd (with `segments`: name, label, color — see
    `write_segmentation_nrrd`) or labels/<case>.nrrd (plain label volume), + corrections/<case>.json.

    label: integer ``[row, col]`` or ``[slice, row, col]`` on the input grid; spacing (x, y[, z]) mm, origin and
    direction LPS as `uqseg.io.write`. before: the model's label map, to count the voxels changed."""
    root = Path(root)
    lab = np.asarray(label)
    if segments is not None:
        dest = root / "labels" / f"{case}.seg.nrrd"
        writer = lambda p: write_segmentation_nrrd(p, lab, segments, spacing, origin, direction)  # noqa: E731
    else:
        dest = root / "labels" / f"{case}.nrrd"
        writer = lambda p: write_volume_nrrd(p, lab, spacing, origin, direction)  # noqa: E731
    return _save_case(root, case, task, model, [("label", dest, writer)], label_changes(before, lab),
                      regions=regions, status=status, threshold=threshold, input_path=input_path, notes=notes)
