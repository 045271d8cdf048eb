"""The shipped samples' entries in Slicer's Sample Data module (`UQSegmentationLib.sample_data`), and the module's
call that registers them at start-up.

Slicer's SampleData module runs only inside the Slicer application (it needs Qt), so a stand-in with the same
`SampleDataLogic.registerCustomSampleDataSource` static method records the calls; each recorded call is then checked
the way SampleData's own `SampleDataSource` checks its arguments (one URI, file name, node name, file type and
checksum per file), and every URI must be a `file://` URI of an existing shipped file with the right checksum.
"""

from __future__ import annotations

import ast
import hashlib
import shutil
import sys
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "UQSegmentation"
GUI = MODULE_DIR / "UQSegmentation.py"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from UQSegmentationLib import sample_data  # noqa: E402

REGISTER_PARAMETERS = {"category", "sampleName", "uris", "fileNames", "nodeNames", "customDownloader",
                       "thumbnailFileName", "loadFileType", "loadFiles", "loadFileProperties", "checksums"}


class FakeSampleDataModule:
    """Stands in for Slicer's `SampleData` module: records registerCustomSampleDataSource's keyword arguments."""

    def __init__(self):
        calls = self.calls = []

        class SampleDataLogic:
            @staticmethod
            def registerCustomSampleDataSource(**kwargs):
                unknown = set(kwargs) - REGISTER_PARAMETERS
                assert not unknown, f"registerCustomSampleDataSource has no parameter {unknown}"
                calls.append(kwargs)

        self.SampleDataLogic = SampleDataLogic


def local_path(uri: str) -> Path:
    parsed = urlparse(uri)
    assert parsed.scheme == "file", uri
    return Path(url2pathname(parsed.path))


def check_call(call: dict, sample_root: Path) -> None:
    n = len(call["uris"])
    assert n >= 1
    for key in ("fileNames", "nodeNames", "loadFileType", "checksums"):
        assert isinstance(call[key], list) and len(call[key]) == n, key
    assert call["category"] == "UQSegmentation"
    for uri, name, checksum in zip(call["uris"], call["fileNames"], call["checksums"]):
        path = local_path(uri)
        assert path.is_file(), path
        assert path.resolve().is_relative_to(sample_root.resolve()), f"{path} is not a shipped sample"
        assert checksum == "SHA256:" + hashlib.sha256(path.read_bytes()).hexdigest()
        # the cached copy keeps the file's own extension (the readers go by it) and is unique to the project
        assert name.startswith("UQSegmentation-") and name.endswith(path.name)
    assert set(call["loadFileType"]) <= {"VolumeFile", "SegmentationFile"}
    assert call["thumbnailFileName"] is None or Path(call["thumbnailFileName"]).is_file()


def test_registers_the_three_samples_from_the_source_tree():
    fake = FakeSampleDataModule()
    names = sample_data.register_sample_data(fake, GUI)
    assert names == ["UQSegMammogramMLO", "UQSegChestXray", "UQSegAbdominalCT"]
    assert [c["sampleName"] for c in fake.calls] == names
    for call in fake.calls:
        check_call(call, REPO / "Resources" / "SampleData")
    by_name = {c["sampleName"]: c for c in fake.calls}
    assert [local_path(u).name for u in by_name["UQSegMammogramMLO"]["uris"]] == ["mlo.dcm"]
    assert [local_path(u).name for u in by_name["UQSegChestXray"]["uris"]] == ["chest.dcm"]
    ct = by_name["UQSegAbdominalCT"]
    assert [local_path(u).name for u in ct["uris"]] == ["ct.nii.gz", "liver.nii.gz"]
    assert ct["loadFileType"] == ["VolumeFile", "SegmentationFile"]
    assert ct["nodeNames"] == ["UQSegAbdominalCT", "UQSegCTLiver"]
    # the 2-D DICOM files are read alone, not as part of whatever series sits next to them in Slicer's cache
    assert by_name["UQSegChestXray"]["loadFileProperties"] == {"singleFile": True}
    all_names = [n for c in fake.calls for n in c["nodeNames"]] + [f for c in fake.calls for f in c["fileNames"]]
    assert len(all_names) == len(set(all_names)), "node or cache file names repeat"
    assert Path(fake.calls[0]["thumbnailFileName"]) == MODULE_DIR / "Resources" / "Icons" / "UQSegmentation.png"


