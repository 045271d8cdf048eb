"""The per-pixel / per-voxel uncertainty each task's Parametric Map holds, read from the case's own files.

- `mammo-breast`: `uncertainty.nrrd` as written (predictive entropy of the MC-dropout mean softmax, nats);
- `ct-organs`: `variance.nrrd` as written (predictive variance Σ_c Var[p_c], probability²; unit "1");
- `mammo-pectoral`: the ±σ band of `boundary.csv` with each row's σ painted on it: pixel (r, c) holds σ_r where
  |c − mean_col_r| ≤ max(σ_r, ½) (so a row with σ < ½ px still marks its boundary pixel), 0 elsewhere;
  input pixels (columns), the units of `std_col`;
- `cxr-landmarks`: the same for the contours of `landmarks.csv`: each organ's closed ring of nodes, sampled every
  ¼ pixel with position and node std ½(std_x + std_y) interpolated linearly between nodes; a pixel holds the std of
  its nearest contour sample when it lies within max(std, ½) pixels of it, else 0; input pixels.
Each map is float32 ``[slice, row, col]`` on the input's pixel grid. Returned with its unit (UCUM code, meaning), a
short label and the explanation the Real World Value Mapping carries.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: UCUM units: "1" = no unit (a probability²), annotations in braces for what UCUM has no unit for.
UNITS = {"nats": ("{nats}", "nats"), "pixels": ("{pixels}", "pixels"), "probability^2": ("1", "no units")}
SAMPLE_STEP_PX = 0.25


@dataclass
class UncertaintyMap:
    values: np.ndarray  # float32 [slice, row, col]
    units: str  # a key of UNITS
    label: str  # ≤ 16 characters (LUT Label)
    explanation: str  # LUT Explanation (≤ 64 characters)
    source_file: str  # the case file it mirrors


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def pectoral_band(boundary_csv: Path, shape: tuple) -> np.ndarray:
    """σ painted on the ±σ band of each muscle row (module docstring; `uqseg.mammo.pectoral_band.band_values`);
    `shape` (rows, cols)."""
    from uqseg.mammo.pectoral_band import band_values

    rows = _rows(boundary_csv)
    return band_values([int(r["row"]) for r in rows], [float(r["mean_col"]) for r in rows],
                       [float(r["std_col"]) for r in rows], shape, min_half_width=0.5)


def contour_band(landmarks_csv: Path, shape: tuple) -> np.ndarray:
    """Node std painted on a band around each organ's closed contour (module docstring); `shape` (rows, cols)."""
    from scipy import ndimage

    rows = _rows(landmarks_csv)
    seeds_value = np.zeros(shape, np.float32)
    seeded = np.zeros(shape, bool)
    for organ in dict.fromkeys(r["organ"] for r in rows):
        ring = [r for r in rows if r["organ"] == organ]
        xy = np.array([[float(r["mean_x"]), float(r["mean_y"])] for r in ring])
        std = np.array([np.float32(0.5) * (np.float32(r["std_x"]) + np.float32(r["std_y"])) for r in ring], np.float32)
        nxt = np.roll(np.arange(len(ring)), -1)
        for a, b in zip(range(len(ring)), nxt):
            n = max(1, int(np.ceil(np.linalg.norm(xy[b] - xy[a]) / SAMPLE_STEP_PX)))
            t = np.arange(n) / n
            pts = xy[a] + t[:, None] * (xy[b] - xy[a])
            val = (std[a] + t * (std[b] - std[a])).astype(np.float32)
            i, j = np.round(pts[:, 1]).astype(int), np.round(pts[:, 0]).astype(int)
            ok = (i >= 0) & (i < shape[0]) & (j >= 0) & (j < shape[1])
            seeds_value[i[ok], j[ok]] = val[ok]
            seeded[i[ok], j[ok]] = True
    if not seeded.any():
        return seeds_value
    dist, (ii, jj) = ndimage.distance_transform_edt(~seeded, return_indices=True)
    nearest = seeds_value[ii, jj]
    return np.where(dist <= np.maximum(nearest, 0.5), nearest, 0).astype(np.float32)


def _nrrd(path: Path) -> np.ndarray:
    import nrrd

    data, _ = nrrd.read(str(path), index_order="C")
    return data.reshape((-1,) + data.shape[-2:]).astype(np.float32)


def uncertainty_map(task_id: str, case_dir: Path, shape: tuple) -> UncertaintyMap:
    """The map of task `task_id` from the files in `case_dir`; `shape` is the input's ``[slice, row, col]``."""
    case_dir = Path(case_dir)
    if task_id == "mammo-breast":
        return UncertaintyMap(_nrrd(case_dir / "uncertainty.nrrd"), "nats", "ENTROPY",
                              "MC-dropout predictive entropy (nats)", "uncertainty.nrrd")
    if task_id == "ct-organs":
        return UncertaintyMap(_nrrd(case_dir / "variance.nrrd"), "probability^2", "VARIANCE",
                              "predictive variance sum over organs of Var[p_c] (probability^2)", "variance.nrrd")
    if task_id == "mammo-pectoral":
        return UncertaintyMap(pectoral_band(case_dir / "boundary.csv", shape[-2:])[None], "pixels", "BOUNDARY SIGMA",
                              "pectoral boundary sigma on its +-sigma band (input pixels)", "boundary.csv")
    if task_id == "cxr-landmarks":
        return UncertaintyMap(contour_band(case_dir / "landmarks.csv", shape[-2:])[None], "pixels", "NODE STD",
                              "contour node std on its +-std band (input pixels)", "landmarks.csv")
    raise ValueError(f"no uncertainty map for task {task_id!r}")
