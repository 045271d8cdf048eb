"""Resample the labelled CT cases onto the ct-organs working grid once and store them as compact .npz caches, so
that a training machine without SimpleITK / nibabel / pydicom (the GPU machine) can train on them.

    python Training/cache_ct_cases.py --out /work/main/.gpu18/data \
        --organs liver,spleen,kidney_left,kidney_right,pancreas

Cases: `A` = the shared 20-slice abdominal DICOM series (../shared/data/ct_totalseg/example_ct_dicom with its
TotalSegmentator v2 label map), `B` = the TotalSegmentator-layout example abdomen-to-pelvis CT
(../shared/data/ct_totalseg/totalseg_layout/example_abdomen_pelvis, 3 mm, 104 structure masks — model outputs).
Each `<name>.npz` holds, on the axis-aligned LPS working grid of `--spacing` mm (uqseg.ct.preprocess.working_grid):
`hu` int16 (z, y, x) HU (−1024 outside the input), `label` uint8 (0 background, i = organs[i − 1]), `origin` (mm,
x y z), `spacing`, `organs`, and `pelvis` uint8 (z, y, x): the hip bones and sacrum of the TotalSegmentator masks
(B only; empty for A) — what the pelvis checks of Testing/ct_ood_checks.py use to find the pelvic slices.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from datasets.totalseg import label_on_working_grid, load_shared_abdomen, load_totalseg_case
from uqseg.ct.preprocess import label_to_working_grid, to_working_grid, working_grid
from uqseg.io.load import load_image

REPO = Path(__file__).resolve().parents[1]
CT = REPO.parent / "shared" / "data" / "ct_totalseg"
CASE_B = CT / "totalseg_layout" / "example_abdomen_pelvis"
PELVIS_MASKS = ("hip_left", "hip_right", "sacrum")


def cache_case(case, spacing: float, pelvis_dir: Path | None = None) -> dict:
    grid = working_grid(case.image, spacing)
    hu = to_working_grid(case.image, grid)
    label = label_on_working_grid(case, grid)
    pelvis = np.zeros(grid.shape, np.uint8)
    if pelvis_dir is not None:
        for name in PELVIS_MASKS:
            pelvis |= (label_to_working_grid(load_image(pelvis_dir / f"{name}.nii.gz", ndim=3), grid) > 0)
    return {"hu": np.round(hu).clip(-1024, 3071).astype(np.int16), "label": label.astype(np.uint8),
            "pelvis": pelvis.astype(np.uint8), "origin": np.asarray(grid.origin, np.float64),
            "spacing": np.asarray(grid.spacing, np.float64), "organs": np.asarray(case.organs)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--organs", default="liver,spleen,kidney_left,kidney_right,pancreas")
    ap.add_argument("--spacing", type=float, default=2.0)
    args = ap.parse_args(argv)
    organs = [o for o in args.organs.split(",") if o]
    args.out.mkdir(parents=True, exist_ok=True)
    cases = {"A": (load_shared_abdomen(CT, organs), None),
             "B": (load_totalseg_case(CASE_B, organs), CASE_B / "segmentations")}
    index = {}
    for name, (case, pelvis_dir) in cases.items():
        arrays = cache_case(case, args.spacing, pelvis_dir)
        np.savez_compressed(args.out / f"{name}.npz", **arrays)
        index[name] = {"source": case.name, "shape_zyx": list(arrays["hu"].shape),
                       "organ_voxels": {o: int((arrays["label"] == i).sum()) for i, o in enumerate(organs, 1)}}
        print(name, index[name], flush=True)
    (args.out / "index.json").write_text(json.dumps({"organs": organs, "spacing_mm": args.spacing,
                                                     "cases": index}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
