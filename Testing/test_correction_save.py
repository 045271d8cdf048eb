"""Saving corrected labels with provenance, atomically (uqseg.correction.save, uqseg.correction.transaction)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from uqseg.correction.pectoral_path import correct_pectoral
from uqseg.correction.regions import pectoral_regions
from uqseg.correction.save import (PECTORAL_LABEL, RECORD_FORMAT, read_record, save_label_correction,
                                   save_landmark_correction, save_pectoral_correction, verify_record)
from uqseg.correction.thresholds import Threshold
from uqseg.correction.transaction import FileSet
from uqseg.cxr.landmarks_io import read_landmarks
from uqseg.mammo import boundary_grid as bg
from uqseg.mammo.pectoral import decode_to_input

MODEL = {"id": "mammo-pectoral-hhr", "version": "1.0.0"}
SHAPE = (960, 480)


def pectoral_result(flipped: bool = False):
    """A result decoded from a synthetic heatmap (one sloping mode, σ 6 grid columns in rows 40-60)."""
    g = bg.GRID
    cols = np.arange(g, dtype=np.float64)
    r = np.arange(g)[:, None]
    width = np.where((r >= 40) & (r <= 60), 6.0, 2.0)
    p = np.exp(-0.5 * ((cols[None, :] - (180.0 - 0.9 * r)) / width) ** 2)
    p = (p / p.sum(1, keepdims=True)).astype(np.float32)
    mean = p.astype(np.float64) @ cols
    var = p.astype(np.float64) @ cols**2 - mean**2 + 0.1
    return decode_to_input(mean, var, p, SHAPE, flipped, "synthetic")


def hidden_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*"))


def read_boundary_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# ------------------------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("flipped", [False, True])
def test_pectoral_correction_round_trip(tmp_path, flipped):
    base = pectoral_result(flipped)
    click_row = 200
    click_col = float(base.mean_col[base.rows.tolist().index(click_row)]) + (-9.0 if not flipped else 9.0)
    cor = correct_pectoral(base, [(click_row, click_col)])
    regions = pectoral_regions(base.rows, base.std_col, base.multimodal, base.mean_col, threshold=8.0)
    assert regions
    rec = save_pectoral_correction(tmp_path, "CASE_1", cor, model=MODEL, regions=regions, status={1: "corrected"},
                                   threshold=Threshold(8.0, "caller"), input_path="images/CASE_1.png")
    # boundary CSV: the columns and values of boundary.csv
    rows = read_boundary_csv(tmp_path / "boundary" / "CASE_1.csv")
    assert list(rows[0]) == ["row", "mean_col", "std_col", "multimodal"]
    assert [int(x["row"]) for x in rows] == cor.rows.tolist()
    np.testing.assert_allclose([float(x["mean_col"]) for x in rows], cor.mean_col, atol=5e-4)
    assert float(rows[cor.rows.tolist().index(click_row)]["mean_col"]) == pytest.approx(click_col, abs=5e-4)
    # label PNG as the training adapter reads it: labels/NAME.png, pectoral muscle == 3, input orientation
    png = PILImage.open(tmp_path / "labels" / "CASE_1.png")
    assert png.mode == "L" and png.size == (SHAPE[1], SHAPE[0])
    np.testing.assert_array_equal(np.asarray(png) == PECTORAL_LABEL, cor.muscle_mask().astype(bool))
    assert set(np.unique(np.asarray(png)).tolist()) == {0, PECTORAL_LABEL}
    # the record
    disk = read_record(tmp_path, "CASE_1")
    assert disk == json.loads(json.dumps(rec))
    assert disk["format"] == RECORD_FORMAT and disk["task"] == "mammo-pectoral" and disk["model"] == MODEL
    assert [r["status"] for r in disk["regions"]] == ["corrected"] + ["unreviewed"] * (len(regions) - 1)
    assert disk["review"]["corrected"] == 1
    ch = disk["changes"]
    assert click_row in ch["rows_changed_list"] and ch["rows_changed"] == len(ch["rows_changed_list"])
    assert ch["max_shift_px"] == pytest.approx(9.0, abs=0.01) and ch["pixels_changed"] > 0
    assert ch["clicks"] == [{"row": click_row, "col": click_col}]
    assert set(disk["files"]) == {"boundary", "label"} and disk["files"]["label"]["path"] == "labels/CASE_1.png"
    assert disk["created"] == disk["saved"] and disk["saved"].endswith("Z")
    assert verify_record(tmp_path, "CASE_1") == [] and hidden_files(tmp_path) == []


def test_pectoral_label_merged_into_the_case_label(tmp_path):
    res = pectoral_result()
    base_label = np.ones(SHAPE, np.uint8)
    base_label[:, 400:] = 0
    base_label[:300, :150] = PECTORAL_LABEL  # an old muscle, partly outside the new one
    save_pectoral_correction(tmp_path, "C", res, model=MODEL, base_label=base_label)
    lab = np.asarray(PILImage.open(tmp_path / "labels" / "C.png"))
    muscle = res.muscle_mask().astype(bool)
    np.testing.assert_array_equal(lab == PECTORAL_LABEL, muscle)
    assert np.all(lab[(base_label == PECTORAL_LABEL) & ~muscle] == 1)
    np.testing.assert_array_equal(lab[~muscle & (base_label != PECTORAL_LABEL)], base_label[~muscle & (base_label != 3)])


def test_landmark_json_has_the_shared_format_and_reads_back(tmp_path, shared_file):
    reference = shared_file("cxr_jsrt/landmarks/JPCLN001.json")
    nodes, meta = read_landmarks(reference)
    moved = nodes.copy()
    moved[[3, 4, 5]] += 6.0
    rec = save_landmark_correction(tmp_path, "JPCLN001", moved, (512, 512), model=("cxr-hybridgnet-vae", "1.0.0"),
                                   before_xy=nodes, pinned=[4])
    out = tmp_path / "landmarks" / "JPCLN001.json"
    assert set(json.loads(out.read_text())) == set(json.loads(reference.read_text()))
    back, back_meta = read_landmarks(out)
    np.testing.assert_allclose(back, moved, atol=1e-3)
    assert back_meta["split"] == "train" and back_meta["space"] == meta["space"]
    assert rec["changes"]["nodes_changed_list"] == [3, 4, 5] and rec["changes"]["pinned_nodes"] == [4]
    assert rec["changes"]["nodes_changed_per_organ"]["right_lung"] == 3
    assert verify_record(tmp_path, "JPCLN001") == []


def test_label_map_seg_nrrd_round_trip_and_created_kept(tmp_path):
    import nrrd

    before = np.zeros((4, 6, 7), np.uint8)
    before[1:3, 1:4, 1:5] = 1
    after = before.copy()
    after[2, 4, 1:5] = 1
    after[1, 1, 1] = 2
    segments = [{"name": "liver", "label": 1, "color": (0.8, 0.4, 0.3)},
                {"name": "spleen", "label": 2, "color": (0.3, 0.4, 0.8)}]
    first = save_label_correction(tmp_path, "ct1", after, task="ct-organs", model=("ct-mob", "0.1.0"),
                                  spacing=(0.7, 0.7, 2.5), segments=segments, before=before)
    data, header = nrrd.read(str(tmp_path / "labels" / "ct1.seg.nrrd"), index_order="C")
    np.testing.assert_array_equal(data, after)
    assert header["Segment1_Name"] == "spleen"
    assert first["changes"]["voxels_changed"] == 5
    assert {(t["from"], t["to"]): t["voxels"] for t in first["changes"]["transitions"]} == {(0, 1): 4, (1, 2): 1}
    second = save_label_correction(tmp_path, "ct1", after, task="ct-organs", model=("ct-mob", "0.1.0"),
                                   spacing=(0.7, 0.7, 2.5))  # a plain label volume this time
    assert second["created"] == first["created"] and second["saved"] >= first["saved"]
    assert (tmp_path / "labels" / "ct1.nrrd").is_file() and verify_record(tmp_path, "ct1") == []


# ------------------------------------------------------------------------------------------------ failures
def test_failed_second_file_leaves_the_old_files_and_the_old_record(tmp_path):
    """The boundary CSV is committed first, the label PNG second: when the PNG cannot replace its destination
    (here a folder is in the way), the CSV is rolled back to the old file and the record stays the old one."""
    res = pectoral_result()
    save_pectoral_correction(tmp_path, "A", res, model=MODEL)  # an earlier, complete save
    old_csv = (tmp_path / "boundary" / "A.csv").read_bytes()
    old_record = (tmp_path / "corrections" / "A.json").read_bytes()
    (tmp_path / "labels" / "A.png").unlink()
    (tmp_path / "labels" / "A.png").mkdir()  # the second write will fail
    cor = correct_pectoral(res, [(200, 150.0)])
    with pytest.raises(OSError):
        save_pectoral_correction(tmp_path, "A", cor, model=MODEL)
    assert (tmp_path / "boundary" / "A.csv").read_bytes() == old_csv
    assert (tmp_path / "corrections" / "A.json").read_bytes() == old_record
    assert hidden_files(tmp_path) == []
    # the old record still describes the boundary it lists exactly; its label is what is now missing
    assert verify_record(tmp_path, "A") == ["label: labels/A.png is missing"]


def test_failed_second_file_of_a_new_case_leaves_nothing(tmp_path):
    res = pectoral_result()
    (tmp_path / "labels" / "N.png").mkdir(parents=True)
    with pytest.raises(OSError):
        save_pectoral_correction(tmp_path, "N", res, model=MODEL)
    assert not (tmp_path / "boundary" / "N.csv").exists()
    assert read_record(tmp_path, "N") is None and hidden_files(tmp_path) == []


def test_failed_record_write_leaves_the_old_label(tmp_path):
    """A record that cannot be written (metadata that is not JSON) is the second write of a label-map save."""
    label = np.zeros((3, 4, 5), np.uint8)
    save_label_correction(tmp_path, "ct", label, task="ct-organs", model=("m", "1"), spacing=(1, 1, 1))
    old = (tmp_path / "labels" / "ct.nrrd").read_bytes()
    with pytest.raises(TypeError):
        save_label_correction(tmp_path, "ct", label + 1, task="ct-organs", model=("m", "1"), spacing=(1, 1, 1),
                              notes={"bad": object()})
    assert (tmp_path / "labels" / "ct.nrrd").read_bytes() == old
    assert verify_record(tmp_path, "ct") == [] and hidden_files(tmp_path) == []


@pytest.mark.parametrize("obstacle", ["folder in the way", "staged file lost"])
def test_file_set_rolls_back_files_already_renamed(tmp_path, obstacle):
    """The third rename fails after two succeeded: the first file is the old one again, the second (new) absent."""
    a, b, c = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "c.txt"
    a.write_text("old a")
    if obstacle == "folder in the way":
        c.mkdir()
    else:
        c.write_text("old c")
    with pytest.raises(OSError):
        with FileSet() as fs:
            fs.add(a, lambda p: Path(p).write_text("new a"))
            fs.add(b, lambda p: Path(p).write_text("new b"))
            staged_c = fs.add(c, lambda p: Path(p).write_text("new c"))
            if obstacle == "staged file lost":
                staged_c.unlink()
            fs.commit()
    assert a.read_text() == "old a" and not b.exists()
    assert c.is_dir() if obstacle == "folder in the way" else c.read_text() == "old c"
    assert hidden_files(tmp_path) == []
