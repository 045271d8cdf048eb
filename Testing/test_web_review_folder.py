"""The review app's folder logic without a browser (UQSegmentationWeb/folder.py, editing.py): which cases a folder
holds and in which order, and the two-reviewer rules (marks, stale marks, a save refused over a newer save). The
same rules seen through the page: Testing/test_web_review.py.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from UQSegmentationWeb import editing
from UQSegmentationWeb.folder import FolderError, read_cases


def _case(folder, name, task="mammo-breast", u=None, **flags):
    d = folder / name
    d.mkdir(parents=True)
    (d / "summary.json").write_text(json.dumps({"task": task, "case": name, "image_uncertainty": u, **flags}))
    return d


def test_cases_in_queue_order_then_by_uncertainty_and_refusals(tmp_path):
    out = tmp_path / "out"
    _case(out, "a", u=0.1)
    _case(out, "b", u=0.9, ood=True)
    _case(out, "c", u=0.5)
    _case(out, "d")  # no image_uncertainty: last
    (out / ".review").mkdir()  # hidden folders (edit marks, staging) are not cases
    (out / "corrections").mkdir()
    assert [c.case for c in read_cases(out)] == ["b", "c", "a", "d"]
    assert read_cases(out)[0].flags == ("ood",) and [c.rank for c in read_cases(out)] == [1, 2, 3, 4]
    # queue.csv wins (the engine's own order), cases it does not list follow
    (out / "queue.csv").write_text("case,image_uncertainty,multimodal,ood,status\na,0.1,0,0,ok\nc,0.5,0,0,ok\n")
    assert [c.case for c in read_cases(out)] == ["a", "c", "b", "d"]
    # one case folder
    assert [(c.case, c.task) for c in read_cases(out / "c")] == [("c", "mammo-breast")]
    for bad, reason in ((tmp_path / "missing", "no such folder"), (tmp_path, "holds no results")):
        with pytest.raises(FolderError, match=reason):
            read_cases(bad)


def test_marks_of_two_reviewers_and_stale_marks(tmp_path):
    case = _case(tmp_path / "out", "x")
    editing.write_mark(case, "server-a", "alice")
    editing.write_mark(case, "server-b", "bob")
    assert editing.held_by_others(case, "server-a") == ["bob"]
    assert editing.held_by_others(case, "server-b") == ["alice"]
    editing.remove_mark(case, "server-a")  # only one's own mark goes
    assert editing.held_by_others(case, "server-c") == ["bob"]
    path = editing.marks_folder(case) / "server-b.json"
    data = json.loads(path.read_text())
    data["beat"] = time.time() - editing.STALE_S - 1  # a crashed server's mark
    path.write_text(json.dumps(data))
    assert editing.held_by_others(case, "server-c") == []


def test_a_save_over_a_newer_save_is_refused(tmp_path):
    case = _case(tmp_path / "out", "x")
    record = tmp_path / "out" / "corrections" / "corrections" / "x.json"
    opened = editing.record_saved_time(case, "x")
    assert opened is None
    with editing.checked_save(case, "x", opened):  # nobody saved in between: goes ahead
        record.parent.mkdir(parents=True)
        record.write_text(json.dumps({"saved": "2026-12-04T10:00:00Z"}))
    mine = editing.record_saved_time(case, "x")
    record.write_text(json.dumps({"saved": "2026-12-04T10:05:00Z"}))  # someone else saves
    with pytest.raises(editing.SaveRefused, match="saved by someone else at 2026-12-04T10:05:00Z"):
        with editing.checked_save(case, "x", mine):
            raise AssertionError("the body must not run")


def test_paint_click_is_a_disc_on_the_slice_shown():
    """`painting.disc_stroke`: voxels within the radius (mm, through IJK→RAS with anisotropic spacing and a flipped
    axis), only on the slice through the click."""
    from UQSegmentationWeb.painting import disc_stroke

    m = np.array([[-0.5, 0, 0, 10.0], [0, 2.0, 0, -4.0], [0, 0, 3.0, 7.0], [0, 0, 0, 1]])  # i: -0.5 mm, j: 2 mm
    shape = (5, 40, 60)  # slice, row, col
    k, j, i = 2, 20, 30
    ras = m @ [i, j, k, 1.0]
    stroke = disc_stroke(m, shape, ras[:3], radius_mm=4.0)
    assert stroke[k].sum() > 0 and stroke.sum() == stroke[k].sum()  # one slice
    rows, cols = np.nonzero(stroke[k])
    assert set(rows - j) == {-2, -1, 0, 1, 2} and set(cols - i) == set(range(-8, 9))  # 4 mm: 2 rows, 8 columns
    flat = disc_stroke(m, (40, 60), (m @ [i, j, 0, 1.0])[:3], radius_mm=4.0)  # a 2-D image: [row, col]
    assert flat.shape == (40, 60) and flat[j, i] and flat.sum() == stroke[k].sum()
