"""Packaging of the Slicer extension, checked without Slicer: CMake file lists, extension metadata, the .ui file
against the code that uses it, and the thinness of the GUI module (UQSegmentation.py: no maths, no MRML building).

UQSegmentation.py imports Slicer's Qt-based modules (qt, ctk, slicer.ScriptedLoadableModule), which slicer-core does
not have, so it is read as source (ast) here; it runs inside Slicer only.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import slicer_compat

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "UQSegmentation"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))
MODULE_CMAKE = MODULE_DIR / "CMakeLists.txt"
TOP_CMAKE = REPO / "CMakeLists.txt"
GUI = MODULE_DIR / "UQSegmentation.py"
UI = MODULE_DIR / "Resources" / "UI" / "UQSegmentation.ui"
MODELS = REPO / "Resources" / "Models"


def cmake_set(text: str, name: str) -> list[str]:
    """The items of `set(NAME item ...)` (the parser the Slicer-version layout uses); fails when there is none."""
    items = slicer_compat.cmake_set_items(text, name)
    assert items is not None, f"set({name} ...) not found"
    return items


def module_files(pattern: str, under: Path = MODULE_DIR) -> set[str]:
    def skipped(rel: Path) -> bool:
        return "__pycache__" in rel.parts or any(p.endswith(".egg-info") for p in rel.parts)

    return {str(p.relative_to(MODULE_DIR).as_posix()) for p in under.rglob(pattern)
            if p.is_file() and not skipped(p.relative_to(MODULE_DIR))}


# ---------------------------------------------------------------------------------------------------- module CMake
def test_every_python_file_is_listed_and_every_listed_file_exists():
    text = MODULE_CMAKE.read_text()
    scripts = cmake_set(text, "MODULE_PYTHON_SCRIPTS")
    assert len(scripts) == len(set(scripts)), "duplicates in MODULE_PYTHON_SCRIPTS"
    on_disk = module_files("*.py")
    assert sorted(on_disk - set(scripts)) == [], "Python files under UQSegmentation/ missing from CMakeLists.txt"
    assert sorted(set(scripts) - on_disk) == [], "listed in CMakeLists.txt but not on disk"
    assert "UQSegmentation.py" in scripts and "UQSegmentationLib/logic.py" in scripts
    assert "uqseg/cli.py" in scripts and "Testing/Python/UQSegmentationSelfTest.py" in scripts


def test_every_resource_is_listed_and_exists():
    text = MODULE_CMAKE.read_text()
    resources = cmake_set(text, "MODULE_PYTHON_RESOURCES")
    on_disk = module_files("*", MODULE_DIR / "Resources")
    assert sorted(on_disk - set(resources)) == [], "resources under UQSegmentation/Resources missing from the list"
    assert sorted(set(resources) - on_disk) == [], "listed resources that do not exist"
    assert {"Resources/UI/UQSegmentation.ui", "Resources/Icons/UQSegmentation.png"} <= set(resources)


def test_scripted_module_macro_generic_tests_and_self_test():
    text = re.sub(r"#[^\n]*", "", MODULE_CMAKE.read_text())
    macro = re.search(r"slicerMacroBuildScriptedModule\((.*?)\)", text, re.S)
    assert macro, "slicerMacroBuildScriptedModule missing"
    body = macro.group(1)
    for word in ("NAME ${MODULE_NAME}", "SCRIPTS ${MODULE_PYTHON_SCRIPTS}", "RESOURCES ${MODULE_PYTHON_RESOURCES}",
                 "WITH_GENERIC_TESTS"):
        assert word in " ".join(body.split()), word
    tests = re.findall(r"slicer_add_python_unittest\(\s*SCRIPT\s+(\S+)\s*\)", text)
    assert "${MODULE_NAME}.py" in tests
    selftest = [t for t in tests if t.endswith("Testing/Python/${MODULE_NAME}SelfTest.py")]
    assert selftest and selftest[0].startswith("${CMAKE_CURRENT_SOURCE_DIR}/"), tests
    assert (MODULE_DIR / "Testing" / "Python" / "UQSegmentationSelfTest.py").is_file()
    assert re.search(r"if\(BUILD_TESTING\)", text)


def test_shipped_models_are_installed_where_the_engine_looks():
    text = MODULE_CMAKE.read_text()
    listed = cmake_set(text, "MODULE_MODEL_FILES")
    named = set()  # files beside the weights that a card's loader checks and needs (cxr: node_std_head; ct: ood)
    for card_file in MODELS.glob("*/model.json"):
        card = json.loads(card_file.read_text())
        for section in ("node_calibration", "node_std_head", "ood"):
            spec = card.get(section) or {}
            if isinstance(spec, dict) and spec.get("file"):
                named.add(f"{card_file.parent.name}/{spec['file']}")
    on_disk = sorted(str(p.relative_to(MODELS).as_posix()) for p in MODELS.glob("*/*")
                     if p.name in ("model.json", "weights.safetensors")
                     or str(p.relative_to(MODELS).as_posix()) in named)
    assert named <= set(on_disk), ("a card names a file (node calibration / std head, OOD statistics) that is not in "
                                   "its folder")
    assert on_disk, "no shipped model under Resources/Models"
    assert sorted(listed) == on_disk
    for model_dir in {Path(f).parent for f in on_disk}:
        assert {f"{model_dir}/model.json", f"{model_dir}/weights.safetensors"} <= set(listed)
    flat = " ".join(re.sub(r"#[^\n]*", "", text).split())
    assert "${CMAKE_CURRENT_SOURCE_DIR}/../Resources/Models" in flat
    assert "DESTINATION ${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}/Resources/Models/${_model_dir}" in flat
    assert "${CMAKE_BINARY_DIR}/${Slicer_QTSCRIPTEDMODULES_LIB_DIR}/Resources/Models/${_model_file} COPYONLY" in flat
    # ... which is <module dir>/Resources/Models, on the registry's search path
    from uqseg.models import registry

    assert Path(registry._PACKAGE).parent / "Resources" / "Models" in registry.search_path()


def test_shipped_sample_data_is_installed_where_the_engine_and_the_sample_data_entries_look():
    """MODULE_SAMPLE_DATA_FILES lists exactly the files under Resources/SampleData (a file missing from CMake, or
    listed but absent, fails), installed and copied to <module dir>/Resources/SampleData/<same relative path>."""
    samples = REPO / "Resources" / "SampleData"
    text = MODULE_CMAKE.read_text()
    listed = cmake_set(text, "MODULE_SAMPLE_DATA_FILES")
    assert len(listed) == len(set(listed)), "duplicates in MODULE_SAMPLE_DATA_FILES"
    on_disk = {str(p.relative_to(samples).as_posix()) for p in samples.rglob("*") if p.is_file()}
    assert sorted(on_disk - set(listed)) == [], "files under Resources/SampleData missing from CMakeLists.txt"
    assert sorted(set(listed) - on_disk) == [], "listed in MODULE_SAMPLE_DATA_FILES but not on disk"
    for sample in ("mammo-mlo", "cxr-chest", "ct-abdomen"):
        assert f"{sample}/NOTICE.md" in listed, f"{sample} is shipped without its NOTICE.md"
    flat = " ".join(re.sub(r"#[^\n]*", "", text).split())
    assert "set(_samples_source_dir ${CMAKE_CURRENT_SOURCE_DIR}/../Resources/SampleData)" in flat
    assert "foreach(_sample_file ${MODULE_SAMPLE_DATA_FILES})" in flat
    assert "get_filename_component(_sample_dir ${_sample_file} DIRECTORY)" in flat
    assert ("DESTINATION ${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}/Resources/SampleData/${_sample_dir}"
            in flat)
    assert ("${CMAKE_BINARY_DIR}/${Slicer_QTSCRIPTEDMODULES_LIB_DIR}/Resources/SampleData/${_sample_file} COPYONLY"
            in flat)
    # ... which is <module dir>/Resources/SampleData: where the engine looks first after UQSEG_SAMPLE_DATA, and
    # where the Sample Data module entries look for an installed module file
    from UQSegmentationLib.sample_data import sample_data_dir
    from uqseg import sample_data

    assert Path(sample_data._PACKAGE).parent / "Resources" / "SampleData" in sample_data.search_path()
    assert sample_data_dir(MODULE_DIR / "UQSegmentation.py") == samples.resolve()


# ---------------------------------------------------------------------------------------------------- extension
def top_metadata() -> dict[str, str]:
    text = TOP_CMAKE.read_text()
    return dict(re.findall(r'set\(\s*(EXTENSION_\w+)\s+"([^"]*)"\s*\)', text))


def test_extension_metadata():
    meta = top_metadata()
    text = TOP_CMAKE.read_text()
    assert meta["EXTENSION_CATEGORY"] == "Segmentation"
    assert meta["EXTENSION_CONTRIBUTORS"].strip()
    assert len(meta["EXTENSION_DESCRIPTION"]) > 40
    assert "PyTorch" in meta["EXTENSION_DEPENDS"].split()
    assert re.search(r"project\(\s*UQSegmentation\s*\)", text)
    assert re.search(r"add_subdirectory\(\s*UQSegmentation\s*\)", text)
    for include in ("${Slicer_USE_FILE}", "${Slicer_EXTENSION_GENERATE_CONFIG}", "${Slicer_EXTENSION_CPACK}"):
        assert f"include({include})" in text


# The repository address the metadata once gave (a host, then uqsegmentation/UQSegmentation); it does not exist.
# Split so that this file does not match itself; \b keeps source paths such as UQSegmentation/UQSegmentationLib out.
MADE_UP_ADDRESS = re.compile(r"[\w-]+\.[a-z]{2,}/" + "uqsegmentation/" + r"uqsegmentation\b", re.I)
URL = re.compile(r"https?://[^\s\"'<>)]+")


def help_texts() -> str:
    """The module's helpText and acknowledgementText, as written in UQSegmentation.py."""
    found = []
    for node in ast.walk(gui_tree()):
        if isinstance(node, ast.Assign) and any(getattr(t, "attr", None) in ("helpText", "acknowledgementText")
                                                for t in node.targets):
            found += [c.value for c in ast.walk(node.value) if isinstance(c, ast.Constant) and isinstance(c.value, str)]
    assert len(found) == 2, found
    return "\n".join(found)


