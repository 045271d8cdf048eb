"""Environments like the Python of each supported 3D Slicer release, with the extension installed as CMake installs it.

Used by `test_slicer_versions.py` (torch-free, in CI) and `slicer_predict_all.py` (the whole predict path with real
torch, run by hand). Standard library only: it runs under the project's Python and drives the others.

For a row of `slicer_rows.json` (e.g. "5.8": Python 3.9, numpy 1.26.4, pydicom 2.4.4, ...):
1. `create_environment`: a virtual environment of that Python (pyenv's interpreter) with the row's bundled packages
   pinned, as Slicer ships them;
2. `lay_out_extension`: the module files copied into ``lib/Slicer-X.Y/qt-scripted-modules/`` by the same lists
   `UQSegmentation/CMakeLists.txt` installs (`MODULE_PYTHON_SCRIPTS`, `MODULE_PYTHON_RESOURCES`, `MODULE_MODEL_FILES`,
   `MODULE_SAMPLE_DATA_FILES`), so a file CMake would not install is missing here too;
3. `install_engine_packages`: the engine's packages installed the way the module's dependency installer does
   (`UQSegmentationLib/dependencies.py`, run inside the environment): pip with the bundled packages pinned;
4. `install_plan`: what ``pip install --dry-run --report`` would install for all the engine's requirements in that
   environment, and `replaced_bundled` — the bundled packages it would replace (must be none). In Slicer torch is
   installed by the PyTorch extension before the engine's packages, so the requirements that need torch (monai) are
   planned without their dependencies and `unmet_dependencies` checks what they declare instead: otherwise pip would
   download a multi-GB CUDA torch (no CPU wheel of that Python on the index) just to plan.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODULE_SOURCE = REPO / "UQSegmentation"
ROWS_FILE = Path(__file__).with_name("slicer_rows.json")
CHECKS_SCRIPT = Path(__file__).with_name("slicer_compat_checks.py")
DEFAULT_ROOT = REPO / "build" / "slicer-compat"

#: Which CMake list installs what: (list name, source folder, destination folder under qt-scripted-modules).
CMAKE_LISTS = (
    ("MODULE_PYTHON_SCRIPTS", MODULE_SOURCE, "."),
    ("MODULE_PYTHON_RESOURCES", MODULE_SOURCE, "."),
    ("MODULE_MODEL_FILES", REPO / "Resources" / "Models", "Resources/Models"),
    ("MODULE_SAMPLE_DATA_FILES", REPO / "Resources" / "SampleData", "Resources/SampleData"),
)


class CompatError(RuntimeError):
    """An environment could not be built (no interpreter, pip failed); the message says which step."""


@dataclass(frozen=True)
class Row:
    """One supported Slicer release: its version ("5.8"), Python ("3.9"), Qt major and bundled package pins."""

    name: str
    slicer: str
    python: str
    qt: int
    bundled: dict

    @property
    def lib_dir(self) -> str:
        return f"lib/Slicer-{self.name}/qt-scripted-modules"


def load_rows() -> dict[str, Row]:
    rows = json.loads(ROWS_FILE.read_text())["rows"]
    return {name: Row(name=name, slicer=r["slicer"], python=r["python"], qt=r["qt"], bundled=r["bundled"])
            for name, r in rows.items()}


def cmake_set_items(text: str, name: str) -> list[str] | None:
    """The items of ``set(NAME item ...)`` in CMake source `text`, comments removed, ${MODULE_NAME} expanded; None
    when there is no such list."""
    text = re.sub(r"#[^\n]*", "", text)
    match = re.search(r"\bset\(\s*" + re.escape(name) + r"\b(.*?)\)", text, re.S)
    if not match:
        return None
    module_name = re.search(r"set\(\s*MODULE_NAME\s+(\S+?)\s*\)", text)
    items = [item.strip('"') for item in re.findall(r'"[^"]*"|\S+', match.group(1))]
    return [item.replace("${MODULE_NAME}", module_name.group(1)) if module_name else item for item in items]


def cmake_list(name: str, cmake_file: Path = MODULE_SOURCE / "CMakeLists.txt") -> list[str]:
    """The items of ``set(NAME item ...)`` in the module's CMakeLists.txt; [] when the list is not there."""
    return cmake_set_items(cmake_file.read_text(), name) or []


