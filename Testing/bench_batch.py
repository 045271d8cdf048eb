"""Benchmark of `uqseg batch` against `uqseg predict` on the same images (a script, not a test: timings never are).

    python Testing/bench_batch.py --task cxr-landmarks --images ../shared/data/cxr_jsrt/images --count 100 \
        [--workers 1 2] [--per-case-files] [--json]

Runs, one after the other, each from a fresh process and into a fresh folder:
- `uqseg predict --task T <the images> --out …` (one process, torch's default threads: all cores);
- `uqseg batch --task T <folder> --out … --workers W --cpus-per-worker 1` for each W (an embedded local Ray), and
  with `--per-case-files` the same again writing every file `uqseg predict` writes (the like-for-like comparison:
  without it the batch writes table rows only, no segmentation, preview or markups per case).
Reports per run the wall-clock seconds of the whole command (Ray start, model loads and writing included), images/s
over that wall time, and for the batch runs the steady rate — cases/s between the first and the last row's
`finished_at`, which leaves out Ray's start and the model loads — and each rate's ratio to `uqseg predict`'s.
The machine's load matters: say next to the numbers what else was running.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(cmd: list, env=None) -> float:
    t0 = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if run.returncode not in (0, 2):
        raise SystemExit(f"error: {' '.join(cmd[:4])}…: exit {run.returncode}: {run.stderr[-2000:]}")
    return seconds


def steady_rate(cases_dir: Path) -> float:
    import pandas as pd

    t = pd.read_parquet(cases_dir, columns=["finished_at"]).finished_at.sort_values()
    span = (t.iloc[-1] - t.iloc[0]).total_seconds()
    return (len(t) - 1) / span if span > 0 else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="cxr-landmarks")
    ap.add_argument("--images", required=True, help="folder of 2-D images")
    ap.add_argument("--count", type=int, default=100, help="the first N images of the folder (sorted)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--per-case-files", action="store_true",
                    help="also time the batch runs with --per-case-files (the same files as uqseg predict writes)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    files = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in (".png", ".jpg", ".dcm"))[:args.count]
    uqseg = [sys.executable, "-m", "uqseg.cli"]
    results = {"task": args.task, "images": len(files), "cpu_count": os.cpu_count(),
               "load_average_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="uqseg-bench-") as tmp:
        tmp = Path(tmp)
        inputs = tmp / "in"
        inputs.mkdir()
        for f in files:
            (inputs / f.name).symlink_to(f.absolute())
        seconds = timed(uqseg + ["predict", "--task", args.task, *map(str, files), "--out", str(tmp / "predict")])
        results["predict"] = {"seconds": round(seconds, 1), "images_per_s": round(len(files) / seconds, 2)}
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        env["RAY_USAGE_STATS_ENABLED"] = "0"
        runs = [(w, False) for w in args.workers] + [(w, True) for w in args.workers if args.per_case_files]
        for w, files_too in runs:
            out = tmp / f"batch{w}{'-files' if files_too else ''}"
            seconds = timed(uqseg + ["batch", "--task", args.task, str(inputs), "--out", str(out), "--workers", str(w),
                                     "--cpus-per-worker", "1"] + (["--per-case-files"] if files_too else []), env)
            rate, steady = len(files) / seconds, steady_rate(out / "cases")
            results[f"batch_{w}_workers{'_per_case_files' if files_too else ''}"] = {
                "seconds": round(seconds, 1), "images_per_s": round(rate, 2), "steady_images_per_s": round(steady, 2),
                "ratio_to_predict": round(rate / results["predict"]["images_per_s"], 2),
                "steady_ratio_to_predict": round(steady / results["predict"]["images_per_s"], 2)}
    results["load_average_after"] = os.getloadavg()
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for name, r in results.items():
            print(f"{name}: {r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