def test_no_address_that_does_not_exist():
    """The project has no public repository: no made-up address, and no URL at all in the metadata or the help."""
    for path in (TOP_CMAKE, MODULE_CMAKE, GUI, REPO / "README.md", REPO / "pyproject.toml"):
        hits = [line for line in path.read_text(encoding="utf-8").splitlines() if MADE_UP_ADDRESS.search(line)]
        assert hits == [], f"{path.name} points at an address that does not exist: {hits}"
    meta = top_metadata()
    for name in ("EXTENSION_HOMEPAGE", "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS"):
        assert meta[name] == "", f"{name} must stay empty until the project has a public repository: {meta[name]!r}"
    assert URL.findall(help_texts()) == []


def test_icon_and_screenshots_are_kept_in_the_repository():
    """What the empty URLs will point at once there is a repository: the icon and one screenshot per task."""
    assert (REPO / "Resources" / "Icons" / "UQSegmentation.png").is_file()
    assert (MODULE_DIR / "Resources" / "Icons" / "UQSegmentation.png").is_file()
    from UQSegmentationLib.catalog import task_catalog

    shots = REPO / "Resources" / "Screenshots"
    missing = [t.id for t in task_catalog() if not (shots / f"{t.id}.png").is_file()]
    assert task_catalog() and missing == [], f"tasks without a screenshot in Resources/Screenshots: {missing}"
    comment = " ".join(re.findall(r"#([^\n]*)", TOP_CMAKE.read_text()))
    assert "Resources/Icons/UQSegmentation.png" in comment and "Resources/Screenshots/" in comment