def lay_out_extension(install_prefix: Path, row: Row) -> Path:
    """Copy the extension's files as ``cmake --install`` would put them; returns the qt-scripted-modules folder."""
    modules = Path(install_prefix) / row.lib_dir
    if modules.exists():
        shutil.rmtree(modules)
    for list_name, source, destination in CMAKE_LISTS:
        for item in cmake_list(list_name):
            target = modules / destination / item
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / item, target)
    return modules


def pyenv_python(version: str) -> Path:
    """The newest pyenv interpreter of `version` ("3.9" → ~/.pyenv/versions/3.9.18/bin/python)."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = sorted((p for p in root.glob(f"{version}.*") if re.fullmatch(re.escape(version) + r"\.\d+", p.name)),
                        key=lambda p: int(p.name.rsplit(".", 1)[1]))
    if not candidates:
        raise CompatError(f"no Python {version} interpreter under {root} (install it with pyenv)")
    return candidates[-1] / "bin" / "python"


def _run(cmd: list, what: str, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise CompatError(f"{what} failed (exit {result.returncode}):\n{tail}")
    return result


def create_environment(row: Row, root: Path = DEFAULT_ROOT, with_torch: str | None = None) -> Path:
    """A virtual environment of the row's Python with its bundled packages (and `with_torch`, a pip requirement such
    as "torch==2.8.0", when given) at ``root/<row>[-torch]/venv``; reused when it already has them. Returns the
    environment's python."""
    folder = Path(root) / (row.name + ("-torch" if with_torch else ""))
    python = folder / "venv" / "bin" / "python"
    stamp = folder / "venv" / "uqseg-compat.json"
    wanted = {"bundled": row.bundled, "torch": with_torch}
    if python.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        return python
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    _run([pyenv_python(row.python), "-m", "venv", folder / "venv"], f"creating the Python {row.python} environment")
    pins = [f"{name}=={version}" for name, version in row.bundled.items()]
    _run([python, "-m", "pip", "install", "-q", *pins], f"installing Slicer {row.name}'s bundled packages")
    if with_torch:
        constraints = folder / "bundled.txt"
        constraints.write_text("".join(p + "\n" for p in pins))
        _run([python, "-m", "pip", "install", "-q", "--constraint", constraints, with_torch], f"installing {with_torch}")
    stamp.write_text(json.dumps(wanted))
    return python


def _dependencies_call(python: Path, modules: Path, code: str) -> str:
    """Run `code` in the environment with `dependencies` = the installed UQSegmentationLib/dependencies.py (loaded by
    path: the package's __init__ needs Slicer); returns what it printed."""
    prologue = ("import importlib.util, json, sys\n"
                f"spec = importlib.util.spec_from_file_location('uqseg_dependencies', "
                f"{str(modules / 'UQSegmentationLib' / 'dependencies.py')!r})\n"
                "dependencies = importlib.util.module_from_spec(spec); sys.modules[spec.name] = dependencies\n"
                "spec.loader.exec_module(dependencies)\n")
    return _run([python, "-c", prologue + code], "running the dependency installer's code").stdout


def install_engine_packages(python: Path, modules: Path, folder: Path, exclude: tuple = ("monai",)) -> list[str]:
    """Install the engine's missing requirements as the module's installer does (bundled packages pinned). `exclude`:
    requirements left out (monai needs torch, which a torch-free environment does not have). Returns what was
    installed."""
    missing = json.loads(_dependencies_call(python, modules, "print(json.dumps(dependencies.missing_requirements()))"))
    missing = [r for r in missing if not any(r.lower().startswith(e) for e in exclude)]
    if missing:
        constraints = constraints_file(python, modules, folder)
        args = json.loads(_dependencies_call(
            python, modules, f"print(json.dumps(dependencies.pip_arguments({missing!r}, {str(constraints)!r})))"))
        _run([python, "-m", "pip", "install", "-q", *args], "installing the engine's packages")
    return missing


def constraints_file(python: Path, modules: Path, folder: Path) -> Path:
    """The constraints file the module's installer writes in this environment (bundled packages as installed)."""
    folder.mkdir(parents=True, exist_ok=True)
    return Path(_dependencies_call(
        python, modules,
        f"print(dependencies.write_constraints_file(dependencies.bundled_constraints(), {str(folder)!r}))").strip())


