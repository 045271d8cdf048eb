"""How close the ct-organs predictive moments are to the truth, for the default estimate (closed form where the logit
noise is small, samples elsewhere: `uqseg.ct.mc_estimate`) and for k = 30 samples of every voxel, on the shipped model.

Input: the `uqseg bench` volume (128³ at 2 mm from the shipped CT sample), slices 32–63 (a 32 × 128 × 128 window,
about half of it body). Reference: 1000 samples of every voxel (`sparse=False`; its own relative standard error on
a variance is √(2/999) ≈ 4.5 %). Measured on the summed organ variance Σ_{c≥1} Var_c (what `variance.nrrd` holds)
where the reference exceeds 1e-5, as |estimate / reference − 1|, and on the class probabilities as the largest
absolute difference. `--scales` repeats it with the logit noise of the same network output multiplied by each
factor (d × f², the low-rank scales × f), binned by the voxel's largest class-logit std s_max, to show where the
closed form stops being better than 30 samples (the gate LINEARISED_MAX_STD).

    python Training/measure_ct_closed_form.py --model Resources/Models/ct-organs-mob --out runs/ct_closed_form.json
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
    out["by_s_max"] = []
    for lo, hi in BINS:
        sel = on & (s_max > lo) & (s_max <= hi)
        if int(sel.sum()) < 50:
            continue
        out["by_s_max"].append({"s_max": [lo, hi], "default": _errors(organ_var(default), v_ref, sel),
                                "mc30": _errors(organ_var(mc30), v_ref, sel)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--reference-samples", type=int, default=1000)
    ap.add_argument("--scales", type=float, nargs="*", default=[1.0, 2.0, 3.0])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    card = ModelCard(args.model, json.loads((args.model / "model.json").read_text()), source="shipped")
    model = TASKS["ct-organs"].load(card, "cpu")
    image = ct_bench_volume()
    x = torch.from_numpy(normalise_hu(image.array, tuple(card["preprocessing"]["hu_window"])))[None, None]
    with torch.inference_mode():
        base = model(x[:, :, 32:64].contiguous())
        result = {"model": f"{card.id} {card.version}", "window": "bench volume z 32-63, 32 x 128 x 128",
                  "reference_samples": args.reference_samples, "gate_nats": LINEARISED_MAX_STD, "scales": {}}
        for f in args.scales:
            dist = dataclasses.replace(base, log_var=base.log_var + 2 * math.log(f), factor=base.factor * f)
            result["scales"][str(f)] = measure(dist, args.reference_samples)
            print(f, json.dumps(result["scales"][str(f)]["organ_variance_relative_error"]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