# ---------------------------------------------------------------------------------------------------- .ui file
def ui_widgets() -> dict[str, str]:
    """name → class of every widget in the .ui."""
    root = ET.parse(UI).getroot()
    return {w.get("name"): w.get("class") for w in root.iter("widget")}


def gui_tree() -> ast.Module:
    return ast.parse(GUI.read_text(encoding="utf-8"))


def parameter_fields() -> set[str]:
    for node in gui_tree().body:
        if isinstance(node, ast.ClassDef) and node.name == "UQSegmentationParameterNode":
            assert any(getattr(d, "id", None) == "parameterNodeWrapper" for d in node.decorator_list)
            return {s.target.id for s in node.body if isinstance(s, ast.AnnAssign)}
    raise AssertionError("UQSegmentationParameterNode not found")


def test_ui_has_every_widget_the_code_uses():
    widgets = ui_widgets()
    used = set(re.findall(r"self\.ui\.(\w+)", GUI.read_text(encoding="utf-8")))
    assert used, "the widget uses no .ui widget?"
    assert sorted(used - set(widgets)) == [], "widgets used in UQSegmentation.py but missing from the .ui"
    root = ET.parse(UI).getroot()
    assert root.find("widget").get("class") == "qMRMLWidget"
    assert root.findtext("class") == "UQSegmentation"
    for name in ("inputVolumeSelector", "taskComboBox", "deviceComboBox", "applyButton", "progressBar", "statusLabel",
                 "overlayOpacitySliderWidget", "overlayThresholdSliderWidget"):
        assert name in widgets


