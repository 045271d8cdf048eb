"""Writers for the files `uqseg predict` produces: NRRD volumes, Slicer segmentations, Slicer curves, CSV, JSON
(and the DICOM files of `uqseg.dicom_out`).

Frames and units (the same conventions as `uqseg.io.image.Image`):
- Arrays are indexed ``[row, col]`` (2-D) or ``[slice, row, col]`` (3-D); a 2-D array is written as a one-slice volume.
- `spacing` is in millimetres in (x, y[, z]) = (column, row[, slice]) order; a one-slice image may omit z (1 mm).
- `origin` (mm, the centre of voxel [0, 0, 0]) and `direction` (3×3; column k is the unit vector of index axis k:
  column, row, slice) are in the patient **LPS** frame, which is what NRRD (``space: left-posterior-superior``),
  Slicer's ``.seg.nrrd`` and Slicer Markups JSON (``coordinateSystem: LPS``) store. Slicer shows RAS = LPS with
  x and y negated; it does that conversion itself when it reads these files.
- Curve points are physical LPS positions in mm (not pixel indices).

Every writer is atomic: it writes a temporary file in the destination folder and renames it over the destination
only once the file is complete (`os.replace`), so an interrupted write never leaves a partial file behind (a
crash may leave nothing, or the previous file, but never half of a new one). Missing parent folders are created.

This module imports neither Slicer nor VTK: the files are written with `nrrd` (pynrrd) and `json`, in exactly the
structure Slicer itself writes, and are checked by loading them back through Slicer's own readers in
``Testing/test_io_writers.py``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import secrets
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

__all__ = [
    "MARKUPS_SCHEMA",
    "write_volume_nrrd",
    "write_segmentation_nrrd",
    "write_curve_markups_json",
    "write_csv",
    "write_json",
    "write_dicom",
]

#: The Markups JSON schema these files declare. Slicer accepts any ``markups-schema-v1.<minor>.<patch>.json#``;
#: 1.0.3 is understood by every Slicer 5 release (newer Slicer writes 1.0.4, which only adds optional fields).
MARKUPS_SCHEMA = (
    "https://raw.githubusercontent.com/slicer/slicer/main/Modules/Loadable/Markups/Resources/Schema/"
    "markups-schema-v1.0.3.json#"
)

#: zlib level of the gzip encoding of NRRD files (6 = zlib's default: close to 9 in size, several times faster).
GZIP_LEVEL = 6


# --------------------------------------------------------------------------------------------------- atomic files
@contextlib.contextmanager
def _atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary path in `path`'s folder; on success rename it to `path`, on error delete it.

    The temporary file already exists (empty, created with the process umask, like a plain ``open(path, "w")``)
    and is named ``.<name>.<random>.tmp`` so that it is hidden and never mistaken for a result.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            break
        except FileExistsError:  # pragma: no cover - 32 random bits colliding
            continue
    try:
        yield tmp
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# ---------------------------------------------------------------------------------------------------- geometry
def _as_volume(array: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(array)
    if a.ndim == 2:
        a = a[np.newaxis]
    if a.ndim != 3:
        raise ValueError(f"{what} must be 2-D [row, col] or 3-D [slice, row, col], got shape {a.shape}")
    if 0 in a.shape:
        raise ValueError(f"{what} is empty (shape {a.shape})")
    return a


def _geometry(spacing: Sequence[float], origin: Sequence[float], direction: Any) -> tuple[np.ndarray, np.ndarray]:
    """NRRD ``space directions`` (row k = index axis k's step in mm, LPS) and ``space origin`` (LPS, mm)."""
    sp = [float(s) for s in spacing]
    if len(sp) == 2:
        sp.append(1.0)
    if len(sp) != 3 or not all(math.isfinite(s) and s > 0 for s in sp):
        raise ValueError(f"spacing must be 2 or 3 positive numbers (x=col, y=row[, z=slice]) in mm, got {spacing!r}")
    org = np.asarray(origin, dtype=float).reshape(-1)
    if org.shape != (3,) or not np.all(np.isfinite(org)):
        raise ValueError(f"origin must be 3 finite numbers (LPS, mm), got {origin!r}")
    d = np.asarray(direction, dtype=float)
    if d.shape != (3, 3) or not np.all(np.isfinite(d)):
        raise ValueError(f"direction must be a 3×3 matrix (columns = index axes in LPS), got shape {d.shape}")
    if abs(np.linalg.det(d)) < 1e-6:
        raise ValueError("direction is singular")
    space_directions = (d * np.asarray(sp)[np.newaxis, :]).T  # row k = column k of direction × spacing[k]
    return space_directions, org


def _nrrd_header(a: np.ndarray, spacing, origin, direction) -> dict[str, Any]:
    if a.shape[0] > 1 and len(spacing) != 3:
        raise ValueError(f"a volume of {a.shape[0]} slices needs 3 spacings (x=col, y=row, z=slice), got {spacing!r}")
    space_directions, org = _geometry(spacing, origin, direction)
    return {
        "dimension": 3,
        "space": "left-posterior-superior",
        "sizes": np.array(a.shape[::-1]),  # x (col) fastest
        "space directions": space_directions,
        "kinds": ["domain", "domain", "domain"],
        "endian": "little",
        "encoding": "gzip",
        "space origin": org,
    }


def _write_nrrd(path: str | os.PathLike, a: np.ndarray, header: dict[str, Any]) -> None:
    import nrrd  # pynrrd

    a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))  # the header says little endian
    with _atomic_path(path) as tmp, open(tmp, "wb") as fh:
        # index_order "C": the [slice, row, col] array is written as is, i.e. with x (col) varying fastest,
        # which is NRRD's (and ITK's, and Slicer's) order; `sizes` is (ncol, nrow, nslice).
        nrrd.write(fh, a, header, index_order="C", compression_level=GZIP_LEVEL)


