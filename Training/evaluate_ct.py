"""Compare the covariance parameterisations of the ct-organs model on the validation slab (MoB paper Table 4, Fig. 3).

    python Training/evaluate_ct.py --runs runs/ct_det runs/ct_diag runs/ct_lowrank runs/ct_sb runs/ct_mob \
        --out runs/ct_eval

For every run (a train_ct.py output folder: config.json + weights.safetensors) the full inference pipeline
(`uqseg.ct.inference.predict_ct`: working grid, sliding windows, k = --samples logit samples from one network pass,
mapping back) runs on the shared abdominal DICOM series; on its validation slab (the slices train_ct.py held out):
- Dice per organ on the INPUT grid (the label mapped back to the 0.98 × 0.98 × 2 mm DICOM voxels) against the
  TotalSegmentator label map (aligned by physical position);
- on the 2 mm working grid, from the MC mean probabilities p̄ (Eq. 14): NLL (nats/voxel), ECE and MCE with 15
  equal-width bins weighted by count (uqseg.metrics.calibration), over all voxels of the slab and over the
  "organ region" (voxels within 10 mm of a true or predicted organ, where the decisions are);
- the voxel error rate against the predictive variance (equal-count bins), the AUROC of variance for the errors,
  the mean variance inside the predicted organs (the task's image_uncertainty), the share of sampled voxels, time.
Writes comparison.json, comparison.md (the table) and reliability.png (organ region, all forms), error_vs_variance
for the card's display threshold (the smallest variance from which the validation error rate exceeds 5 %) and
region threshold (90th percentile of the variance over the organ region).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from datasets.totalseg import label_on_working_grid, load_shared_abdomen
from ct_runs import load_run
from uqseg.ct.inference import predict_ct
from uqseg.metrics.calibration import (auroc, dice, error_vs_uncertainty, plot_reliability,
                                           segmentation_calibration)

REPO = Path(__file__).resolve().parents[1]
LABELS = {"deterministic": "Deterministic", "diagonal": "Diagonal", "lowrank": "Low-rank",
          "single_basis": "Single-Basis", "mixture_of_bases": "Mixture-of-Bases"}


def evaluate_run(run: Path, data: Path, samples: int, seed: int = 0) -> tuple[dict, object, dict]:
    model, cfg = load_run(run)
    organs = cfg["organs"]
    case = load_shared_abdomen(data, organs)
    prep = cfg["preprocessing"]
    t0 = time.perf_counter()
    pred = predict_ct(case.image, model, prep["spacing_mm"], prep["hu_window"], organs, samples=samples, seed=seed)
    seconds = time.perf_counter() - t0
    z0, z1 = cfg["split"]["shared"]["val_slices"]
    # input grid: the DICOM slices of the validation slab (same 2 mm positions as the working grid's)
    zs = slice(z0, z1)
    dices = {o: round(dice(pred.label[zs] == i, case.label[zs] == i), 4) for i, o in enumerate(organs, start=1)}
    # working grid calibration
    truth_w = label_on_working_grid(case, pred.grid)[zs]
    prob_w = pred.work_probability[:, zs]
    var_w = pred.work_variance[1:, zs].sum(0)
    label_w = pred.work_label[zs]
    near = ndimage.binary_dilation((truth_w > 0) | (label_w > 0), iterations=5)  # 5 voxels = 10 mm
    cal_all = segmentation_calibration(prob_w, truth_w)
    cal_near = segmentation_calibration(prob_w, truth_w, mask=near)
    error = (label_w != truth_w)
    evu = error_vs_uncertainty(var_w[near], error[near], n_bins=10)
    organ_voxels = pred.work_label > 0
    result = {
        "form": cfg["form"], "run": str(run), "samples": samples if cfg["form"] != "deterministic" else 0,
        "dice_input_grid": dices, "mean_dice": round(float(np.mean(list(dices.values()))), 4),
        "nll_slab": round(cal_all["nll"], 5), "ece_slab": round(cal_all["ece"], 5), "mce_slab": round(cal_all["mce"], 4),
        "nll_organ_region": round(cal_near["nll"], 4), "ece_organ_region": round(cal_near["ece"], 4),
        "mce_organ_region": round(cal_near["mce"], 4),
        "variance_auroc_for_errors": (None if cfg["form"] == "deterministic"
                                      else round(auroc(var_w[near], error[near]), 4)),
        "image_uncertainty": (round(float(pred.work_variance[1:].sum(0)[organ_voxels].mean()), 6)
                              if organ_voxels.any() else None),
        "active_fraction": pred.active_fraction, "seconds": round(seconds, 1),
        "error_vs_variance": evu.as_dict(),
    }
    return result, cal_near["reliability"], {"variance": var_w[near], "error": error[near]}


def display_threshold(var: np.ndarray, err: np.ndarray, rate: float = 0.05) -> float | None:
    """The smallest variance v such that the voxels with variance ≥ v have an error rate above `rate`... taken as
    the lower edge of the first of 20 equal-count bins (by variance) whose error rate exceeds `rate`."""
    evu = error_vs_uncertainty(var, err, n_bins=20)
    for (lo, _), r in zip(evu.uncertainty_range, evu.error_rate):
        if r > rate:
            return float(lo)
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", required=True)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "ct_totalseg"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, bins, extra = [], {}, {}
    for run in args.runs:
        res, rel, arrays = evaluate_run(Path(run), Path(args.data), args.samples)
        rows.append(res)
        bins[LABELS[res["form"]]] = rel
        if res["form"] != "deterministic":
            res["display_threshold"] = display_threshold(arrays["variance"], arrays["error"])
            res["region_threshold_p90"] = float(np.percentile(arrays["variance"], 90))
        print(json.dumps({k: v for k, v in res.items() if k != "error_vs_variance"}), flush=True)
    (out / "comparison.json").write_text(json.dumps(rows, indent=2))
    organs = list(rows[0]["dice_input_grid"])
    head = "| form | " + " | ".join(f"Dice {o}" for o in organs) + \
        " | mean Dice | NLL (organ region) | ECE (organ region) | MCE (organ region) | ECE (slab) | variance AUROC |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(f"| {LABELS[r['form']]} | " + " | ".join(f"{r['dice_input_grid'][o]:.3f}" for o in organs) +
                     f" | {r['mean_dice']:.3f} | {r['nll_organ_region']:.3f} | {r['ece_organ_region']:.4f} | "
                     f"{r['mce_organ_region']:.3f} | {r['ece_slab']:.4f} | "
                     f"{'—' if r['variance_auroc_for_errors'] is None else format(r['variance_auroc_for_errors'], '.3f')} |")
    (out / "comparison.md").write_text("\n".join(lines) + "\n")
    plot_reliability(bins, out / "reliability.png",
                     title="ct-organs validation slab, voxels within 10 mm of an organ (15 bins)")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