def test_registers_from_an_installed_extension(tmp_path):
    """Installed: UQSegmentation.py and Resources/SampleData side by side in qt-scripted-modules."""
    modules = tmp_path / "lib" / "Slicer-5.8" / "qt-scripted-modules"
    shutil.copytree(REPO / "Resources" / "SampleData", modules / "Resources" / "SampleData")
    module_file = modules / "UQSegmentation.py"
    module_file.write_text("")
    assert sample_data.sample_data_dir(module_file) == modules.resolve() / "Resources" / "SampleData"
    fake = FakeSampleDataModule()
    assert len(sample_data.register_sample_data(fake, module_file)) == 3
    for call in fake.calls:
        check_call(call, modules / "Resources" / "SampleData")
        assert call["thumbnailFileName"] is None  # no icon copied into this layout


def test_missing_files_leave_their_sample_out(tmp_path):
    modules = tmp_path / "qt-scripted-modules"
    shutil.copytree(REPO / "Resources" / "SampleData" / "cxr-chest", modules / "Resources" / "SampleData" / "cxr-chest")
    fake = FakeSampleDataModule()
    assert sample_data.register_sample_data(fake, modules / "UQSegmentation.py") == ["UQSegChestXray"]
    assert sample_data.register_sample_data(FakeSampleDataModule(), tmp_path / "empty" / "UQSegmentation.py") == []


def test_samples_agree_with_the_engine_and_cover_every_task():
    from uqseg import sample_data as engine

    covered = set()
    for sample in sample_data.SAMPLES:
        assert engine.SAMPLES[sample.folder] in sample.files, "the Sample Data entry lacks the task's input file"
        for task in sample.tasks:
            assert engine.TASK_SAMPLES[task] == sample.folder
        covered |= set(sample.tasks)
    assert covered == set(engine.TASK_SAMPLES)


def test_module_registers_the_samples_once_slicer_has_started():
    """UQSegmentation.py: the module's __init__ connects startupCompleted() to registerSampleData, which hands
    Slicer's SampleData module and the module file to UQSegmentationLib.sample_data.register_sample_data."""
    tree = ast.parse(GUI.read_text(encoding="utf-8"))
    module_class = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "UQSegmentation")
    init = next(n for n in module_class.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    connects = [ast.unparse(c) for c in ast.walk(init) if isinstance(c, ast.Call) and ast.unparse(c.func).endswith(
        "app.connect")]
    assert "slicer.app.connect('startupCompleted()', registerSampleData)" in connects, connects
    function = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "registerSampleData")
    body = ast.unparse(function)
    assert "import SampleData" in body
    assert "from UQSegmentationLib.sample_data import register_sample_data" in body
    assert "register_sample_data(SampleData, __file__)" in body


def test_the_sample_data_download_step_copies_each_file_uri(tmp_path):
    """SampleDataLogic.downloadFile fetches every URI with urllib.request.urlretrieve into Slicer's cache under the
    entry's file name, then checks the checksum: done here for real with the registered arguments."""
    from urllib.request import urlretrieve

    fake = FakeSampleDataModule()
    sample_data.register_sample_data(fake, GUI)
    for call in fake.calls:
        for uri, name, checksum in zip(call["uris"], call["fileNames"], call["checksums"]):
            copy, _ = urlretrieve(uri, tmp_path / name)
            assert "SHA256:" + hashlib.sha256(Path(copy).read_bytes()).hexdigest() == checksum