def install_plan(python: Path, requirements: list[str], constraints: Path | None, report: Path,
                 no_deps: bool = False) -> list[tuple]:
    """(name, version) of every package ``pip install --dry-run`` would install or replace for `requirements`
    (`no_deps`: those alone, their dependencies not resolved; the report keeps what they declare)."""
    cmd = [python, "-m", "pip", "install", "-q", "--dry-run", "--report", report]
    if constraints is not None:
        cmd += ["--constraint", constraints]
    if no_deps:
        cmd += ["--no-deps"]
    _run(cmd + list(requirements), "pip's install plan")
    plan = json.loads(Path(report).read_text())
    return [(item["metadata"]["name"], item["metadata"]["version"]) for item in plan.get("install", [])]


#: Distributions installed in Slicer by the PyTorch extension before the engine's packages (never by our pip).
PREINSTALLED_BY_PYTORCH_EXTENSION = ("torch",)

_UNMET_CODE = """
import importlib.metadata, json, sys
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
report, planned, preinstalled = sys.argv[1], json.loads(sys.argv[2]), set(json.loads(sys.argv[3]))
planned = {canonicalize_name(name): version for name, version in planned}
unmet = []
for item in json.load(open(report)).get("install", []):
    owner = item["metadata"]["name"]
    for text in item["metadata"].get("requires_dist") or []:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        if name in preinstalled:
            continue
        version = planned.get(name)
        if version is None:
            try:
                version = importlib.metadata.version(req.name)
            except importlib.metadata.PackageNotFoundError:
                unmet.append(f"{owner} needs {text}: neither installed nor planned")
                continue
        if not req.specifier.contains(version, prereleases=True):
            unmet.append(f"{owner} needs {text}: {req.name} {version} is what this Python gets")
print(json.dumps(unmet))
"""


def unmet_dependencies(python: Path, no_deps_report: Path, planned: list[tuple]) -> list[str]:
    """What the packages of a ``no_deps`` plan declare (`requires_dist`, markers evaluated in `python`) that neither
    the installed packages nor `planned` (name, version) satisfy, torch excepted: ``"monai needs numpy<2: numpy 2.0.2
    is what this Python gets"``. Runs in `python` with the `packaging` it has."""
    result = _run([python, "-c", _UNMET_CODE, str(no_deps_report), json.dumps(planned),
                   json.dumps(list(PREINSTALLED_BY_PYTORCH_EXTENSION))], "checking the declared dependencies")
    return json.loads(result.stdout)


def replaced_bundled(plan: list[tuple], bundled: dict) -> list[str]:
    """The bundled packages the plan would install over the bundled version: ``"numpy 1.26.4 → 2.0.2"``."""
    norm = {re.sub(r"[-_.]+", "-", name).lower(): (name, version) for name, version in bundled.items()}
    replaced = []
    for name, version in plan:
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in norm:
            replaced.append(f"{norm[key][0]} {norm[key][1]} → {version}")
    return replaced


def run_checks(python: Path, modules: Path, dicom_files: dict, out_dir: Path, allowed_absent: list[str],
               exports: dict | None = None) -> dict:
    """Run `slicer_compat_checks.py` in the environment (compile, import, load DICOM, and write the DICOM objects of
    the case folders of `exports`: name → (case folder, source DICOM)); returns its JSON report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    request = out_dir / "request.json"
    request.write_text(json.dumps({"modules": str(modules), "dicom": {k: str(v) for k, v in dicom_files.items()},
                                   "out": str(out_dir), "allowed_absent": allowed_absent,
                                   "exports": {k: [str(c), str(s)] for k, (c, s) in (exports or {}).items()}}))
    env = dict(os.environ, PYTHONPATH=str(modules), PYTHONDONTWRITEBYTECODE="1")
    _run([python, CHECKS_SCRIPT, request], "the checks in the environment", env=env, cwd=str(out_dir))
    return json.loads((out_dir / "report.json").read_text())


def main(argv: list[str] | None = None) -> int:
    """``python Testing/slicer_compat.py ROW [ROOT]``: build the torch-free environment of ROW and print its path."""
    argv = sys.argv[1:] if argv is None else argv
    row = load_rows()[argv[0]]
    root = Path(argv[1]) if len(argv) > 1 else DEFAULT_ROOT
    python = create_environment(row, root)
    modules = lay_out_extension(root / row.name / "install", row)
    print(python, modules)
    return 0


if __name__ == "__main__":
    sys.exit(main())
