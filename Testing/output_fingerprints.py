"""Fingerprints of every file `uqseg predict` writes for each task on the shipped sample data.

They pin the engine's outputs: `test_task_outputs_unchanged.py` runs the four tasks on `Resources/SampleData` and
compares with `golden/sample_outputs.json`, so a refactoring that changes any output (a voxel, a node, a number in a
summary, a pixel of a preview) fails. After an INTENDED change of the outputs, record them again and say why in the
commit:

    .venv/bin/python Testing/output_fingerprints.py --write [--task ct-organs ...]

What is compared, per file (paths relative to the output folder):
- NRRD / .seg.nrrd: sizes, space directions and origin, dtype; integer data by its sha256; float data by sum, sum
  of squares, min, max and the number of non-zero values (relative tolerance FLOAT_RTOL);
- CSV: every cell — text exactly, numbers within CSV_RTOL relative (or CSV_ATOL absolute);
- JSON (summary.json, .mrk.json): every value except wall-clock timings and paths, numbers within JSON_RTOL relative;
- PNG: the shape, and the mean of each 32 × 32 block per channel within PNG_TOL grey levels.

Why tolerances at all: torch's CPU kernels differ between processors (vector width, oneDNN / MKL code paths), so the
same code and weights give float32 results that differ in the last bits from machine to machine. Measured between the
AMD EPYC the fingerprints were first recorded on and an Intel Xeon (2026-12-04): node and boundary positions 1e-8 to
1e-7 relative, ct-organs' variance map 2.4e-6 (sum) to 2.3e-5 (max), its image_uncertainty 5.7e-6, previews a few
pixels by one grey level; labels identical. The tolerances sit above that noise and far below a real change (a
boundary or node moved by 0.01 px, a changed voxel, a number off by 0.1 %).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).with_name("golden") / "sample_outputs.json"
SAMPLES = REPO / "Resources" / "SampleData"

#: task → its input in Resources/SampleData (the CT as its DICOM series, to run the series loader too).
TASK_INPUTS = {
    "mammo-pectoral": "mammo-mlo/mlo.dcm",
    "mammo-breast": "mammo-mlo/mlo.dcm",
    "cxr-landmarks": "cxr-chest/chest.dcm",
    "ct-organs": "ct-abdomen/dicom",
}
FLOAT_RTOL = 1e-4
JSON_RTOL = 1e-4
CSV_RTOL, CSV_ATOL = 1e-5, 1.5e-3  # ATOL: one unit of the 3rd decimal the CSVs print, so a flipped rounding passes
PNG_BLOCK, PNG_TOL = 32, 1.0


def run_task(task: str, out: Path) -> Path:
    """`uqseg predict` on the task's sample, on the CPU, seed 0; returns the output folder."""
    cmd = [sys.executable, "-m", "uqseg.cli", "predict", "--task", task, str(SAMPLES / TASK_INPUTS[task]),
           "--out", str(out), "--device", "cpu", "--seed", "0"]
    env = dict(os.environ, PYTHONPATH=str(REPO / "UQSegmentation"))
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return out


def _volatile(key: str) -> bool:
    """Keys whose values change from run to run or machine to machine: timings and file-system paths."""
    parts = [p.split("[")[0] for p in key.split(".")]
    return any(p.startswith("timings") or p.endswith("_ms") or p in ("input", "path", "source", "folder", "out_dir")
               for p in parts)


