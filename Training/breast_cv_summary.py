"""Pool the held-out numbers of a mammo-breast cross-validation (Training/breast_cv.sh) over its folds.

    python Training/breast_cv_summary.py runs/bcv --folds 2 --out runs/bcv/summary.json

Per fold `f<i>/eval/evaluation.json` (evaluate_breast.py --split fold): the per-image Dice of breast, pectoral
muscle (MLO: every DDSM image shows it) and tissue over all held-out images pooled (mean, min, median), the pectoral
false negatives, and the per-fold means. Nothing here reads the validation split.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from common import print_json

DICE = ("dice_breast", "dice_pectoral", "dice_tissue")


def summarise(root: Path, folds: int) -> dict:
    evals = {i: json.loads(p.read_text()) for i in range(folds)
             if (p := Path(root) / f"f{i}" / "eval" / "evaluation.json").is_file()}
    rows = [r for e in evals.values() for r in e["per_image"]]
    out = {"folds": folds, "complete": sorted(evals) == list(range(folds)), "images": len(rows)}
    for k in DICE:
        v = np.array([r[k] for r in rows if r[k] is not None], dtype=float)
        out[k] = {"mean": round(float(v.mean()), 4), "min": round(float(v.min()), 4),
                  "median": round(float(np.median(v)), 4)} if v.size else None
        out[k + "_per_fold"] = {i: e[k]["mean"] for i, e in sorted(evals.items()) if e.get(k)}
    out["pectoral_fn_images"] = [n for e in evals.values() for n in e["pectoral_fn_images"]]
    out["worst_breast"] = sorted(((r["name"], round(r["dice_breast"], 4)) for r in rows), key=lambda t: t[1])[:3]
    out["worst_pectoral"] = sorted(((r["name"], round(r["dice_pectoral"] or 0.0, 4)) for r in rows),
                                   key=lambda t: t[1])[:3]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path)
    ap.add_argument("--folds", type=int, required=True)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    print_json(summarise(args.root, args.folds), args.out)


if __name__ == "__main__":
    main()
