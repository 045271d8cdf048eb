"""Compare the five covariance forms of a two-patient ct-organs model on its validation slabs, and say which
differences are within noise (issue 18; MoB paper Table 4).

    python Training/compare_ct_forms.py --runs runs/long_det runs/long_diagonal runs/long_lowrank \
        runs/long_single_basis runs/long_mixture_of_bases --cache CACHE --out runs/forms

The runs (train_ct.py --cache output folders) share one backbone and the stage-2 settings; each is evaluated with
the task's inference (`uqseg.ct.inference.predict_ct`: sliding windows, k = --samples logit samples from one
network pass) on the working-grid caches of cache_ct_cases.py, over the validation slabs of its split (the
`val_slices` of every training patient: never sampled for training). Per form, on the 2 mm working grid:
- Dice per organ (None where the organ is in neither prediction nor reference on the slabs) and their mean;
- NLL (nats / voxel), ECE and MCE (15 equal-width confidence bins, count-weighted) of the MC mean probabilities
  (Eq. 14) over the organ region (voxels within 10 mm of a true or predicted organ), and the ECE over all slab voxels;
- the AUROC of the predictive variance (sum over organ classes) for the voxel errors in the organ region.
Noise, two kinds:
- evaluation noise: a paired bootstrap over the slabs' axial slices (--boot resamples, slices drawn with
  replacement within each slab, the same draw for every form): per metric the 95 % interval of
  (form − mixture-of-bases);
- training noise (--repeat RUN: the mixture-of-bases run again with another seed, all else equal): per metric
  |repeat − mixture-of-bases|, what a different seed alone changes.
A difference is "within noise" when its bootstrap interval holds 0 or it is no larger than the training noise of
that metric. Writes comparison.json and comparison.md (the table with the marks and the intervals).
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
from evaluate_ct_lopo import cached_image
from uqseg.ct.inference import predict_ct
from uqseg.metrics.calibration import auroc

LABELS = {"deterministic": "Deterministic", "diagonal": "Diagonal", "lowrank": "Low-rank",
          "single_basis": "Single-Basis", "mixture_of_bases": "Mixture-of-Bases"}
BINS = 15
REFERENCE = "mixture_of_bases"


def slice_stats(prob: np.ndarray, var: np.ndarray, truth: np.ndarray, classes: int) -> list[dict]:
    """Per axial slice of a (C, z, y, x) slab: the sums every metric is made of, so that a bootstrap over slices
    only adds them up."""
    label = prob.argmax(0)
    near = ndimage.binary_dilation((truth > 0) | (label > 0), iterations=5)  # 5 voxels = 10 mm
    conf = prob.max(0)
    p_true = np.take_along_axis(prob, truth[None].astype(np.int64), 0)[0]
    out = []
    for z in range(truth.shape[0]):
        m, c, ok = near[z], conf[z], label[z] == truth[z]
        b = np.minimum((c * BINS).astype(int), BINS - 1)
        row = {"inter": [int(((label[z] == k) & (truth[z] == k)).sum()) for k in range(1, classes)],
               "sums": [int((label[z] == k).sum() + (truth[z] == k).sum()) for k in range(1, classes)],
               "nll": float(-np.log(np.clip(p_true[z][m], 1e-7, 1)).sum()), "n_near": int(m.sum()),
               "bin_n": np.bincount(b[m], minlength=BINS), "bin_conf": np.bincount(b[m], c[m], BINS),
               "bin_ok": np.bincount(b[m], ok[m], BINS),
               "all_n": np.bincount(b.ravel(), minlength=BINS), "all_conf": np.bincount(b.ravel(), c.ravel(), BINS),
               "all_ok": np.bincount(b.ravel(), ok.ravel(), BINS),
               "var": var[z][m].astype(np.float32), "err": ~ok[m]}
        out.append(row)
    return out


def metrics(rows: list[dict], organs: list[str], stochastic: bool) -> dict:
    inter = np.sum([r["inter"] for r in rows], 0)
    sums = np.sum([r["sums"] for r in rows], 0)
    dice = {o: (None if s == 0 else float(2 * i / s)) for o, i, s in zip(organs, inter, sums)}
    present = [v for v in dice.values() if v is not None]

    def ece_mce(n, conf, ok):
        n, conf, ok = (np.sum([r[k] for r in rows], 0) for k in (n, conf, ok))
        filled = n > 0
        gap = np.abs(conf[filled] - ok[filled]) / n[filled]
        return float((gap * n[filled]).sum() / n.sum()), float(gap.max())

    ece, mce = ece_mce("bin_n", "bin_conf", "bin_ok")
    ece_all, _ = ece_mce("all_n", "all_conf", "all_ok")
    out = {"dice": dice, "mean_dice": float(np.mean(present)) if present else None,
           "nll_organ_region": float(sum(r["nll"] for r in rows) / max(1, sum(r["n_near"] for r in rows))),
           "ece_organ_region": ece, "mce_organ_region": mce, "ece_slab": ece_all, "variance_auroc": None}
    if stochastic:
        var = np.concatenate([r["var"] for r in rows])
        err = np.concatenate([r["err"] for r in rows])
        out["variance_auroc"] = float(auroc(var, err)) if 0 < err.sum() < err.size else None
    return out


SCALARS = ("mean_dice", "nll_organ_region", "ece_organ_region", "mce_organ_region", "ece_slab", "variance_auroc")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, nargs="+", required=True)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--repeat", type=Path, default=None, help="the mixture-of-bases run again with another seed")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    per_form, organs, slabs = {}, None, None
    runs = [(run, False) for run in args.runs] + ([(args.repeat, True)] if args.repeat else [])
    for run, is_repeat in runs:
        model, cfg = load_run(run)
        organs = cfg["organs"]
        prep = cfg["preprocessing"]
        these = [(n, tuple(i["val_slices"])) for n, i in cfg["split"]["train_cases"].items() if i.get("val_slices")]
        if slabs is not None and these != slabs:
            raise SystemExit(f"{run}: validation slabs {these} differ from the first run's {slabs}")
        slabs = these
        t0 = time.perf_counter()
        rows = []
        for name, (z0, z1) in slabs:
            image, label, _ = cached_image(args.cache / f"{name}.npz")
            pred = predict_ct(image, model, prep["spacing_mm"], prep["hu_window"], organs,
                              samples=0 if cfg["form"] == "deterministic" else args.samples)
            rows.append(slice_stats(pred.work_probability[:, z0:z1], pred.work_variance[1:, z0:z1].sum(0),
                                    label[z0:z1], len(organs) + 1))
        key = "repeat" if is_repeat else cfg["form"]
        if key == "repeat" and cfg["form"] != REFERENCE:
            raise SystemExit(f"{run}: --repeat must be a {REFERENCE} run, not {cfg['form']}")
        per_form[key] = {"run": str(run), "rows": rows, "seconds": round(time.perf_counter() - t0, 1),
                         "steps": cfg["training"].get("steps_done", cfg["training"]["steps"]),
                         "seed": cfg["training"].get("seed", cfg.get("seed"))}
        print(f"{run.name}: evaluated in {per_form[key]['seconds']} s", flush=True)
    rng = np.random.default_rng(args.seed)
    draws = [[rng.integers(0, len(slab), len(slab)) for slab in per_form[REFERENCE]["rows"]] for _ in range(args.boot)]
    flat_of = {k: [r for slab in f["rows"] for r in slab] for k, f in per_form.items()}
    reference = metrics(flat_of[REFERENCE], organs, True)
    training_noise = None
    if "repeat" in per_form:
        again = metrics(flat_of["repeat"], organs, True)
        training_noise = {k: (None if again[k] is None or reference[k] is None else abs(again[k] - reference[k]))
                          for k in SCALARS}
    reference_drawn = [metrics([per_form[REFERENCE]["rows"][s][i] for s, idx in enumerate(d) for i in idx], organs, True)
                       for d in draws]
    result = []
    for form, f in per_form.items():
        if form == "repeat":
            continue
        point = metrics(flat_of[form], organs, form != "deterministic")
        diffs = {k: [] for k in SCALARS}
        if form != REFERENCE:
            for d, ref in zip(draws, reference_drawn):
                mine = metrics([f["rows"][s][i] for s, idx in enumerate(d) for i in idx], organs, form != "deterministic")
                for k in SCALARS:
                    if mine[k] is not None and ref[k] is not None:
                        diffs[k].append(mine[k] - ref[k])
        ci = {k: ([float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] if v else None) for k, v in diffs.items()}

        def within(k):
            if ci[k] is None:
                return None
            if ci[k][0] <= 0 <= ci[k][1]:
                return True
            noise = None if training_noise is None else training_noise[k]
            return bool(noise is not None and abs(point[k] - reference[k]) <= noise)

        result.append({"form": form, "run": f["run"], "steps": f["steps"], "seconds": f["seconds"],
                       "samples": 0 if form == "deterministic" else args.samples, **point,
                       "minus_mixture_of_bases_95ci": ci, "within_noise": {k: within(k) for k in SCALARS}})
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"slabs": [[n, z0, z1] for n, (z0, z1) in slabs], "boot": args.boot, "samples": args.samples,
            "organs": organs, "forms": result, "training_noise": training_noise,
            "repeat": None if "repeat" not in per_form else {"run": per_form["repeat"]["run"],
                                                             "seed": per_form["repeat"]["seed"]}}
    (args.out / "comparison.json").write_text(json.dumps(meta, indent=1))
    (args.out / "comparison.md").write_text(table(meta))
    print(table(meta))
    return 0


def _fmt(v, nd):
    return "—" if v is None else f"{v:.{nd}f}"


def table(meta: dict) -> str:
    organs = meta["organs"]
    head = ["form", *[f"Dice {o}" for o in organs], "mean Dice", "NLL (organ region)", "ECE (organ region)",
            "MCE (organ region)", "ECE (slab)", "variance AUROC"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    nd = {"mean_dice": 3, "nll_organ_region": 4, "ece_organ_region": 4, "mce_organ_region": 3, "ece_slab": 4,
          "variance_auroc": 3}
    for r in meta["forms"]:
        cells = [LABELS[r["form"]], *[_fmt(r["dice"][o], 3) for o in organs]]
        for k in SCALARS:
            c = r["minus_mixture_of_bases_95ci"][k]
            mark = "" if c is None else (" (≈)" if r["within_noise"][k] else " (≠)")
            cells.append(_fmt(r[k], nd[k]) + mark)
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    noise = meta.get("training_noise")
    lines.append(f"(≈): within noise — the 95 % interval of the difference to Mixture-of-Bases holds 0 (paired "
                 f"bootstrap over the axial slices of the validation slabs "
                 f"{', '.join(f'{n} {a}-{b - 1}' for n, a, b in meta['slabs'])}, {meta['boot']} resamples)"
                 + (" or the difference is no larger than what another training seed changes" if noise else "")
                 + f"; (≠): outside both. k = {meta['samples']} samples.")
    if noise:
        lines.append("")
        lines.append(f"Training noise (Mixture-of-Bases again with seed {meta['repeat']['seed']}, "
                     f"{meta['repeat']['run']}): " + "; ".join(f"{k} {v:.4f}" for k, v in noise.items() if v is not None))
    lines.append("")
    for r in meta["forms"]:
        if r["form"] == REFERENCE:
            continue
        parts = [f"{k} [{c[0]:+.4f}, {c[1]:+.4f}]" for k, c in r["minus_mixture_of_bases_95ci"].items() if c]
        lines.append(f"- {LABELS[r['form']]} − Mixture-of-Bases, 95 % intervals: " + "; ".join(parts))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