def test_panel_sets_only_widgets_of_the_ui_and_properties_they_have():
    """UQSegmentation.py sets what UQSegmentationLib.panel computes by widget name ({name: {property: value}})."""
    from types import SimpleNamespace

    from UQSegmentationLib import panel

    status = SimpleNamespace(running=True, indeterminate=False, progress=0.5, message="m", error="")
    properties = {**panel.run_view(status).properties(), **panel.ReviewView().properties()}
    widgets = ui_widgets()
    assert sorted(set(properties) - set(widgets)) == [], "panel names widgets the .ui does not have"
    settable = {"QPushButton": {"text", "toolTip", "enabled"}, "QLabel": {"text"}, "QComboBox": {"enabled"},
                "QProgressBar": {"visible", "maximum", "value", "format"}}
    for name, values in properties.items():
        assert set(values) <= settable[widgets[name]], (name, widgets[name], set(values))
    source = GUI.read_text(encoding="utf-8")
    assert "panel.run_view(" in source and "panel.review_view(" in source and "setattr(getattr(self.ui, name)" in source


def test_ui_custom_widgets_are_declared_and_parameters_exist():
    root = ET.parse(UI).getroot()
    declared = {c.findtext("class") for c in root.iter("customwidget")}
    used = {cls for cls in ui_widgets().values() if not cls.startswith("Q")}
    assert used <= declared, f"custom widgets not declared: {used - declared}"
    assert {"qMRMLNodeComboBox", "ctkCollapsibleButton", "ctkSliderWidget"} <= used
    bound = {}
    for w in root.iter("widget"):
        for prop in w.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound[w.get("name")] = prop.findtext("string")
    fields = parameter_fields()
    assert set(bound.values()) <= fields, f"SlicerParameterName without a parameter: {set(bound.values()) - fields}"
    assert bound["inputVolumeSelector"] == "inputVolume"
    # The task list is the engine's, filled at run time: the combo box must be empty in the .ui.
    task_combo = next(w for w in root.iter("widget") if w.get("name") == "taskComboBox")
    assert task_combo.findall("item") == []
    # the volume selector is wired to the scene
    connections = {(c.findtext("signal"), c.findtext("receiver")) for c in root.iter("connection")}
    assert ("mrmlSceneChanged(vtkMRMLScene*)", "inputVolumeSelector") in connections


# ---------------------------------------------------------------------------------------------------- thin GUI
def test_gui_module_follows_the_template():
    tree = gui_tree()
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    bases = {name: {getattr(b, "id", getattr(b, "attr", "")) for b in c.bases} for name, c in classes.items()}
    assert "ScriptedLoadableModule" in bases["UQSegmentation"]
    assert {"ScriptedLoadableModuleWidget", "VTKObservationMixin"} <= bases["UQSegmentationWidget"]
    assert "ScriptedLoadableModuleLogic" in bases["UQSegmentationLogic"]
    assert "ScriptedLoadableModuleTest" in bases["UQSegmentationTest"]
    assert "UQSegmentationParameterNode" in classes
    source = GUI.read_text(encoding="utf-8")
    assert 'loadUI(self.resourcePath("UI/UQSegmentation.ui"))' in source
    assert "childWidgetVariables" in source and "connectGui(self.ui)" in source
    assert 'translate("qSlicerAbstractCoreModule", "Segmentation")' in source
    for author in ("Zech", "Verboom", "Cosarinsky", "Kampen"):  # the four papers the tasks implement
        assert author in source
    assert "acknowledgementText" in source and "contributors" in source


def test_gui_module_holds_no_maths_and_builds_no_mrml():
    tree = gui_tree()
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"numpy", "torch", "scipy", "SimpleITK", "monai", "uqseg", "vtk.util"}, imported
    source = GUI.read_text(encoding="utf-8")
    for forbidden in ("AddNewNodeByClass", "CreateNodeByClass", ".AddNode(", "arrayFrom", "updateVolumeFromArray",
                      "vtkMRMLScalarVolumeNode()", "vtkMRMLSegmentationNode", "vtkMRMLMarkups", "StorageNode"):
        assert forbidden not in source, forbidden
    assert not re.search(r"\bnp\.|\bmath\.", source)
    compile(source, str(GUI), "exec")


