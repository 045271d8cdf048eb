"""Python packages the engine needs inside Slicer, installed at the first Apply (never at start-up).

- torch comes from the PyTorch extension (`PyTorchUtils`, an `EXTENSION_DEPENDS` of ours): it picks the build that
  matches the computer's GPU driver. We ask for `TORCH_REQUIREMENT` and refuse an older torch with a clear message.
- Everything else (`REQUIREMENTS`, the same list as the engine's pyproject.toml) is installed with
  `slicer.util.pip_install` after the user confirmed a dialog. The dialog itself is a callback the widget passes in
  (`confirm(text) -> bool`): this module never imports Qt, so it is tested with plain Python.
- Packages that Slicer itself bundles (`SLICER_BUNDLED`: numpy, scipy, SimpleITK, pydicom, pillow, vtk) are used as
  they are, never re-installed by pip: an upgraded numpy in Slicer's Python breaks the application. pip is run with a
  constraints file pinning each of them to the version this Python has (`bundled_constraints`), so a package whose
  newest release needs a newer numpy (pylibjpeg-openjpeg on Python 3.9, say) resolves to an older release instead,
  and an install that could only succeed by replacing one fails with pip's message instead of breaking Slicer.

The engine runs in a child process (see `process_runner`), so freshly installed packages work at once; a restart is
only needed when a package that was upgraded had already been imported into Slicer's own process — then
`DependencyReport.restart_needed` is True and `message` says so.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import sys
import tempfile
from pathlib import Path
from dataclasses import dataclass, field
from typing import Callable, Optional

TORCH_REQUIREMENT = ">=2.4"

# Distribution requirement → the module it provides (to detect packages installed without pip metadata, as Slicer's
# own bundled ones are). Keep in sync with `dependencies` in pyproject.toml (a test checks it), torch excluded.
REQUIREMENTS = {
    "numpy>=1.24": "numpy",
    "scipy>=1.10": "scipy",
    "pillow>=10": "PIL",
    "pydicom>=2.4": "pydicom",
    "pylibjpeg>=2": "pylibjpeg",
    "pylibjpeg-rle>=2": "rle",
    "pylibjpeg-openjpeg>=2": "openjpeg",
    "pyjpegls>=1.2": "jpeg_ls",
    "safetensors>=0.4": "safetensors",
    "pynrrd>=1.0": "nrrd",
    "SimpleITK>=2.2": "SimpleITK",
    "matplotlib>=3.7": "matplotlib",
    "monai>=1.3": "monai",
    "highdicom>=0.22": "highdicom",
}

# Built into Slicer's Python (distribution names, lower case): never installed or upgraded by us; an incompatible
# version is reported instead, and pip runs with these pinned to the installed versions (`bundled_constraints`).
SLICER_BUNDLED = {"numpy", "scipy", "simpleitk", "pydicom", "pillow", "vtk"}


class DependencyError(RuntimeError):
    """A required package is missing and could not (or may not) be installed; the message says what to do."""


@dataclass
class DependencyReport:
    installed: list[str] = field(default_factory=list)  # what was installed now
    restart_needed: bool = False
    message: str = ""


def split_requirement(requirement: str) -> tuple[str, str]:
    """'pynrrd>=1.0' → ('pynrrd', '>=1.0')."""
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement)
    if not m:
        raise ValueError(f"not a requirement: {requirement!r}")
    return m.group(1), m.group(2).strip()


def _version_tuple(version: str) -> tuple:
    parts = []
    for piece in re.split(r"[.+!-]", version):
        m = re.match(r"^(\d+)", piece)
        if not m:
            break
        parts.append(int(m.group(1)))
    return tuple(parts)


def version_satisfies(version: str, specifier: str) -> bool:
    """Does `version` meet `specifier` (e.g. '>=2.4,<3')? Uses `packaging` when present, else a numeric compare."""
    if not specifier:
        return True
    try:
        from packaging.specifiers import SpecifierSet
        from packaging.version import Version

        return Version(version) in SpecifierSet(specifier)
    except ImportError:
        pass
    except Exception:  # an unparsable local version: fall through to the numeric comparison
        pass
    have = _version_tuple(version)
    for clause in specifier.split(","):
        m = re.match(r"^\s*(>=|<=|==|!=|>|<)\s*([0-9][0-9.]*)", clause)
        if not m:
            continue
        op, want = m.group(1), _version_tuple(m.group(2))
        n = max(len(have), len(want))
        a, b = have + (0,) * (n - len(have)), want + (0,) * (n - len(want))
        ok = {">=": a >= b, "<=": a <= b, "==": a == b, "!=": a != b, ">": a > b, "<": a < b}[op]
        if not ok:
            return False
    return True


def installed_version(distribution: str) -> Optional[str]:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_requirement(requirement: str, module: str) -> tuple[bool, Optional[str]]:
    """(satisfied, installed version or None). A module importable without pip metadata counts as satisfied."""
    name, spec = split_requirement(requirement)
    version = installed_version(name)
    if version is None:
        return importlib.util.find_spec(module) is not None, None
    return version_satisfies(version, spec), version


def missing_requirements(requirements: Optional[dict] = None) -> list[str]:
    """The requirements (as written in `REQUIREMENTS`) that are not satisfied in this Python."""
    requirements = REQUIREMENTS if requirements is None else requirements
    return [req for req, module in requirements.items() if not check_requirement(req, module)[0]]


def torch_status(requirement: str = TORCH_REQUIREMENT) -> tuple[bool, Optional[str]]:
    """(torch installed and new enough, installed version or None) — without importing torch."""
    version = installed_version("torch")
    if version is None:
        return False, None
    return version_satisfies(version, requirement), version


def _default_torch_installer(requirement: str):
    """Install torch through the PyTorch extension; returns the torch module or None when the user declined."""
    try:
        import PyTorchUtils
    except ImportError:
        raise DependencyError("UQSegmentation needs the PyTorch extension: install 'PyTorch' from the Extensions "
                              "Manager, restart Slicer, then press Apply again.") from None
    return PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True, torchVersionRequirement=requirement)


def bundled_constraints(bundled: Optional[set] = None) -> list[str]:
    """pip constraint lines ``name==version`` pinning every bundled package present in this Python (sorted)."""
    lines = []
    for name in sorted(SLICER_BUNDLED if bundled is None else bundled):
        version = installed_version(name)
        if version is not None:
            lines.append(f"{name}=={version}")
    return lines


def write_constraints_file(constraints: list[str], folder: Optional[Path] = None) -> Path:
    """The constraint lines written to a file for pip's ``--constraint`` (in a new temporary folder by default)."""
    folder = Path(tempfile.mkdtemp(prefix="uqseg-pip-")) if folder is None else Path(folder)
    path = folder / "slicer-bundled-constraints.txt"
    path.write_text("# Packages bundled with 3D Slicer: pinned so that pip never replaces them.\n"
                    + "".join(line + "\n" for line in constraints), encoding="utf-8")
    return path


