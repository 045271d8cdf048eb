"""The Slicer module's "Export to DICOM" (UQSegmentationLib/dicom_export.py) on slicer-core: the real run logic
predicts ct-organs on a volume node read from the shipped CT series (as Slicer runs it: the volume written to NRRD,
the engine in a child process), then the export writes the SEG and Parametric Map through the engine
(`uqseg export-dicom`) over the series the volume came from and hands them to the importer — here one that reads
the imported folder back, in place of Slicer's DICOM database import."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "UQSegmentation"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from UQSegmentationLib.dicom_export import DicomExportError, export_to_dicom, files_for_volume  # noqa: E402

CT_SERIES = REPO / "Resources" / "SampleData" / "ct-abdomen" / "dicom"


class FolderDatabase:
    """The one call of ctkDICOMDatabase the export makes (fileForInstance), over a folder of DICOM files."""

    def __init__(self, folder: Path):
        self.files = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID): str(f)
                      for f in sorted(folder.iterdir())}

    def fileForInstance(self, uid: str) -> str:
        return self.files.get(uid, "")


@pytest.fixture
def ct_result(mrml_scene, tmp_path):
    from UQSegmentationLib import load_input_volume
    from UQSegmentationLib.logic import SUCCEEDED, UQSegmentationLogic

    volume = load_input_volume(mrml_scene.scene, CT_SERIES, name="ct")
    database = FolderDatabase(CT_SERIES)
    volume.SetAttribute("DICOM.instanceUIDs", " ".join(database.files))  # as Slicer's DICOM loader sets it
    logic = UQSegmentationLogic(scene=mrml_scene.scene)
    status = logic.run(volume, "ct-organs", device="cpu", samples=0, timeout=300)
    assert status.state == SUCCEEDED, status.error
    yield volume, database, status.case_dir
    logic.cleanup()


def test_export_writes_and_imports_seg_and_map_of_the_current_result(ct_result, tmp_path):
    volume, database, case_dir = ct_result
    imported = []
    files = export_to_dicom(case_dir, source_files=files_for_volume(volume, database), work_dir=tmp_path / "work",
                            importer=lambda folder: imported.extend(sorted(Path(folder).iterdir())))
    assert [f.name for f in files] == ["segmentation.dcm", "uncertainty.dcm"] == [f.name for f in imported]
    series = [pydicom.dcmread(f, stop_before_pixels=True) for f in database.files.values()]
    seg = pydicom.dcmread(imported[0])
    assert seg.StudyInstanceUID == series[0].StudyInstanceUID
    assert seg.FrameOfReferenceUID == series[0].FrameOfReferenceUID
    import nrrd

    from dicom_checks import seg_labelmap
    from uqseg.io.dicom_series import load_dicom_series

    order = [str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID)
             for f in load_dicom_series(CT_SERIES).meta["files"]]
    labelmap, _ = nrrd.read(str(case_dir / "segmentation.seg.nrrd"), index_order="C")
    np.testing.assert_array_equal(seg_labelmap(seg, order, labelmap.shape), labelmap)
    # over the wrong source the engine refuses, and its one line is the message
    chest = REPO / "Resources" / "SampleData" / "cxr-chest" / "chest.dcm"
    with pytest.raises(DicomExportError, match=r"^error: .*is a 2-D image"):
        export_to_dicom(case_dir, source_files=[chest], work_dir=tmp_path / "work2", importer=lambda folder: None)


def test_export_of_a_volume_not_from_dicom_is_one_line(mrml_scene):
    volume = mrml_scene.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "drawn")
    with pytest.raises(DicomExportError, match=r"^drawn: was not loaded from DICOM"):
        files_for_volume(volume, FolderDatabase(CT_SERIES))