# ------------------------------------------------------------------------------------------------------ volumes
def write_volume_nrrd(
    path: str | os.PathLike,
    array: np.ndarray,
    spacing: Sequence[float],
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    direction: Any = None,
) -> Path:
    """Write a scalar volume as a gzip-compressed NRRD that Slicer (and ITK) read with its geometry.

    array: ``[row, col]`` (written as one slice) or ``[slice, row, col]``. float32 stays float32, integer types keep
        their type, bool becomes uint8, float16 becomes float32; other floats keep their type.
    spacing: (x=col, y=row[, z=slice]) in mm. origin: LPS position (mm) of the centre of voxel [0, 0, 0].
    direction: 3×3, column k = LPS unit vector of index axis k (col, row, slice); identity when None.
    Header: ``space: left-posterior-superior``, ``space directions`` = direction columns × spacing,
    ``space origin``, ``kinds: domain domain domain``. Returns the path written.
    """
    a = _as_volume(array, "array")
    if a.dtype == np.bool_:
        a = a.astype(np.uint8)
    elif a.dtype == np.float16:
        a = a.astype(np.float32)
    elif a.dtype.kind not in "iuf":
        raise ValueError(f"array must be numeric, got dtype {a.dtype}")
    header = _nrrd_header(a, spacing, origin, np.eye(3) if direction is None else direction)
    _write_nrrd(path, a, header)
    return Path(path)


# -------------------------------------------------------------------------------------------------- segmentations
def _fmt(x: float) -> str:
    return f"{float(x):.6g}"


