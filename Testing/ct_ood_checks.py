"""Does the ct-organs OOD map light up outside the anatomy a model was trained on, and stay low on it? (issue 18)

    python Testing/ct_ood_checks.py --model Resources/Models/ct-organs-mob [--out checks.json] [--samples 30]

Runs the task's own loader and inference (`CtOrgansTask.load`, `predict_organs`, `summarise`: the input grid, the
OOD map from the model's `ood.safetensors`) on real inputs of ../shared/data/ct_totalseg:
- `A`: the 20-slice upper-abdomen DICOM series; `B`: the abdomen-to-pelvis example CT (3 mm);
- `B_pelvis`: B's slices below the working-grid slice holding the last hip-bone / sacrum voxel of its
  TotalSegmentator masks (Training/cache_ct_cases.py's `pelvis`): the pelvis only;
- `thorax_aorta`, `thorax_pulmonary`: the two thorax crops (aorta / pulmonary report inputs, 1.5 mm);
- `A_mr_like`, `B_mr_like`: A and B with an MR-like intensity remap that the CT input checks still accept (air kept
  at −1000; elsewhere I = 250 − 2 |HU + 100|, so fat is bright, water-like tissue dark, bone darkest).
Training anatomy = the cases of the card's `training.data.split.train_cases` and their parts (B_pelvis when B
was trained on; the pelvis check of a model trained WITHOUT it is Training/evaluate_ct_lopo.py's `pelvis`). Per input: the share of body voxels
(HU > −500 on the working grid) above the OOD threshold, the image `ood`, and every predicted organ of ≥ 1 ml
with its volume, OOD share, mean variance and whether it is flagged (`ood`, or mean variance above the card's
region threshold). Expected (printed as ok / FAIL): training anatomy — image not `ood`, ≤ 5 % of the body above the
threshold; every other input — ≥ 25 % of the body above it and every predicted organ flagged.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CT = REPO.parent / "shared" / "data" / "ct_totalseg"
CASE_B = CT / "totalseg_layout" / "example_abdomen_pelvis"
THORAX = {"thorax_aorta": CT / "aorta_report__test_result__models__ct_cropped.nii.gz",
          "thorax_pulmonary": CT / "pulmonary_report__models__ct_cropped.nii.gz"}
MIN_ML = 1.0
LIGHT_UP = 0.25
STAY_LOW = 0.05


def mr_like(image):
    """The MR-like remap of the module docstring (same grid)."""
    from dataclasses import replace

    hu = image.array.astype(np.float32)
    mr = np.where(hu < -500, hu, np.clip(250 - 2 * np.abs(hu + 100), -1000, None)).astype(np.float32)
    return replace(image, array=mr, meta={**image.meta, "path": f"{image.meta.get('path')} (MR-like remap)"})


def pelvis_only(image):
    """B's slices below the top of its pelvic bones (hip_left, hip_right, sacrum masks), by physical z."""
    from dataclasses import replace

    from uqseg.io.load import load_image

    top = -np.inf
    for name in ("hip_left", "hip_right", "sacrum"):
        m = load_image(CASE_B / "segmentations" / f"{name}.nii.gz", ndim=3)
        zz = np.nonzero(m.array.any((1, 2)))[0]
        if zz.size:
            z_mm = [(np.asarray(m.origin) + np.asarray(m.direction) @ (np.array([0, 0, k]) * np.asarray(m.spacing)))[2]
                    for k in (zz.min(), zz.max())]
            top = max(top, max(z_mm))
    d = np.asarray(image.direction)
    z_of = [(np.asarray(image.origin) + d @ (np.array([0, 0, k]) * np.asarray(image.spacing)))[2]
            for k in range(image.shape[0])]
    keep = np.array([z <= top for z in z_of])
    first = int(np.argmax(keep))
    n = int(keep.sum())
    origin = np.asarray(image.origin) + d @ (np.array([0, 0, first]) * np.asarray(image.spacing))
    return replace(image, array=np.ascontiguousarray(image.array[first:first + n]), origin=tuple(origin),
                   meta={**image.meta, "path": f"{image.meta.get('path')} (pelvis slices)"})


