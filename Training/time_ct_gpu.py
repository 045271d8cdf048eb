"""Absolute time of ct-organs inference on a 128³ working-grid volume with k = 30 samples and the OOD map, on a GPU
(issue 18, point 5) — the same `predict_ct` as the task, minus the resampling (the volume IS the working grid).

    python Training/time_ct_gpu.py --run RUN --cache CACHE [--ood ood.safetensors] --device cuda --out timing.json

Volume: patient B of cache_ct_cases.py (the abdomen-to-pelvis example CT on the 2 mm grid), its 128 most cranial
slices, centre-cropped (edge-padded with air) to 128 × 128 in-plane: 128³ voxels at 2 mm. Without --ood the OOD
bank is fitted on the volume itself (values do not matter for the time). Times: the median of
--repeats calls after two warm-ups, with torch.cuda.synchronize — deterministic pass (samples = 0), k = 30 without
and with the OOD map.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from ct_runs import load_run
from uqseg.ct.inference import predict_ct
from uqseg.ct.ood import ContextKnn, fit_context_knn
from uqseg.io.image import Image


def volume_128(cache: Path, size: int = 128) -> Image:
    d = np.load(cache / "B.npz")
    hu = d["hu"].astype(np.float32)[-size:]
    out = np.full((size, size, size), -1024.0, np.float32)
    z, y, x = hu.shape
    y0, x0 = max(0, (y - size) // 2), max(0, (x - size) // 2)
    part = hu[:, y0:y0 + size, x0:x0 + size]
    out[:part.shape[0], :part.shape[1], :part.shape[2]] = part
    return Image(out, spacing=(2.0, 2.0, 2.0), origin=(0.0, 0.0, 0.0), direction=np.eye(3),
                 meta={"modality": "CT", "path": "128^3 from patient B"})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--ood", type=Path, default=None)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=128, help="edge of the cubic volume (smoke tests: smaller)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    dev = torch.device(args.device)
    model, cfg = load_run(args.run, dev)
    prep, organs = cfg["preprocessing"], cfg["organs"]
    image = volume_128(args.cache, args.size)
    knn = ContextKnn.load(args.ood) if args.ood else fit_context_knn([(image.array, None)])
    knn.bank = knn.bank.to(dev)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)

    def timed(**kw):
        for _ in range(2):
            predict_ct(image, model, prep["spacing_mm"], prep["hu_window"], organs, dev, **kw)
        sync()
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            pred = predict_ct(image, model, prep["spacing_mm"], prep["hu_window"], organs, dev, **kw)
            sync()
            times.append((time.perf_counter() - t0) * 1000)
        return round(statistics.median(times), 1), pred

    single, _ = timed(samples=0)
    unc, _ = timed(samples=args.samples)
    unc_ood, pred = timed(samples=args.samples, ood=knn)
    res = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else str(dev), "torch": torch.__version__,
           "volume": f"{args.size}^3 at 2 mm (patient B, working grid, no resampling)", "run": args.run.name,
           "form": cfg["form"], "classes": cfg["architecture"]["classes"], "filters": cfg["architecture"]["filters"],
           "samples": args.samples, "single_pass_ms": single, "uncertainty_ms": unc,
           "uncertainty_with_ood_ms": unc_ood, "ratio_with_ood": round(unc_ood / single, 3),
           "active_fraction": pred.active_fraction, "windows": pred.windows, "repeats": args.repeats}
    print(json.dumps(res), flush=True)
    if args.out:
        args.out.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