LIB = MODULE_DIR / "UQSegmentationLib"


def lib_files() -> list[Path]:
    """Every .py file of UQSegmentationLib, subpackages included."""
    return sorted(p for p in LIB.rglob("*.py") if "__pycache__" not in p.parts)


def imported_modules(tree: ast.AST, top_level_only: bool = False) -> list[str]:
    """Absolute module names imported in `tree` (relative imports left out); top_level_only: outside functions."""
    nodes = tree.body if top_level_only else ast.walk(tree)
    names = []
    for node in nodes:
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_slicer_lib_never_imports_qt():
    """UQSegmentationLib runs on slicer-core too: no Qt, no ctk (docs/architecture.md)."""
    files = lib_files()
    assert {"UQSegmentationLib/review/controller.py", "UQSegmentationLib/display/band.py"} <= {
        p.relative_to(MODULE_DIR).as_posix() for p in files}
    for path in files:
        for name in imported_modules(ast.parse(path.read_text(encoding="utf-8"))):
            assert name.split(".")[0] not in {"qt", "ctk", "PythonQt", "PySide6", "PyQt5", "qtpy"}, \
                f"{path.relative_to(MODULE_DIR)} imports {name}"


# The Lib files that import the engine, as UQSegmentationLib/__init__.py lists them (with the reason).
LIB_FILES_IMPORTING_THE_ENGINE = {
    "input_volume.py", "review/regions.py", "review/session.py", "review/save.py",
    "correction/models.py", "correction/pectoral.py", "correction/cxr.py", "correction/labels.py",
    "display/band.py",
}


def test_lib_imports_the_engine_only_where_its_docs_say_and_only_inside_functions():
    """The layers engine ← UQSegmentationLib ← GUI: the package docstring names every Lib file that imports `uqseg`
    (and no other); each imports it inside the function that needs it, so importing the Lib loads neither the engine
    nor torch; the engine never imports the Lib, nor the Lib the GUI."""
    importing = set()
    for path in lib_files():
        rel = path.relative_to(LIB).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = imported_modules(tree)
        if any(n.split(".")[0] == "uqseg" for n in names):
            importing.add(rel)
        top = [n for n in imported_modules(tree, top_level_only=True) if n.split(".")[0] in ("uqseg", "torch")]
        assert top == [], f"{rel} imports {top} at module level"
        assert not any(n.split(".")[0] in ("UQSegmentation", "UQSegmentationWeb") for n in names), \
            f"{rel} imports a GUI (the Slicer module or the web app)"
    assert importing == LIB_FILES_IMPORTING_THE_ENGINE
    doc = ast.get_docstring(ast.parse((LIB / "__init__.py").read_text(encoding="utf-8")))
    listed = set(re.findall(r"^\s{4}([\w/]+\.py)\s+`uqseg", doc, re.M))
    assert listed == LIB_FILES_IMPORTING_THE_ENGINE, "UQSegmentationLib/__init__.py's list of engine imports"
    assert len(importing) == 9 and "Nine files" in doc and "here do import the engine" in doc
    for path in sorted((MODULE_DIR / "uqseg").rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        names = imported_modules(ast.parse(path.read_text(encoding="utf-8")))
        assert not any(n.split(".")[0] in ("UQSegmentationLib", "UQSegmentation", "UQSegmentationWeb")
                       for n in names), \
            f"the engine's {path.relative_to(MODULE_DIR)} imports the Slicer side"


def test_lib_docstrings_cite_only_files_of_the_repository():
    """No reference to notes outside the repository; the project's docs that the Lib cites exist."""
    for path in lib_files() + [GUI]:
        text = path.read_text(encoding="utf-8")
        for outside in ("ARCHITECTURE.md", "SLICER_CORE.md", "/work/", "../shared/"):
            assert outside not in text, f"{path.relative_to(MODULE_DIR)} cites {outside}"
        for cited in re.findall(r"docs/[\w.-]+\.md", text):
            assert (REPO / cited).is_file(), f"{path.relative_to(MODULE_DIR)} cites {cited}, which does not exist"