def flatten_json(value, prefix=""):
    """Nested JSON → {"a.b[2].c": leaf value}."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(flatten_json(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list):
        out = {}
        for k, v in enumerate(value):
            out.update(flatten_json(v, f"{prefix}[{k}]"))
        return out
    return {prefix: value}


def fingerprint_file(path: Path) -> dict:
    name = path.name
    if name.endswith(".nrrd"):
        import nrrd

        data, header = nrrd.read(str(path))
        geometry = {key: [int(v) for v in header[key]] if key == "sizes"
                    else [None if isinstance(v, float) and math.isnan(v) else v
                          for v in np.asarray(header[key], dtype=float).ravel().tolist()]
                    for key in ("sizes", "space directions", "space origin") if key in header}
        entry = {"kind": "nrrd", "dtype": str(data.dtype), "geometry": geometry}
        if np.issubdtype(data.dtype, np.integer):
            entry["sha256"] = hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()
        else:
            values = data.astype(np.float64)
            entry["stats"] = [float(values.sum()), float((values ** 2).sum()), float(values.min()),
                              float(values.max()), int(np.count_nonzero(values))]
        return entry
    if name.endswith(".csv"):
        import csv

        with open(path, newline="", encoding="utf-8") as fh:
            return {"kind": "csv", "rows": [row for row in csv.reader(fh)]}
    if name.endswith(".json"):
        flat = flatten_json(json.loads(path.read_text()))
        return {"kind": "json", "values": {k: v for k, v in sorted(flat.items()) if not _volatile(k)}}
    if name.endswith(".png"):
        from PIL import Image

        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGBA"))
        return {"kind": "png", "shape": list(pixels.shape), "block_means": png_block_means(pixels)}
    return {"kind": "other", "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def png_block_means(pixels: np.ndarray) -> list:
    """Mean grey level of each PNG_BLOCK × PNG_BLOCK block per channel (edge blocks partial), rounded to 0.01."""
    h, w, c = pixels.shape
    rows = [pixels[i:i + PNG_BLOCK] for i in range(0, h, PNG_BLOCK)]
    return [[np.round(r[:, j:j + PNG_BLOCK].reshape(-1, c).mean(axis=0), 2).tolist() for j in range(0, w, PNG_BLOCK)]
            for r in rows]


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return None


def csv_differences(name: str, golden_rows: list, rows: list) -> list[str]:
    if len(golden_rows) != len(rows):
        return [f"{name}: {len(golden_rows)} rows -> {len(rows)}"]
    problems = []
    for i, (g, n) in enumerate(zip(golden_rows, rows)):
        if len(g) != len(n):
            problems.append(f"{name}: row {i} {g} -> {n}")
            continue
        for a, b in zip(g, n):
            x, y = _number(a), _number(b)
            same = (a == b) if x is None or y is None else (
                (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=CSV_RTOL, abs_tol=CSV_ATOL))
            if not same:
                problems.append(f"{name}: row {i} {g} -> {n}")
                break
    return problems


def fingerprint_folder(folder: Path) -> dict:
    return {str(p.relative_to(folder).as_posix()): fingerprint_file(p)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _same_number(a, b, rtol) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return a == b
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return math.isclose(a, b, rel_tol=rtol, abs_tol=1e-12)


def differences(golden: dict, now: dict) -> list[str]:
    """What differs between two fingerprints of one task's output folder (empty: the same outputs)."""
    problems = []
    for name in sorted(set(golden) | set(now)):
        if name not in now or name not in golden:
            problems.append(f"{name}: {'missing now' if name not in now else 'new file'}")
            continue
        g, n = golden[name], now[name]
        if g["kind"] != n["kind"]:
            problems.append(f"{name}: kind {g['kind']} -> {n['kind']}")
        elif g["kind"] == "json":
            for key in sorted(set(g["values"]) | set(n["values"])):
                a, b = g["values"].get(key, "<absent>"), n["values"].get(key, "<absent>")
                if not _same_number(a, b, JSON_RTOL):
                    problems.append(f"{name}: {key} {a!r} -> {b!r}")
        elif g["kind"] == "nrrd":
            if g["dtype"] != n["dtype"] or g["geometry"] != n["geometry"]:
                problems.append(f"{name}: dtype/geometry {g['dtype']} {g['geometry']} -> {n['dtype']} {n['geometry']}")
            if "sha256" in g and g.get("sha256") != n.get("sha256"):
                problems.append(f"{name}: label data changed")
            if "stats" in g and not all(_same_number(a, b, FLOAT_RTOL) for a, b in zip(g["stats"], n.get("stats", []))):
                problems.append(f"{name}: float data changed (sum, sum², min, max, non-zero) {g['stats']} -> "
                                f"{n.get('stats')}")
        elif g["kind"] == "csv":
            problems += csv_differences(name, g["rows"], n["rows"])
        elif g["kind"] == "png":
            a, b = np.asarray(g["block_means"]), np.asarray(n["block_means"])
            if g["shape"] != n["shape"] or a.shape != b.shape:
                problems.append(f"{name}: shape {g['shape']} -> {n['shape']}")
            elif np.abs(a - b).max() > PNG_TOL:
                k = np.unravel_index(np.abs(a - b).argmax(), a.shape)
                problems.append(f"{name}: pixels changed (block {k[:2]} channel {k[2]}: {a[k]} -> {b[k]} grey levels)")
        elif g != n:
            problems.append(f"{name}: content changed")
    return problems


def fingerprint_all(tasks=None) -> dict:
    with tempfile.TemporaryDirectory(prefix="uqseg-golden-") as tmp:
        return {task: fingerprint_folder(run_task(task, Path(tmp) / task)) for task in (tasks or TASK_INPUTS)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Record or check the fingerprints of the tasks' sample outputs.")
    parser.add_argument("--write", action="store_true", help=f"record them in {GOLDEN.relative_to(REPO)}")
    parser.add_argument("--task", action="append", choices=sorted(TASK_INPUTS),
                        help="only these tasks (with --write: the others' records are kept as they are)")
    args = parser.parse_args(argv)
    now = fingerprint_all(args.task)
    if args.write:
        GOLDEN.parent.mkdir(exist_ok=True)
        kept = json.loads(GOLDEN.read_text()) if args.task and GOLDEN.is_file() else {}
        GOLDEN.write_text(json.dumps({**kept, **now}, indent=1, sort_keys=True) + "\n")
        print(f"wrote {GOLDEN} ({', '.join(now)})")
        return 0
    golden = json.loads(GOLDEN.read_text())
    failed = False
    for task in now:
        problems = differences(golden[task], now[task])
        failed |= bool(problems)
        print(f"{task}: " + ("unchanged" if not problems else "; ".join(problems[:6])))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
