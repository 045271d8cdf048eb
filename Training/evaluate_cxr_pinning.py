"""The simulated user for the chest X-ray pinned-node correction (uqseg/correction/cxr_pinned.py) on
the JSRT splits, written to a JSON:

for every image and every organ separately, the 3 nodes with the largest node std (½ (σ_x + σ_y) of the 50-sample
inference) are pinned to their TRUE positions; reported, for the OTHER nodes of that organ, the mean Euclidean error
(px of the 512 × 512 images = input pixels) before / after the refit, the fraction of the (image, organ) cases that
improved, the mean node std of the pinned nodes and of their ring neighbours before / after, and the refit time
(image already encoded; torch threads as given; median and max over the cases) and the encode time.

Variants (ablation of the model in cxr_pinned.py), each on every split asked for:
  chosen              the defaults: latent MAP under q(z|x) + smooth ring residual + snap
  latent_map_only     no ring residual (a → 0): the organ-restricted latent MAP + snap
  ring_residual_only  the latent frozen at μ (λ → 0): kriging of the pins' residual along the ring + snap
                      (the std collapses to ~0: no latent samples are left)
  snap_only           both off: only the pinned nodes move, blended into their neighbours (ℓ_s = 1 node)
`--grid` adds the tuning grid over (λ, a) and (ℓ, τ) on the train split (the defaults were chosen from it).

    python Training/evaluate_cxr_pinning.py --splits train val --grid \
        --out Resources/Models/cxr-hybridgnet-vae/pinning.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from datasets.jsrt_landmarks import list_cases, load_case
from uqseg.correction import cxr_pinned as cp
from uqseg.cxr.inference import predict_landmarks
from uqseg.io.image import Image
from uqseg.models.registry import find_model
from uqseg.tasks import TASKS

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
OFF = 1e-8  # a tuning constant "switched off" (a variance scale or an amplitude → 0)
VARIANTS = {
    "chosen": {},
    "latent_map_only": {"amplitude_ref": OFF},
    "ring_residual_only": {"prior_scale": OFF},
    "snap_only": {"prior_scale": OFF, "amplitude_ref": OFF},
}
GRID = ([{"prior_scale": p, "amplitude_ref": a} for p in (0.25, 0.5, 1.0) for a in (8.0, 12.0, 16.0)]
        + [{"length_nodes": ell, "tolerance_ref": t} for ell in (2.5, 3.0, 3.5, 4.0) for t in (1.0, 2.0, 4.0)])


def prepare(model, root: Path, names: list[str], samples: int, seed: int):
    """[(name, LandmarkResult, EncodedImage, truth (120, 2))] and the encode times (ms)."""
    out, enc_ms = [], []
    for n in names:
        img, truth, _ = load_case(root, n)
        result = predict_landmarks(Image(img), model, samples=samples, seed=seed)
        t0 = time.perf_counter()
        enc = cp.encode_image(model, img)
        enc_ms.append(1e3 * (time.perf_counter() - t0))
        out.append((n, result, enc, truth))
    return out, enc_ms


def run_variant(model, cases, samples: int, seed: int, **tuning):
    rows = []
    for name, result, enc, truth in cases:
        for r in cp.evaluate_case(model, enc, truth, result, k=3, samples=samples, seed=seed, **tuning):
            rows.append({"image": name, **r})
    return rows, cp.summarise(rows)


def rounded(x, nd=4):
    if isinstance(x, float):
        return round(x, nd)
    if isinstance(x, dict):
        return {k: rounded(v, nd) for k, v in x.items()}
    if isinstance(x, list):
        return [rounded(v, nd) for v in x]
    return x


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=SHARED / "cxr_jsrt")
    ap.add_argument("--model", default=None, help="model id (default: the default cxr-landmarks model)")
    ap.add_argument("--splits", nargs="+", default=["val"], choices=["train", "val"])
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0, help="first N images of each split (0 = all)")
    ap.add_argument("--grid", action="store_true", help="also the tuning grid on the train split")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    card = find_model("cxr-landmarks", args.model)
    model = TASKS["cxr-landmarks"].load(card, "cpu")
    splits = list_cases(args.data)
    report = {
        "task": "cxr-landmarks", "model": {"id": card.id, "version": card.version},
        "protocol": ("simulated user: per image and organ, the 3 highest-std nodes pinned to the truth; "
                     "error = mean Euclidean distance of the organ's OTHER nodes to the truth, px of the 512x512 "
                     "JSRT images (= input pixels); std = node std 0.5 (std_x + std_y), px; neighbours = the ring "
                     "neighbours of the pinned nodes that are not pinned; refit_ms with the image already encoded"),
        "method": ("uqseg.correction.cxr_pinned.refit_with_pins: y = f_o(z) + e, z ~ N(mu, lambda sigma^2) "
                   "(the encoder's q(z|x)), e ~ GP(0, a^2 exp(-d^2 / 2 l^2)) along the organ's ring; Gauss-Newton "
                   "MAP of z with e marginalised at the pins (tolerance tau); Laplace posterior resampled with the "
                   "inference's seeded eps and decoded; each sample's residual at the pins kriged along the ring; "
                   "pinned nodes snapped exactly (rest blended into their ring neighbours); only the pinned organ "
                   "changes"),
        "defaults": {"prior_scale": cp.PRIOR_SCALE, "amplitude_ref_px": cp.RESIDUAL_AMPLITUDE_REF,
                     "length_nodes": cp.RESIDUAL_LENGTH_NODES, "tolerance_ref_px": cp.PIN_TOLERANCE_REF,
                     "gauss_newton_steps": cp.GAUSS_NEWTON_STEPS, "snap_length_nodes": cp.SNAP_LENGTH_NODES},
        "samples": args.samples, "seed": args.seed,
        "timing_environment": {"device": "cpu", "torch_threads": args.threads, "torch": torch.__version__,
                               "machine": platform.processor() or platform.machine()},
        "splits": {},
    }
    prepared = {}
    for split in args.splits:
        names = splits[split][: args.limit or None]
        cases, enc_ms = prepare(model, args.data, names, args.samples, args.seed)
        prepared[split] = cases
        block = {"images": len(names), "encode_ms_median": float(np.median(enc_ms)), "variants": {}}
        for vname, tuning in VARIANTS.items():
            rows, summary = run_variant(model, cases, args.samples, args.seed, **tuning)
            block["variants"][vname] = {"tuning": tuning, **summary}
            if vname == "chosen":
                block["all_pins_exact"] = all(r["pins_exact"] for r in rows)
                block["other_organs_unchanged"] = all(r["other_organs_unchanged"] for r in rows)
                if split == "val":
                    block["per_case"] = [{k: r[k] for k in ("image", "organ", "pinned", "pinned_error_before_px",
                                                         "other_error_before_px", "other_error_after_px",
                                                         "pinned_std_before_px", "pinned_std_after_px",
                                                         "refit_ms")} for r in rows]
            print(split, vname, json.dumps(rounded({k: summary[k] for k in (
                "other_error_before_px", "other_error_after_px", "relative_change", "fraction_improved",
                "pinned_std_before_px", "pinned_std_after_px", "refit_ms_median")}, 3)), flush=True)
        report["splits"][split] = block
    if args.grid:
        cases = prepared.get("train") or prepare(model, args.data, splits["train"][: args.limit or None],
                                                 args.samples, args.seed)[0]
        grid = []
        for tuning in GRID:
            _, s = run_variant(model, cases, args.samples, args.seed, **tuning)
            grid.append({"tuning": tuning, **{k: s[k] for k in ("other_error_before_px", "other_error_after_px",
                                                                  "relative_change", "fraction_improved",
                                                                  "pinned_std_after_px", "neighbour_std_after_px")}})
            print("grid", json.dumps(rounded(grid[-1], 3)), flush=True)
        report["train_grid"] = grid
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rounded(report), indent=2) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