def inputs() -> dict:
    from uqseg.io.load import load_image

    a = load_image(CT / "example_ct_dicom", ndim=3)
    b = load_image(CASE_B / "ct.nii.gz", ndim=3)
    out = {"A": a, "B": b, "B_pelvis": pelvis_only(b)}
    out.update({k: load_image(p, ndim=3) for k, p in THORAX.items()})
    out.update({"A_mr_like": mr_like(a), "B_mr_like": mr_like(b)})
    return out


def check_one(name: str, image, model, card, samples: int, training: set[str]) -> dict:
    from uqseg.ct.ood import BODY_HU
    from uqseg.tasks.ct_organs import predict_organs, summarise

    pred = predict_organs(image, model, card, "cpu", samples=samples, keep=0)
    s = summarise(pred, card)
    region = (card.get("uncertainty") or {}).get("region_threshold")
    voxel_ml = float(np.prod(pred.grid.spacing)) / 1000
    organs = {}
    for i, o in enumerate(pred.organs, start=1):
        ml = float((pred.work_label == i).sum()) * voxel_ml
        if ml < MIN_ML:
            continue
        row = s["organs"][o]
        by_var = bool(region is not None and row["mean_variance"] is not None and row["mean_variance"] > region)
        organs[o] = {"ml": round(ml, 1), "ood_fraction": row.get("ood_fraction"), "mean_variance": row["mean_variance"],
                     "flag_ood": bool(row.get("ood")), "flag_variance": by_var,
                     "flagged": bool(row.get("ood")) or by_var}
    body = pred.work_hu > BODY_HU
    frac = float((pred.work_ood[body] > s["ood_map"]["threshold"]).mean())
    base = name.split("_")[0]
    # a part of a training patient (B's pelvis) is training anatomy; a remap of one (A_mr_like) is not
    trained = name in training or (base in training and name in (base, f"{base}_pelvis"))
    if trained:
        ok = (not s["ood"]) and frac <= STAY_LOW
        expect = f"stays low: image not ood, <= {STAY_LOW:.0%} of the body above the threshold"
    else:
        ok = frac >= LIGHT_UP and all(r["flagged"] for r in organs.values())
        expect = f"lights up: >= {LIGHT_UP:.0%} of the body above the threshold, every predicted organ flagged"
    return {"input": name, "training_anatomy": trained, "body_fraction_above": round(frac, 4), "image_ood": s["ood"],
            "organs": organs, "expected": expect, "ok": bool(ok)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="a model folder (model.json, weights, ood.safetensors)")
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--only", nargs="*", default=None, help="run only these inputs")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    import torch

    from uqseg.models.registry import ModelCard
    from uqseg.tasks.ct_organs import CtOrgansTask

    torch.set_num_threads(2)
    card = ModelCard(args.model, json.loads((args.model / "model.json").read_text()), source="shipped")
    model = CtOrgansTask().load(card, "cpu")
    training = set((card.card["training"]["data"].get("split") or {}).get("train_cases", {}))
    rows = []
    for name, image in inputs().items():
        if args.only and name not in args.only:
            continue
        r = check_one(name, image, model, card, args.samples, training)
        rows.append(r)
        organs = ", ".join(f"{o} {v['ml']} ml ood {v['ood_fraction']} {'FLAGGED' if v['flagged'] else 'unflagged'}"
                           for o, v in r["organs"].items()) or "none"
        print(f"{'ok  ' if r['ok'] else 'FAIL'} {name:17s} body above threshold {r['body_fraction_above']:.3f}  "
              f"image ood {r['image_ood']!s:5s}  organs: {organs}", flush=True)
    if args.out:
        args.out.write_text(json.dumps({"model": f"{card.id} {card.version}", "rows": rows}, indent=1))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