def write_segmentation_nrrd(
    path: str | os.PathLike,
    labelmap: np.ndarray,
    segments: Sequence[Mapping[str, Any]],
    spacing: Sequence[float],
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    direction: Any = None,
) -> Path:
    """Write a Slicer segmentation (``.seg.nrrd``) with one labelmap layer holding every segment.

    labelmap: integer ``[row, col]`` (one slice) or ``[slice, row, col]``; 0 = background, value v = the segment whose
        ``label`` is v. A value that no segment claims is an error (Slicer would silently drop those voxels).
    segments: dicts with ``name`` (str), ``label`` (int ≥ 1, the value in `labelmap`), ``color`` ((r, g, b) in 0..1)
        and optionally ``id`` (the Slicer segment ID; default: the name) and ``terminology`` (the value of a Slicer
        ``TerminologyEntry`` tag, e.g. ``"Segmentation category and type - DICOM master list~SCT^123037004^Anatomical
        Structure~SCT^76752008^Breast~^^~Anatomic codes - DICOM master list~^^~^^"``).
    spacing, origin, direction: as for `write_volume_nrrd` (LPS, mm).

    The file has exactly the keys Slicer writes: ``Segment{i}_ID/_Name/_Color/_ColorAutoGenerated/_NameAutoGenerated/
    _LabelValue/_Layer/_Extent/_Tags`` plus ``Segmentation_MasterRepresentation:=Binary labelmap``,
    ``Segmentation_ContainedRepresentationNames:=Binary labelmap|`` and
    ``Segmentation_ReferenceImageExtentOffset:=0 0 0``. Names and colours are marked as not auto-generated, so
    Slicer keeps them. Voxels are uint8 (uint16 when a label exceeds 255). Returns the path written.
    """
    lm = _as_volume(labelmap, "labelmap")
    if lm.dtype.kind not in "iub":
        raise ValueError(f"labelmap must be an integer array, got dtype {lm.dtype}")

    labels: list[int] = []
    ids: list[str] = []
    for k, seg in enumerate(segments):
        for key in ("name", "label", "color"):
            if key not in seg:
                raise ValueError(f"segment {k} has no {key!r} (needs name, label, color)")
        label = seg["label"]
        if isinstance(label, bool) or int(label) != label or not 1 <= int(label) <= 65535:
            raise ValueError(f"segment {seg['name']!r}: label must be an integer in 1..65535, got {label!r}")
        color = tuple(float(c) for c in seg["color"])
        if len(color) != 3 or not all(0.0 <= c <= 1.0 for c in color):
            raise ValueError(f"segment {seg['name']!r}: color must be (r, g, b) in 0..1, got {seg['color']!r}")
        labels.append(int(label))
        ids.append(str(seg.get("id") or seg["name"]))
    if len(set(labels)) != len(labels):
        raise ValueError(f"segment labels must be unique, got {labels}")
    if len(set(ids)) != len(ids):
        raise ValueError(f"segment IDs (default: names) must be unique, got {ids}")
    present = set(np.unique(lm).tolist()) - {0}
    unclaimed = sorted(present - set(labels))
    if unclaimed:
        raise ValueError(f"labelmap values {unclaimed[:10]} belong to no segment")

    dtype = np.uint8 if max(labels, default=0) <= 255 else np.uint16
    a = lm.astype(dtype, copy=False)
    header = _nrrd_header(a, spacing, origin, np.eye(3) if direction is None else direction)
    nz, ny, nx = a.shape
    extent = f"0 {nx - 1} 0 {ny - 1} 0 {nz - 1}"
    for i, (seg, label, sid) in enumerate(zip(segments, labels, ids)):
        term = seg.get("terminology")
        header[f"Segment{i}_Color"] = " ".join(_fmt(c) for c in seg["color"])
        header[f"Segment{i}_ColorAutoGenerated"] = "0"
        header[f"Segment{i}_Extent"] = extent
        header[f"Segment{i}_ID"] = sid
        header[f"Segment{i}_LabelValue"] = str(label)
        header[f"Segment{i}_Layer"] = "0"
        header[f"Segment{i}_Name"] = str(seg["name"])
        header[f"Segment{i}_NameAutoGenerated"] = "0"
        # Tags end with "|" (older Slicer versions require it).
        header[f"Segment{i}_Tags"] = f"TerminologyEntry:{term}|" if term else "|"
    header["Segmentation_ContainedRepresentationNames"] = "Binary labelmap|"
    header["Segmentation_MasterRepresentation"] = "Binary labelmap"
    header["Segmentation_ReferenceImageExtentOffset"] = "0 0 0"
    _write_nrrd(path, a, header)
    return Path(path)


