"""Checks run INSIDE an environment made like a Slicer release's Python (see slicer_compat.py); Python 3.9-compatible.

``python slicer_compat_checks.py request.json`` with request = {"modules": qt-scripted-modules folder, "dicom":
{name: path}, "out": folder, "allowed_absent": [top-level module names that may be missing here]} writes
``out/report.json``:
- "python", "versions": the interpreter and the versions of the packages that matter;
- "compile_errors": {file: error} for every .py file under the modules folder that does not compile;
- "imports": {module: "ok" | "absent: <name>" | "error: <type>: <message>"} for every module under the folder
  (package __init__ files that need Slicer are not executed: submodules are imported through a bare package
  object, so that e.g. UQSegmentationLib.dependencies is checked although UQSegmentationLib/__init__ imports
  slicer). "absent" only when the missing module is one of `allowed_absent` (torch, slicer, qt, ...); any other
  ImportError — e.g. ``No module named 'pydicom.pixels'`` on pydicom 2.4 — is an "error";
- "dicom": {name: {"shape", "spacing", "origin", "direction", "array": <file .npy>} or {"error": text}}, each
  loaded with `uqseg.io.load_image` (a folder as a 3-D series);
- "exports": {name: {"folder": <copy of the case folder>, "files": {...}} or {"error": text}}: for each request
  "exports" entry name → [case folder, source DICOM], the case folder copied to out/<name> and its DICOM objects
  written there by `uqseg.dicom_out.write_case.export_case` with this environment's pydicom and highdicom.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import json
import py_compile
import sys
import traceback
import types
from pathlib import Path

PACKAGES = ("numpy", "scipy", "SimpleITK", "pydicom", "pillow", "pylibjpeg", "pylibjpeg-openjpeg", "pylibjpeg-rle",
            "pyjpegls", "torch", "monai", "pynrrd", "safetensors", "matplotlib", "highdicom")


def _version(name: str):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def compile_all(modules: Path) -> dict:
    errors = {}
    for path in sorted(modules.rglob("*.py")):
        try:
            py_compile.compile(str(path), cfile=str(Path("/tmp") / "uqseg-compat-compile.pyc"), doraise=True)
        except py_compile.PyCompileError as error:
            errors[str(path.relative_to(modules))] = str(error.msg).strip().splitlines()[-1]
    return errors


def _module_names(modules: Path) -> list:
    names = []
    for path in sorted(modules.rglob("*.py")):
        rel = path.relative_to(modules).with_suffix("")
        if "Testing" in rel.parts or not all(part.isidentifier() for part in rel.parts):
            continue
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        names.append(".".join(parts))
    return names


def _bare_package(name: str, modules: Path) -> None:
    """Register package `name` without running its __init__ (so its submodules can be imported one by one)."""
    if name in sys.modules:
        return
    folder = modules.joinpath(*name.split("."))
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = [str(folder)]
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package


def import_all(modules: Path, allowed_absent: set) -> dict:
    results = {}
    for name in _module_names(modules):
        parts = name.split(".")
        for k in range(1, len(parts)):
            parent = ".".join(parts[:k])
            if parent not in sys.modules:
                try:
                    importlib.import_module(parent)
                except ImportError:
                    _bare_package(parent, modules)
        try:
            importlib.import_module(name)
            results[name] = "ok"
        except ImportError as error:
            missing = (getattr(error, "name", None) or "").split(".")[0]
            if missing in allowed_absent:
                results[name] = f"absent: {missing}"
            else:
                results[name] = f"error: {type(error).__name__}: {error}"
        except Exception as error:  # anything else at import time is a failure of the module on this Python
            results[name] = f"error: {type(error).__name__}: {error}"
            traceback.print_exc()
    return results


def load_dicom(files: dict, out: Path) -> dict:
    import numpy as np

    try:
        from uqseg.io import load_image
    except Exception as error:  # the import failure is in "imports" too; every file fails with it here
        return {name: {"error": f"cannot import uqseg.io: {type(error).__name__}: {error}"} for name in files}

    loaded = {}
    for name, path in files.items():
        try:
            image = load_image(path, ndim=3) if Path(path).is_dir() else load_image(path)
            array_file = out / f"{name}.npy"
            np.save(array_file, np.asarray(image.array))
            loaded[name] = {"shape": list(np.shape(image.array)), "spacing": [float(v) for v in image.spacing],
                            "origin": [float(v) for v in image.origin],
                            "direction": np.asarray(image.direction, dtype=float).tolist(), "array": str(array_file)}
        except Exception as error:
            loaded[name] = {"error": f"{type(error).__name__}: {error}"}
    return loaded


def export_dicom(exports: dict, out: Path) -> dict:
    import shutil

    done = {}
    for name, (case, source) in exports.items():
        folder = out / name
        try:
            shutil.rmtree(folder, ignore_errors=True)
            shutil.copytree(case, folder)
            from uqseg.dicom_out.write_case import export_case

            done[name] = {"folder": str(folder), "files": export_case(folder, Path(source))}
        except Exception as error:
            done[name] = {"error": f"{type(error).__name__}: {error}"}
            traceback.print_exc()
    return done


def main(request_file: str) -> int:
    request = json.loads(Path(request_file).read_text())
    modules, out = Path(request["modules"]), Path(request["out"])
    report = {"python": sys.version.split()[0], "versions": {name: _version(name) for name in PACKAGES},
              "compile_errors": compile_all(modules),
              "imports": import_all(modules, set(request["allowed_absent"]))}
    report["dicom"] = load_dicom(request["dicom"], out)
    report["exports"] = export_dicom(request.get("exports", {}), out)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
