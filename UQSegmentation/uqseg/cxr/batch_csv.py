"""The batch export in the CheXmask-U column format: one CSV row per image with its landmark means and stds.

Columns (as in the CheXmask-U release, which extends the CheXmask database): `ImageID`, `Height`, `Width`,
`Landmarks (Mean)` and `Landmarks (Std)` — each the 120 nodes (right lung 44, left lung 50, heart 26) flattened as
"x1,y1,x2,y2,..." in input pixels (pixel-centre indices; means and stds with 2 decimals) — followed by this
project's `image_uncertainty` (mean node std, input px), `latent_sigma` (mean latent σ) and `ood` (0/1).
CheXmask's RLE mask columns are not repeated: the masks are in each case's segmentation.seg.nrrd.

`upsert_row` keeps one row per ImageID (a re-run replaces its row), rows sorted by ImageID, so the file always
lists every case of the output folder once.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from uqseg.io.write import write_csv

COLUMNS = ["ImageID", "Height", "Width", "Landmarks (Mean)", "Landmarks (Std)", "image_uncertainty",
           "latent_sigma", "ood"]
FILE_NAME = "chexmask_u.csv"


def flatten(nodes: np.ndarray) -> str:
    return ",".join(f"{v:.2f}" for v in np.asarray(nodes, dtype=float).reshape(-1))


def unflatten(text: str) -> np.ndarray:
    return np.array([float(v) for v in text.split(",")]).reshape(-1, 2)


def make_row(image_id: str, shape, mean, std, image_uncertainty: float, latent_sigma: float, ood: bool) -> list:
    return [image_id, int(shape[0]), int(shape[1]), flatten(mean), flatten(std), round(float(image_uncertainty), 4),
            round(float(latent_sigma), 5), int(bool(ood))]


def read_rows(path: Path) -> list[list[str]]:
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0] != COLUMNS:
        raise ValueError(f"{path}: not a CheXmask-U batch file written by uqseg (header {rows[:1]})")
    return rows[1:]


def upsert_row(path: Path, row: list) -> Path:
    return upsert_rows(path, [row])


def upsert_rows(path: Path, rows: list) -> Path:
    """Write `rows` into the table at `path`, replacing the rows of the same image ids; sorted by image id."""
    rows = [[str(v) for v in row] for row in rows]
    ids = {row[0] for row in rows}
    merged = [r for r in read_rows(path) if r[0] not in ids] + rows
    return write_csv(path, COLUMNS, sorted(merged, key=lambda r: r[0]))
