"""How close the ct-organs predictive moments are to the truth, for the default estimate (closed form where the logit
noise is small, samples elsewhere: `uqseg.ct.mc_estimate`) and for k = 30 samples of every voxel, on the shipped model.

Input: the `uqseg bench` volume (128³ at 2 mm from the shipped CT sample), slices 32–63 (a 32 × 128 × 128 window,
about half of it body). Reference: 1000 samples of every voxel (`sparse=False`; its own relative standard error on
a variance is √(2/999) ≈ 4.5 %). Measured on the summed organ variance Σ_{c≥1} Var_c (what `variance.nrrd` holds)
where the reference exceeds 1e-5, as |estimate / reference − 1|, and on the class probabilities as the largest
absolute difference; also the 50th / 90th / 99th percentiles of that variance by each estimate (what a percentile
threshold fitted on the maps sees) and the signed median and mean error of 30 samples. `--scales` repeats it with the logit noise of the same network output multiplied by each
factor (d × f², the low-rank scales × f), binned by the voxel's largest class-logit std s_max, to show where the
closed form stops being better than 30 samples (the gate LINEARISED_MAX_STD).

    python Training/measure_ct_closed_form.py --model Resources/Models/ct-organs-mob --out runs/ct_closed_form.json
    python Training/measure_ct_closed_form.py --run runs/i18/BtoA_mixture_of_bases --case CACHE/B.npz \
        --slices 100 116 --scales 1 --out runs/ct_closed_form_BtoA.json
    python Training/measure_ct_closed_form.py --run runs/i18/AtoB_mixture_of_bases --threshold-cache CACHE \
        --out runs/ct_threshold_AtoB.json

`--threshold-cache` instead measures the card's variance-threshold rule (`evaluate_ct_lopo.py`: the 90th percentile
of the summed organ variance over the run's training patients' voxels within 10 mm of an organ, validation slabs
excluded) with the default estimate, with 30 samples at every voxel (three noise seeds) and with
--reference-samples samples at every voxel.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from uqseg.bench import ct_bench_volume
from uqseg.ct.linearised_moments import LINEARISED_MAX_STD
from uqseg.ct.mc_estimate import mc_moments
from uqseg.ct.noise import NoiseField
from uqseg.ct.preprocess import normalise_hu
from uqseg.models.registry import ModelCard
from uqseg.tasks import TASKS

BINS = ((0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0), (1.0, 1.5), (1.5, 3.0))


def _errors(estimate: torch.Tensor, reference: torch.Tensor, on: torch.Tensor) -> dict:
    r = (estimate[on] / reference[on] - 1).abs()
    if r.numel() == 0:
        return {"voxels": 0}
    return {"voxels": int(r.numel()), "median": round(float(r.median()), 4), "p95": round(float(r.quantile(0.95)), 4)}


def _noise(seed: int) -> NoiseField:
    return NoiseField(seed=seed, tile=(8, 16, 16), layout_block=4)


def measure(dist, reference_k: int) -> dict:
    reference = mc_moments(dist, reference_k, _noise(7), sparse=False)
    t0 = time.perf_counter()
    default = mc_moments(dist, 30, _noise(1))
    t1 = time.perf_counter()
    mc30 = mc_moments(dist, 30, _noise(1), sparse=False)
    t2 = time.perf_counter()
    organ_var = lambda m: m.variance[1:].sum(0)
    v_ref = organ_var(reference)
    s_max = dist.marginal_variance()[0].clamp_min(0).sqrt().amax(0)
    out = {"default_ms": round((t1 - t0) * 1000, 1), "mc30_ms": round((t2 - t1) * 1000, 1),
           "active_fraction": default.active_fraction,
           "closed_form_share": round(float((s_max <= LINEARISED_MAX_STD).float().mean()), 4),
           "s_max_percentiles": {str(q): round(float(np.percentile(s_max.numpy(), q)), 3) for q in (50, 95, 99)},
           "probability_max_abs_error": {"default": round(float((default.mean - reference.mean).abs().max()), 5),
                                         "mc30": round(float((mc30.mean - reference.mean).abs().max()), 5)}}
    on = v_ref > 1e-5
    out["organ_variance_relative_error"] = {"default": _errors(organ_var(default), v_ref, on),
                                            "mc30": _errors(organ_var(mc30), v_ref, on)}
    out["organ_variance_percentiles"] = {  # over the voxels with reference > 1e-5: what a percentile threshold sees
        name: {str(q): float(np.percentile(v[on].numpy(), q)) for q in (50, 90, 99)}
        for name, v in (("reference", v_ref), ("default", organ_var(default)), ("mc30", organ_var(mc30)))}
    signed = (organ_var(mc30)[on] / v_ref[on] - 1)
    out["mc30_signed_relative_error"] = {"median": round(float(signed.median()), 4), "mean": round(float(signed.mean()), 4)}
    out["by_s_max"] = []
    for lo, hi in BINS:
        sel = on & (s_max > lo) & (s_max <= hi)
        if int(sel.sum()) < 50:
            continue
        out["by_s_max"].append({"s_max": [lo, hi], "default": _errors(organ_var(default), v_ref, sel),
                                "mc30": _errors(organ_var(mc30), v_ref, sel)})
    return out


def _window(args, hu_window):
    """(normalised window (1, 1, Z, Y, X), description): slices 32-63 of the bench volume, or --slices of a
    cache_ct_cases.py case (in-plane cropped to a multiple of 16 from the corner)."""
    if args.case is None:
        image = ct_bench_volume()
        return image.array[32:64], "bench volume z 32-63, 32 x 128 x 128"
    hu = np.load(args.case)["hu"].astype(np.float32)
    z0, z1 = args.slices
    y, x = hu.shape[1] // 16 * 16, hu.shape[2] // 16 * 16
    return hu[z0:z1, :y, :x], f"{args.case.name} z {z0}-{z1 - 1}, {z1 - z0} x {y} x {x}"


def threshold_check(model, cfg, cache: Path, reference_k: int) -> dict:
    """The variance threshold of `evaluate_ct_lopo.fit_ood` by each estimate (module docstring)."""
    from scipy import ndimage

    from evaluate_ct_lopo import cached_image, training_voxels
    from uqseg.ct.inference import predict_ct

    prep = cfg["preprocessing"]
    estimates = {"default": dict(samples=30, seed=0)}
    estimates.update({f"mc30_seed{s}": dict(samples=30, seed=s, sparse=False) for s in (0, 1, 2)})
    estimates[f"mc{reference_k}"] = dict(samples=reference_k, seed=7, sparse=False)
    variances = {name: [] for name in estimates}
    for case, info in cfg["split"]["train_cases"].items():
        image, label, _ = cached_image(cache / f"{case}.npz")
        keep = training_voxels(label.shape, info.get("val_slices"))
        near = None
        for name, kw in estimates.items():
            pred = predict_ct(image, model, prep["spacing_mm"], prep["hu_window"], cfg["organs"], **kw)
            if near is None:
                near = ndimage.binary_dilation((label > 0) | (pred.work_label > 0), iterations=5) & keep
            variances[name].append(pred.work_variance[1:].sum(0)[near])
            print(case, name, flush=True)
    return {name: float(np.percentile(np.concatenate(v), 90)) for name, v in variances.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, help="a model folder (model.json + weights)")
    ap.add_argument("--run", type=Path, help="or a train_ct.py run folder (config.json + weights)")
    ap.add_argument("--case", type=Path, default=None, help="a cache_ct_cases.py .npz instead of the bench volume")
    ap.add_argument("--slices", type=int, nargs=2, default=(0, 16), help="z range of --case (multiple of 8)")
    ap.add_argument("--threshold-cache", type=Path, default=None, help="measure the variance-threshold rule instead")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--reference-samples", type=int, default=1000)
    ap.add_argument("--scales", type=float, nargs="*", default=[1.0, 2.0, 3.0])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.run is not None:
        from ct_runs import load_run

        model, cfg = load_run(args.run)
        name, hu_window = f"run {args.run.name}", tuple(cfg["preprocessing"]["hu_window"])
    else:
        card = ModelCard(args.model, json.loads((args.model / "model.json").read_text()), source="shipped")
        model = TASKS["ct-organs"].load(card, "cpu")
        name, hu_window = f"{card.id} {card.version}", tuple(card["preprocessing"]["hu_window"])
    if args.threshold_cache is not None:
        with torch.inference_mode():
            result = {"model": name, "rule": "90th percentile of the summed organ variance near organs, training "
                      "patients (Training/evaluate_ct_lopo.py)",
                      "thresholds": threshold_check(model, cfg, args.threshold_cache, args.reference_samples)}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
        print(json.dumps(result))
        return
    hu, where = _window(args, hu_window)
    x = torch.from_numpy(normalise_hu(np.ascontiguousarray(hu), hu_window))[None, None]
    with torch.inference_mode():
        base = model(x.contiguous())
        result = {"model": name, "window": where, "reference_samples": args.reference_samples,
                  "gate_nats": LINEARISED_MAX_STD, "scales": {}}
        for f in args.scales:
            dist = dataclasses.replace(base, log_var=base.log_var + 2 * math.log(f), factor=base.factor * f)
            result["scales"][str(f)] = measure(dist, args.reference_samples)
            print(f, json.dumps(result["scales"][str(f)]["organ_variance_relative_error"]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
