"""The engine finds the shipped samples (`uqseg.sample_data`) in the repository and in an installed extension.

The installed extension is laid out as Slicer installs it (UQSegmentation/CMakeLists.txt): the engine `uqseg/` next
to UQSegmentation.py in `lib/Slicer-5.x/qt-scripted-modules/`, the samples in `<that folder>/Resources/SampleData`.
The lookup is run in a fresh interpreter that imports `uqseg` from there (PYTHONPATH, working directory elsewhere),
so neither the repository nor the editable install can answer for it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "UQSegmentation"
SAMPLE_DATA = REPO / "Resources" / "SampleData"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from uqseg import sample_data  # noqa: E402

PROBE = """
import json, uqseg
from uqseg import sample_data
from uqseg.demo import ct_sample_dir
print(json.dumps({
    "uqseg": uqseg.__file__,
    "search_path": [str(p) for p in sample_data.search_path()],
    "samples": {name: str(sample_data.sample_file(name)) for name in sample_data.SAMPLES},
    "tasks": {task: str(sample_data.task_sample(task)) for task in sample_data.TASK_SAMPLES},
    "ct_dir": str(ct_sample_dir()),
}))
"""


def install_like_slicer(root: Path) -> Path:
    """`root/lib/Slicer-5.8/qt-scripted-modules` holding uqseg/ and Resources/SampleData, as the extension installs
    them; returns that folder."""
    modules = root / "lib" / "Slicer-5.8" / "qt-scripted-modules"
    shutil.copytree(MODULE_DIR / "uqseg", modules / "uqseg", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(SAMPLE_DATA, modules / "Resources" / "SampleData")
    return modules


def probe(modules: Path, cwd: Path, extra_env: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("UQSEG_SAMPLE_DATA", "PYTHONPATH")}
    env["PYTHONPATH"] = str(modules)
    env.update(extra_env or {})
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_installed_extension_finds_all_three_samples(tmp_path):
    modules = install_like_slicer(tmp_path / "Slicer")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    found = probe(modules, elsewhere)
    assert Path(found["uqseg"]).parent == modules / "uqseg", "uqseg was not imported from the installed copy"
    installed = modules / "Resources" / "SampleData"
    assert found["search_path"][0] == str(installed)
    assert found["samples"] == {
        "mammo-mlo": str(installed / "mammo-mlo" / "mlo.dcm"),
        "cxr-chest": str(installed / "cxr-chest" / "chest.dcm"),
        "ct-abdomen": str(installed / "ct-abdomen" / "ct.nii.gz"),
    }
    assert found["tasks"] == {
        "mammo-pectoral": found["samples"]["mammo-mlo"],
        "mammo-breast": found["samples"]["mammo-mlo"],
        "cxr-landmarks": found["samples"]["cxr-chest"],
        "ct-organs": found["samples"]["ct-abdomen"],
    }
    assert found["ct_dir"] == str(installed / "ct-abdomen")
    assert all(Path(p).is_file() for p in found["samples"].values())


def test_environment_variable_comes_first(tmp_path):
    modules = install_like_slicer(tmp_path / "Slicer")
    override = tmp_path / "my-samples"
    (override / "cxr-chest").mkdir(parents=True)
    shutil.copyfile(SAMPLE_DATA / "cxr-chest" / "chest.dcm", override / "cxr-chest" / "chest.dcm")
    found = probe(modules, tmp_path, {"UQSEG_SAMPLE_DATA": os.pathsep.join([str(tmp_path / "absent"),
                                                                            str(override)])})
    assert found["samples"]["cxr-chest"] == str(override / "cxr-chest" / "chest.dcm")
    # the samples the override lacks still come from the installed extension
    assert found["samples"]["mammo-mlo"] == str(modules / "Resources" / "SampleData" / "mammo-mlo" / "mlo.dcm")


def test_a_missing_sample_says_where_it_looked(tmp_path, monkeypatch):
    module_dir = tmp_path / "qt-scripted-modules"
    monkeypatch.setattr(sample_data, "_PACKAGE", module_dir / "uqseg")
    monkeypatch.setenv("UQSEG_SAMPLE_DATA", str(tmp_path / "nothing-here"))
    with pytest.raises(sample_data.SampleNotFound) as error:
        sample_data.sample_dir("cxr-chest")
    assert str(tmp_path / "nothing-here") in str(error.value)
    assert str(module_dir / "Resources" / "SampleData") in str(error.value)
    assert sample_data.task_sample("cxr-landmarks") is None
    assert sample_data.task_sample("no-such-task") is None


def test_repository_checkout_finds_the_repository_samples(monkeypatch):
    monkeypatch.delenv("UQSEG_SAMPLE_DATA", raising=False)
    for name, main_file in sample_data.SAMPLES.items():
        assert sample_data.sample_file(name) == SAMPLE_DATA / name / main_file
    assert set(sample_data.TASK_SAMPLES.values()) == set(sample_data.SAMPLES)


def test_every_engine_task_has_a_shipped_sample():
    from uqseg.tasks import TASKS

    assert sorted(TASKS) == sorted(sample_data.TASK_SAMPLES)