def pip_arguments(requirements: list[str], constraints_file: Path) -> list[str]:
    """The arguments after ``pip install``: the constraints file, then the requirements."""
    return ["--constraint", str(constraints_file), *requirements]


def _default_pip_install(requirements: list[str], constraints: list[str]) -> None:
    import slicer

    slicer.util.pip_install(pip_arguments(requirements, write_constraints_file(constraints)))


def ensure_dependencies(confirm: Callable[[str], bool],
                        pip_install: Optional[Callable[[list[str]], None]] = None,
                        torch_installer: Optional[Callable[[str], object]] = None,
                        requirements: Optional[dict] = None,
                        torch_requirement: str = TORCH_REQUIREMENT,
                        constraints: Optional[list[str]] = None) -> DependencyReport:
    """Make sure torch and the engine's packages are installed, asking the user first.

    confirm: shows `text` and returns True to go on (the widget passes a dialog; tests a lambda).
    pip_install(requirements, constraints) / torch_installer(requirement): injectable installers (default:
    `slicer.util.pip_install` with a constraints file, and PyTorchUtils).
    constraints: pip constraint lines (default: `bundled_constraints()`, the bundled packages pinned as installed).
    Raises DependencyError with a message for the user when something is missing and not installed.
    """
    requirements = REQUIREMENTS if requirements is None else requirements
    report = DependencyReport()
    already_imported: list[str] = []

    torch_ok, torch_version = torch_status(torch_requirement)
    if not torch_ok and torch_version is not None:
        raise DependencyError(
            f"PyTorch {torch_version} is installed but UQSegmentation needs torch{torch_requirement}. Open the "
            f"'PyTorch Utils' module, uninstall PyTorch, restart Slicer and install it again with the version "
            f"requirement '{torch_requirement}'.")
    if not torch_ok:
        torch = (torch_installer or _default_torch_installer)(torch_requirement)
        if torch is None:
            raise DependencyError("PyTorch was not installed, so the models cannot run. Press Apply again to "
                                  "install it (or use the 'PyTorch Utils' module).")
        report.installed.append(f"torch{torch_requirement}")

    missing = missing_requirements(requirements)
    bundled = [r for r in missing if split_requirement(r)[0].lower() in SLICER_BUNDLED]
    if bundled:
        raise DependencyError(
            "These packages come with Slicer but are too old for UQSegmentation: " + ", ".join(bundled)
            + ". Please use a more recent Slicer (they are not upgraded here because that would break Slicer).")
    if missing:
        text = ("UQSegmentation needs these Python packages, which are not installed yet:\n\n  "
                + "\n  ".join(missing)
                + "\n\nInstall them now? This downloads them from the Python Package Index and can take a few "
                  "minutes.")
        if not confirm(text):
            raise DependencyError("The required Python packages were not installed: " + ", ".join(missing)
                                  + ". Press Apply again to install them.")
        already_imported = [r for r in missing if _module_of(r, requirements) in sys.modules]
        constraints = bundled_constraints() if constraints is None else constraints
        try:
            (pip_install or _default_pip_install)(missing, constraints)
        except Exception as error:  # pip's own failure (CalledProcessError in Slicer): its output is in the console
            raise DependencyError("Installing these packages failed: " + ", ".join(missing)
                                  + f" ({error}). Slicer's own packages were kept at " + ", ".join(constraints)
                                  + "; see the Python console for pip's messages.") from None
        still = missing_requirements({r: requirements[r] for r in missing})
        if still:
            raise DependencyError("Installing these packages failed: " + ", ".join(still)
                                  + ". See the Python console for pip's messages.")
        report.installed += missing
        if already_imported:
            report.restart_needed = True
    if report.installed:
        report.message = "Installed: " + ", ".join(report.installed) + "."
        if report.restart_needed:
            report.message += (" Restart Slicer before running UQSegmentation again: these packages were already "
                               "loaded in an older version: " + ", ".join(already_imported) + ".")
    return report


def _module_of(requirement: str, requirements: dict) -> str:
    return requirements[requirement].split(".")[0]
