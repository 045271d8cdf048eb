"""The whole predict path of every task in the Python of a supported Slicer release, with real torch — run by hand.

    .venv/bin/python Testing/slicer_predict_all.py 5.8 [--out build/slicer-predict] [--torch "torch==2.8.0"]

For the row (`slicer_rows.json`): builds the environment of `slicer_compat.py` with torch from PyPI (for Python 3.9
and 3.12 that is a CUDA build, ~3 GB, which also runs on the CPU) and the engine's packages installed by the module's
installer (bundled packages pinned), lays the extension out as CMake installs it, and runs, for each task, the exact
command the Slicer module builds (`UQSegmentationLib.logic.predict_command` + `engine_environment`: the module folder
first on PYTHONPATH) on the sample installed with the extension (`Resources/SampleData`: the MLO mammogram, the chest
X-ray, the CT series as DICOM). The same commands run with this Python (the project's 3.11, its own packages) on the
same installed files as the reference, and every output is compared: the same files; NRRD headers (sizes, space directions,
origin) equal; float maps within 1e-3 of their largest value (another torch build rounds differently), label maps with at
most 0.1 % of voxels different; JSON and CSV numbers within 1e-4 relative (wall-clock timings excepted). Prints one line per task and writes `<out>/<row>/comparison.json`. Exit status 1 when a task
fails or differs.

Not run in CI (the torch download and four CPU predictions per row take minutes); the torch-free part of these
checks is `test_slicer_versions.py`.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import slicer_compat  # noqa: E402
from output_fingerprints import flatten_json  # noqa: E402

sys.path.insert(0, str(slicer_compat.MODULE_SOURCE))
from UQSegmentationLib.logic import engine_environment, predict_command  # noqa: E402

#: The torch each row's Python gets (PyPI's newest release for that Python that satisfies torch>=2.4).
TORCH_FOR_PYTHON = {"3.9": "torch==2.8.0", "3.12": "torch==2.13.0"}

#: Task → its input, relative to Resources/SampleData (in the installed extension, or the repository).
TASK_INPUTS = {
    "mammo-pectoral": "mammo-mlo/mlo.dcm",
    "mammo-breast": "mammo-mlo/mlo.dcm",
    "cxr-landmarks": "cxr-chest/chest.dcm",
    "ct-organs": "ct-abdomen/dicom",
}

RTOL, ATOL = 1e-4, 1e-5          # numbers in JSON / CSV
ARRAY_ATOL = 1e-3                # float maps: |difference| <= ARRAY_ATOL x the map's largest |value| (another torch
                                 # build rounds convolutions differently: ~1e-4 of the range on a few voxels)
LABEL_DIFF_LIMIT = 1e-3          # share of label voxels allowed to differ (a tie flipped by float rounding)


def run_task(python: str, module_dir: Path, task: str, image: Path, out: Path) -> dict:
    """Run the module's predict command; returns rc, seconds and the last stderr line."""
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = predict_command(python, task, image, out)
    env = engine_environment(module_dir=module_dir, base=dict(__import__("os").environ))
    env.pop("PYTHONHOME", None)
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=str(out.parent))
    last = (result.stderr.strip().splitlines() or [""])[-1]
    return {"rc": result.returncode, "seconds": round(time.perf_counter() - start, 1), "last_line": last,
            "command": " ".join(str(c) for c in cmd)}


#: JSON fields that legitimately differ between two runs (timings, paths, versions of the Python and packages).
VOLATILE = ("seconds", "time", "timing", "duration", "path", "input", "out", "python", "version", "created", "host",
            "elapsed", "ms")


def _volatile(key: str) -> bool:
    top = key.split(".")[0].split("[")[0]
    if top.startswith("timings") or top.endswith("_ms"):  # timings_ms, inference_ms: wall-clock times
        return True
    leaf = key.split(".")[-1].split("[")[0].lower()
    return any(word == leaf or leaf.endswith("_" + word) or leaf.startswith(word + "_") for word in VOLATILE)


def compare_json(a: Path, b: Path) -> list[str]:
    left, right = flatten_json(json.loads(a.read_text())), flatten_json(json.loads(b.read_text()))
    problems = []
    for key in sorted(set(left) | set(right)):
        if _volatile(key):
            continue
        x, y = left.get(key, "<absent>"), right.get(key, "<absent>")
        if isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool):
            if not math.isclose(x, y, rel_tol=RTOL, abs_tol=ATOL):
                problems.append(f"{a.name}:{key} {x} vs {y}")
        elif x != y:
            problems.append(f"{a.name}:{key} {x!r} vs {y!r}")
    return problems


def compare_csv(a: Path, b: Path) -> list[str]:
    rows_a, rows_b = list(csv.reader(a.open())), list(csv.reader(b.open()))
    if len(rows_a) != len(rows_b):
        return [f"{a.name}: {len(rows_a)} vs {len(rows_b)} rows"]
    problems = []
    for r, (ra, rb) in enumerate(zip(rows_a, rows_b)):
        for c, (x, y) in enumerate(zip(ra, rb)):
            try:
                if not math.isclose(float(x), float(y), rel_tol=RTOL, abs_tol=ATOL):
                    problems.append(f"{a.name} row {r} col {c}: {x} vs {y}")
            except ValueError:
                if x != y:
                    problems.append(f"{a.name} row {r} col {c}: {x!r} vs {y!r}")
    return problems[:5]


