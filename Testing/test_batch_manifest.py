"""INPUT of `uqseg batch` (`uqseg.batch.manifest`): a folder, a glob, a CSV or Parquet manifest → cases with sha256.

Checked on small PNG files written here: the four kinds of INPUT give the same cases; ids are stable and never a
table folder's name; the same content listed twice is one case (with a note); an unreadable path stays a case with
its reason; a manifest without a `path` column or a glob matching nothing is one InputError. No Ray is started.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image as PILImage

pa = pytest.importorskip("pyarrow", reason="uqseg[batch] (pyarrow) is part of the test extras")
import pyarrow.parquet as pq  # noqa: E402

from uqseg.batch.manifest import collect  # noqa: E402
from uqseg.errors import InputError  # noqa: E402


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, name in enumerate(["b.png", "a.png", "cases.png"]):
        PILImage.fromarray(np.full((40, 40), 10 * i, np.uint8)).save(folder / name)
    return folder


def test_folder_glob_csv_and_parquet_give_the_same_cases(images, tmp_path):
    by_folder, notes = collect(str(images), ndim=2)
    assert notes == []
    assert [c.case_id for c in by_folder] == ["a", "b", "cases_2"]  # sorted; "cases" is the table folder's name
    for c in by_folder:
        assert c.sha256 == hashlib.sha256(open(c.input_path, "rb").read()).hexdigest() and c.read_error is None
    by_glob, _ = collect(str(images / "*.png"), ndim=2)
    (tmp_path / "m.csv").write_text("path,label\nimgs/a.png,x\nimgs/b.png,y\nimgs/cases.png,z\n")  # relative paths
    by_csv, _ = collect(str(tmp_path / "m.csv"), ndim=2)
    pq.write_table(pa.table({"path": [str(images / n) for n in ("a.png", "b.png", "cases.png")]}), tmp_path / "m.parquet")
    by_parquet, _ = collect(str(tmp_path / "m.parquet"), ndim=2)
    assert by_folder == by_glob == by_csv == by_parquet


def test_the_same_content_twice_is_one_case_and_an_unreadable_path_is_a_case(images, tmp_path):
    (images / "copy_of_a.png").write_bytes((images / "a.png").read_bytes())
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path\n{images / 'a.png'}\n{images / 'copy_of_a.png'}\n{tmp_path / 'gone.png'}\n")
    cases, notes = collect(str(manifest), ndim=2)
    assert [c.case_id for c in cases] == ["a", "gone"]
    assert len(notes) == 1 and "copy_of_a.png" in notes[0] and "same content" in notes[0]
    gone = cases[1]
    assert gone.sha256 is None and "cannot be read" in gone.read_error and gone.key == f"path:{gone.input_path}"


def test_bad_inputs_are_one_input_error(tmp_path):
    (tmp_path / "m.csv").write_text("file\nx.png\n")
    with pytest.raises(InputError, match="has no 'path' column"):
        collect(str(tmp_path / "m.csv"), ndim=2)
    with pytest.raises(InputError, match="matches no files"):
        collect(str(tmp_path / "*.dcm"), ndim=2)
    with pytest.raises(InputError, match="does not exist"):
        collect(str(tmp_path / "nothing"), ndim=2)