# ------------------------------------------------------------------------------------------------------ markups
def write_curve_markups_json(
    path: str | os.PathLike,
    points_lps: Any,
    *,
    name: str,
    closed: bool,
    point_values: Sequence[float] | None = None,
    value_name: str = "std",
    value_unit: str = "mm",
    point_labels: Sequence[str] | None = None,
    description: str | None = None,
) -> Path:
    """Write one Slicer curve (``.mrk.json``): type ``Curve`` (open) or ``ClosedCurve``, coordinates in LPS mm.

    points_lps: (N, 3) physical LPS positions in mm, in curve order (a closed curve is not repeated at the end).
    name: the node name Slicer gives the curve. point_labels: one label per point (default ``<name>-<k>``, k from 1,
        as Slicer labels them).
    point_values: one finite value per control point (e.g. the per-node std in mm). They are stored the way Slicer
        stores a ``vtkMRMLStaticMeasurement``: an enabled entry of ``measurements`` with ``controlPointValues``;
        Slicer reads them back as that measurement (`GetControlPointValues()`, array named `value_name`) and
        interpolates them onto the curve as the point array `value_name`, which can colour the curve.
    value_name, value_unit: the measurement's name and units. description: the measurement's description (the
        only free text Slicer reads back for a markup: it neither writes nor reads a node-level description), so
        it needs `point_values`.
    Returns the path written.
    """
    pts = np.asarray(points_lps, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"points_lps must be (N, 3), got shape {pts.shape}")
    n = len(pts)
    if n < (3 if closed else 2):
        raise ValueError(f"a {'closed' if closed else 'open'} curve needs at least {3 if closed else 2} points, got {n}")
    if not np.all(np.isfinite(pts)):
        raise ValueError("points_lps must be finite")
    if point_labels is None:
        point_labels = [f"{name}-{k + 1}" for k in range(n)]
    elif len(point_labels) != n:
        raise ValueError(f"{len(point_labels)} point labels for {n} points")

    control_points = [
        {
            "id": str(k + 1),
            "label": str(point_labels[k]),
            "description": "",
            "associatedNodeID": "",
            "position": [float(x) for x in pts[k]],
            # Slicer's default orientation (identity in RAS) written in LPS, as Slicer writes it.
            "orientation": [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0],
            "selected": True,
            "locked": False,
            "visibility": True,
            "positionStatus": "defined",
        }
        for k in range(n)
    ]
    markup: dict[str, Any] = {
        "type": "ClosedCurve" if closed else "Curve",
        "name": str(name),  # not written by Slicer, but read: it names the loaded node
        "coordinateSystem": "LPS",
        "coordinateUnits": "mm",
        "locked": False,
        "fixedNumberOfControlPoints": False,
        "labelFormat": "%N-%d",
        "lastUsedControlPointNumber": n,
        "controlPoints": control_points,
    }
    if point_values is not None:
        values = np.asarray(point_values, dtype=float).reshape(-1)
        if len(values) != n:
            raise ValueError(f"{len(values)} point values for {n} points")
        if not np.all(np.isfinite(values)):
            raise ValueError("point_values must be finite (JSON has no NaN)")
        measurement: dict[str, Any] = {"name": str(value_name), "enabled": True, "units": str(value_unit)}
        if description is not None:
            measurement["description"] = str(description)
        measurement["printFormat"] = "%-#4.4g%s"
        measurement["controlPointValues"] = [float(v) for v in values]
        markup["measurements"] = [measurement]
    elif description is not None:
        raise ValueError("description is stored with the point values' measurement: give point_values too")

    _dump_json(path, {"@schema": MARKUPS_SCHEMA, "markups": [markup]})
    return Path(path)


# -------------------------------------------------------------------------------------------------- CSV and JSON
def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """Write a comma-separated table with one header line (UTF-8, ``\\n`` line ends, fields quoted only if needed).

    Numbers are written with Python's `str` (shortest text that reads back to the same float; numpy scalars too).
    Every row must have as many fields as the header. Returns the path written.
    """
    header = [str(h) for h in header]
    with _atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        for i, row in enumerate(rows):
            row = [_csv_field(x) for x in row]
            if len(row) != len(header):
                raise ValueError(f"row {i} has {len(row)} fields, the header {len(header)}")
            w.writerow(row)
    return Path(path)


def _csv_field(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    return x


def _jsonable(obj: Any) -> Any:
    """numpy scalars/arrays → Python, Path → str, tuples/sets → lists, non-finite floats → None (JSON has no NaN)."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def _dump_json(path: str | os.PathLike, obj: Any) -> None:
    text = json.dumps(_jsonable(obj), indent=2, ensure_ascii=False, allow_nan=False)
    with _atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text + "\n")


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write `obj` as indented UTF-8 JSON. numpy scalars and arrays become numbers and lists, paths strings, and
    NaN/±inf become null (so the file is strict JSON). Returns the path written."""
    _dump_json(path, obj)
    return Path(path)


def write_png_atomically(path: str | os.PathLike, save) -> Path:
    """Write a PNG through `save(temporary_path)` (e.g. ``lambda tmp: fig.savefig(tmp, format="png")`` or
    ``lambda tmp: image.save(tmp, format="PNG")``) and rename it to `path` only when that succeeded (a failed
    preview leaves no file, not half of one). Returns the path."""
    with _atomic_path(path) as tmp:
        save(tmp)
    return Path(path)


def write_dicom(path: str | os.PathLike, dataset) -> Path:
    """Write a pydicom Dataset as a DICOM Part 10 file (with its file meta information), atomically."""
    with _atomic_path(path) as tmp:
        try:
            dataset.save_as(tmp, enforce_file_format=True)  # pydicom ≥ 3
        except TypeError:
            dataset.save_as(tmp, write_like_original=False)  # pydicom 2.4
    return Path(path)
