"""Leave-one-patient-out evaluation of a ct-organs run, with its out-of-distribution map fitted on the run's OWN
training patients (issue 18), on the working-grid caches of cache_ct_cases.py (no SimpleITK needed: the cached
volumes are already on the model's working grid, so `predict_ct` takes them without resampling — the sliding
windows, k samples, moments and OOD map are the task's own).

    python Training/evaluate_ct_lopo.py --run runs/AtoB_mixture_of_bases --cache CACHE --out runs/eval_AtoB_mob

For the run's training patients (config.json split.train_cases; voxels of a held-out validation slab excluded):
1. OOD fit (uqseg.ct.ood.fit_context_knn, Sun et al. 2022): the intensity-context descriptors of their body cells
   are the bank; `ood_threshold` = the --percentile (99) percentile of their cross-fitted k-NN distances (each
   patient's z-halves scored against the bank without that half).
2. `variance_threshold` = the 90th percentile of the predictive variance over
   their voxels within 10 mm of an organ (the card's region-threshold rule, on training data).
Then on every held-out patient (split.val_cases) and slab (split.train_cases[*].val_slices), k = --samples:
- Dice per organ on the working grid (None where the organ is in neither);
- per predicted organ: mean variance, OOD fraction (share of its voxels above ood_threshold), flagged =
  OOD fraction > 0.5 (the task's `ood` rule) or mean variance > variance_threshold;
- wrong organs: predicted (≥ 1 ml) with Dice < 0.5 — and how many of them are flagged;
- wrong components: connected components (≥ 1 ml) of a predicted organ of which less than half lies in that
  organ's reference — flagged by the same rule applied to the component, or as a detached fragment (the task's
  third flag, uqseg.ct.fragments: the component does not touch the organ's largest component in the WHOLE
  predicted volume, as the task sees it); `flag_fragment` also counts the right components it flags (false alarms);
- `pelvis`: the same component count restricted to the slices holding hip bones / sacrum (cache `pelvis` mask) —
  the issue's check: on a patient's pelvis, with a model trained without it, nothing confident and wrong may be
  left unflagged;
- the OOD map's mean and 95th percentile over body voxels, and the share of body voxels above the threshold.
Writes result.json, ood.safetensors (the bank with its threshold) and, with --save-maps, maps_<case>.npz
(label, variance, OOD as float16) for plots.
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

from ct_runs import load_run
from uqseg.ct.fragments import main_body, organ_components
from uqseg.ct.inference import predict_ct
from uqseg.ct.ood import BODY_HU, fit_context_knn
from uqseg.io.image import Image

WRONG_DICE = 0.5
MIN_ML = 1.0


def cached_image(path: Path) -> tuple[Image, np.ndarray, np.ndarray]:
    d = np.load(path)
    image = Image(d["hu"].astype(np.float32), spacing=tuple(d["spacing"]), origin=tuple(d["origin"]),
                  direction=np.eye(3), meta={"modality": "CT", "path": str(path)})
    return image, d["label"], d["pelvis"]


def training_voxels(shape, slab) -> np.ndarray:
    keep = np.ones(shape, bool)
    if slab:
        keep[slab[0]:slab[1]] = False
    return keep


def fit_ood(model, cfg, cache: Path, device, percentile: float, samples: int):
    prep = cfg["preprocessing"]
    organs = cfg["organs"]
    cases = {}
    for name, info in cfg["split"]["train_cases"].items():
        image, label, _ = cached_image(cache / f"{name}.npz")
        cases[name] = (image, label, training_voxels(label.shape, info.get("val_slices")))
    knn = fit_context_knn([(image.array, keep) for image, _, keep in cases.values()], percentile=percentile)
    variances = []
    for name, (image, label, keep) in cases.items():
        pred = predict_ct(image, model, prep["spacing_mm"], prep["hu_window"], organs, device,
                          samples=0 if model.form == "deterministic" else samples)
        near = ndimage.binary_dilation((label > 0) | (pred.work_label > 0), iterations=5) & keep
        variances.append(pred.work_variance[1:].sum(0)[near])
    var_all = np.concatenate(variances)
    var_threshold = float(np.percentile(var_all, 90)) if var_all.size and var_all.max() > 0 else None
    return knn, var_threshold, int(len(knn.bank))


def flagged(mask, var, ood, var_threshold, ood_threshold, fragment: bool = False) -> dict:
    mv = float(var[mask].mean())
    of = float((ood[mask] > ood_threshold).mean())
    by_var = bool(var_threshold is not None and mv > var_threshold)
    by_ood = bool(of > 0.5)
    return {"mean_variance": round(mv, 6), "ood_fraction": round(of, 4), "flag_variance": by_var,
            "flag_ood": by_ood, "flag_fragment": fragment, "flagged": by_var or by_ood or fragment}


def assess(pred, label, pelvis, organs, z_slab, var_threshold, ood_threshold, voxel_ml) -> dict:
    z0, z1 = z_slab
    lab = pred.work_label[z0:z1]
    ref = label[z0:z1]
    var = pred.work_variance[1:, z0:z1].sum(0)
    ood = pred.work_ood[z0:z1]
    hu = pred.work_hu[z0:z1]
    pel = pelvis[z0:z1].any((1, 2))
    out = {"organs": {}, "wrong_organs": 0, "wrong_organs_flagged": 0, "components": [],
           "body_ood": {"mean": round(float(ood[hu > BODY_HU].mean()), 3),
                        "p95": round(float(np.percentile(ood[hu > BODY_HU], 95)), 3),
                        "fraction_above": round(float((ood[hu > BODY_HU] > ood_threshold).mean()), 4)}}
    for i, organ in enumerate(organs, start=1):
        p, t = lab == i, ref == i
        d = None if not (p.any() or t.any()) else round(float(2 * (p & t).sum() / (p.sum() + t.sum())), 4)
        row = {"dice": d, "predicted_ml": round(float(p.sum()) * voxel_ml, 2),
               "reference_ml": round(float(t.sum()) * voxel_ml, 2)}
        if p.any():
            row.update(flagged(p, var, ood, var_threshold, ood_threshold))
            if row["predicted_ml"] >= MIN_ML and d is not None and d < WRONG_DICE:
                row["wrong"] = True
                out["wrong_organs"] += 1
                out["wrong_organs_flagged"] += int(row["flagged"])
        out["organs"][organ] = row
        main = main_body(pred.work_label == i)[z0:z1]
        comps, sizes = organ_components(p)
        for k in range(1, len(sizes) + 1):
            c = comps == k
            ml = float(c.sum()) * voxel_ml
            if ml < MIN_ML:
                continue
            inside = float((c & t).sum() / c.sum())
            zs = np.nonzero(c.any((1, 2)))[0]
            rec = {"organ": organ, "ml": round(ml, 2), "in_reference": round(inside, 3),
                   "wrong": inside < 0.5, "z": [int(zs.min() + z0), int(zs.max() + z0)],
                   "in_pelvis": bool(pel[zs].mean() > 0.5),
                   **flagged(c, var, ood, var_threshold, ood_threshold, fragment=not bool((c & main).any()))}
            out["components"].append(rec)
    comps = out["components"]
    out["wrong_components"] = sum(c["wrong"] for c in comps)
    out["wrong_components_flagged"] = sum(c["wrong"] and c["flagged"] for c in comps)
    out["wrong_components_flagged_without_fragments"] = sum(c["wrong"] and (c["flag_variance"] or c["flag_ood"])
                                                            for c in comps)
    out["right_components_flagged_as_fragments"] = sum(not c["wrong"] and c["flag_fragment"] for c in comps)
    pel_wrong = [c for c in comps if c["wrong"] and c["in_pelvis"]]
    out["pelvis"] = {"slices": int(pel.sum()), "wrong_components": len(pel_wrong),
                     "wrong_components_flagged": sum(c["flagged"] for c in pel_wrong),
                     "wrong_components_flagged_without_fragments": sum(c["flag_variance"] or c["flag_ood"]
                                                                       for c in pel_wrong),
                     "unflagged": [c for c in pel_wrong if not c["flagged"]]}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--percentile", type=float, default=99.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--save-maps", action="store_true")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model, cfg = load_run(args.run, device)
    organs = cfg["organs"]
    prep = cfg["preprocessing"]
    t0 = time.perf_counter()
    knn, var_threshold, cells = fit_ood(model, cfg, args.cache, device, args.percentile, args.samples)
    args.out.mkdir(parents=True, exist_ok=True)
    knn.save(args.out / "ood.safetensors")
    tests = [(name, None) for name in cfg["split"].get("val_cases", {})]
    tests += [(name, tuple(info["val_slices"])) for name, info in cfg["split"]["train_cases"].items()
              if info.get("val_slices")]
    result = {"run": str(args.run), "form": cfg["form"], "organs": organs,
              "train_cases": list(cfg["split"]["train_cases"]), "ood_threshold": knn.threshold,
              "ood_percentile": args.percentile, "ood_cells": cells, "variance_threshold": var_threshold,
              "samples": args.samples if cfg["form"] != "deterministic" else 0, "tests": {}}
    for name, slab in tests:
        image, label, pelvis = cached_image(args.cache / f"{name}.npz")
        pred = predict_ct(image, model, prep["spacing_mm"], prep["hu_window"], organs, device,
                          samples=result["samples"], ood=knn)
        z = slab or (0, label.shape[0])
        key = name if slab is None else f"{name}_slab"
        result["tests"][key] = assess(pred, label, pelvis, organs, z, var_threshold, knn.threshold,
                                      float(np.prod(image.spacing)) / 1000)
        result["tests"][key]["z_slab"] = list(z)
        if args.save_maps:
            np.savez_compressed(args.out / f"maps_{key}.npz", label=pred.work_label,
                                variance=pred.work_variance[1:].sum(0).astype(np.float16),
                                ood=pred.work_ood.astype(np.float16))
    result["seconds"] = round(time.perf_counter() - t0, 1)
    (args.out / "result.json").write_text(json.dumps(result, indent=1))
    short = {k: {"dice": {o: r["organs"][o]["dice"] for o in organs}, "wrong": r["wrong_organs"],
                 "wrong_flagged": r["wrong_organs_flagged"], "pelvis": {kk: v for kk, v in r["pelvis"].items()
                                                                         if kk != "unflagged"}}
             for k, r in result["tests"].items()}
    print(json.dumps({"run": args.run.name, "ood_threshold": round(knn.threshold, 3),
                      "variance_threshold": var_threshold, "tests": short}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