def compare_nrrd(a: Path, b: Path) -> list[str]:
    import nrrd

    data_a, head_a = nrrd.read(str(a))
    data_b, head_b = nrrd.read(str(b))
    problems = []
    for key in ("sizes", "space directions", "space origin", "space", "type"):
        va, vb = head_a.get(key), head_b.get(key)
        same = (np.allclose(np.nan_to_num(np.asarray(va, dtype=float)), np.nan_to_num(np.asarray(vb, dtype=float)))
                if key in ("sizes", "space directions", "space origin") and va is not None and vb is not None
                else va == vb)
        if not same:
            problems.append(f"{a.name}: header {key} {va} vs {vb}")
    if data_a.shape != data_b.shape:
        return problems + [f"{a.name}: shape {data_a.shape} vs {data_b.shape}"]
    if np.issubdtype(data_a.dtype, np.integer):
        differ = float(np.mean(data_a != data_b))
        if differ > LABEL_DIFF_LIMIT:
            problems.append(f"{a.name}: {differ:.2%} of label voxels differ")
    else:
        scale = float(np.nanmax(np.abs(data_b))) if np.isfinite(data_b).any() else 0.0
        if not np.allclose(data_a, data_b, rtol=0.0, atol=max(ATOL, ARRAY_ATOL * scale), equal_nan=True):
            problems.append(f"{a.name}: max |difference| {float(np.nanmax(np.abs(data_a - data_b))):.3g} "
                            f"(map maximum {scale:.3g})")
    return problems


def compare_outputs(left: Path, right: Path) -> tuple[int, list[str]]:
    files_a = {p.relative_to(left) for p in left.rglob("*") if p.is_file()}
    files_b = {p.relative_to(right) for p in right.rglob("*") if p.is_file()}
    problems = [f"only in one run: {sorted(str(p) for p in files_a ^ files_b)}"] if files_a != files_b else []
    for rel in sorted(files_a & files_b):
        a, b = left / rel, right / rel
        name = rel.name
        if name.endswith(".nrrd"):
            problems += compare_nrrd(a, b)
        elif name.endswith(".json"):
            problems += compare_json(a, b)
        elif name.endswith(".csv"):
            problems += compare_csv(a, b)
    return len(files_a & files_b), problems


def compare_again(out: Path, tasks: list[str]) -> int:
    """Compare the outputs an earlier run left in `out` (e.g. after a change of the comparison rules)."""
    failed = False
    for task in tasks:
        compared, problems = compare_outputs(out / "slicer" / task, out / "reference" / task)
        failed |= bool(problems)
        print(f"{task:15s} {compared} files compared, " + ("same outputs" if not problems else "; ".join(problems[:4])))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("row", choices=sorted(slicer_compat.load_rows()))
    parser.add_argument("--out", type=Path, default=slicer_compat.REPO / "build" / "slicer-predict")
    parser.add_argument("--torch", help="pip requirement for torch (default: by the row's Python)")
    parser.add_argument("--tasks", nargs="*", default=list(TASK_INPUTS))
    parser.add_argument("--compare-only", action="store_true", help="compare the outputs of an earlier run again")
    args = parser.parse_args(argv)
    if args.compare_only:
        return compare_again(args.out / args.row, args.tasks)

    row = slicer_compat.load_rows()[args.row]
    torch_req = args.torch or TORCH_FOR_PYTHON[row.python]
    print(f"Slicer {row.slicer}: Python {row.python}, bundled {row.bundled}, {torch_req}", flush=True)
    python = slicer_compat.create_environment(row, slicer_compat.DEFAULT_ROOT, with_torch=torch_req)
    root = slicer_compat.DEFAULT_ROOT / (row.name + "-torch")
    modules = slicer_compat.lay_out_extension(root / "install", row)
    installed = slicer_compat.install_engine_packages(python, modules, root / "work", exclude=())
    versions = subprocess.run([str(python), "-m", "pip", "list", "--format", "json"], capture_output=True,
                              text=True).stdout
    versions = {p["name"].lower(): p["version"] for p in json.loads(versions)}
    print(f"installed by the module's installer: {installed}", flush=True)
    print("versions: " + ", ".join(f"{k} {versions.get(k)}" for k in
                                   ("numpy", "scipy", "simpleitk", "pydicom", "pillow", "torch", "monai",
                                    "pylibjpeg-openjpeg")), flush=True)

    out = args.out / row.name
    results, failed = {}, False
    for task in args.tasks:
        image = modules / "Resources" / "SampleData" / TASK_INPUTS[task]
        there = run_task(str(python), modules, task, image, out / "slicer" / task)
        here = run_task(sys.executable, modules, task, image, out / "reference" / task)
        entry = {"slicer_python": there, "reference": here}
        if there["rc"] == 0 and here["rc"] == 0:
            compared, problems = compare_outputs(out / "slicer" / task, out / "reference" / task)
            entry.update(files_compared=compared, problems=problems)
        else:
            entry.update(files_compared=0, problems=["a run failed"])
        failed |= bool(entry["problems"])
        results[task] = entry
        status = "same outputs" if not entry["problems"] else "; ".join(entry["problems"][:4])
        print(f"{task:15s} rc {there['rc']} in {there['seconds']:6.1f} s (reference rc {here['rc']} in "
              f"{here['seconds']:6.1f} s): {entry['files_compared']} files compared, {status}"
              + (f" [{there['last_line']}]" if there["rc"] else ""), flush=True)
    (out / "comparison.json").write_text(json.dumps({"row": row.name, "versions": versions, "tasks": results},
                                                    indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
