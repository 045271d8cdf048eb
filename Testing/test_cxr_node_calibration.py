"""The per-node std calibration of cxr-landmarks (issue 19, point 2; `uqseg.cxr.calibration`, cxr-hybridgnet-vae
1.1.0; 1.2.0 ships a node std head instead — Testing/test_cxr_std_head.py — and the 1.1.0 map stays supported for
cards and fine-tuned folders that name one; it is kept here as a fixture, Testing/golden/cxr-node-calibration-1.1.0.json,
on a copy of the shipped weights without the head): the file's round trip and refusals (sha256, shape, values: one line naming the file, also through the CLI),
that predict applies the factors on a real prediction of the shipped sample (calibrated = raw × factor per node, in
the result, landmarks.csv and the curves), that means / rings / Dice are unchanged, that image_uncertainty stays on
the raw MC std, that a card without a calibration loads and behaves as before, that pinned refits stay calibrated,
that fine-tuned models carry the file, and the cross-validation code on a tiny synthetic case (including a leakage
check: a held-out image's calibrated std must not depend on its own error)."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cli_run import run_cli, stderr_lines
from uqseg.cxr import calibration as cal
from uqseg.models.registry import ModelCard, ModelError

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "Resources" / "Models" / "cxr-hybridgnet-vae"
SAMPLE = REPO / "Resources" / "SampleData" / "cxr-chest" / "chest.dcm"
CAL_FILE = REPO / "Testing" / "golden" / "cxr-node-calibration-1.1.0.json"  # 1.1.0's map, as it shipped


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _model_folder(tmp_path: Path, model_id: str = "cxr-calib-test", calibration: bool = True) -> Path:
    """A user copy of the shipped weights under another id, without the node std head, with or without 1.1.0's node
    calibration (the fixture file and the card section 1.1.0 had)."""
    folder = tmp_path / "models" / model_id
    folder.mkdir(parents=True)
    shutil.copy(SHIPPED / "weights.safetensors", folder / "weights.safetensors")
    card = json.loads((SHIPPED / "model.json").read_text())
    card["id"], card["default"], card["version"] = model_id, False, "1.1.0"
    card.pop("node_std_head", None)
    if calibration:
        shutil.copy(CAL_FILE, folder / "node_calibration.json")
        card["node_calibration"] = {"file": "node_calibration.json", "sha256": _sha(CAL_FILE), "form": "scale_lsq"}
    (folder / "model.json").write_text(json.dumps(card, indent=1))
    return folder


def _card(folder: Path) -> ModelCard:
    return ModelCard(folder, json.loads((folder / "model.json").read_text()))


def _rewrite_calibration(folder: Path, edit, resha: bool = True) -> None:
    path = folder / "node_calibration.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    if resha:
        card = json.loads((folder / "model.json").read_text())
        card["node_calibration"]["sha256"] = _sha(path)
        (folder / "model.json").write_text(json.dumps(card, indent=1))


# ------------------------------------------------------------------------------------------ the file and the card
def test_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    c = cal.NodeCalibration(rng.uniform(0.5, 3.0, cal.NODES), rng.uniform(0.0, 1.0, cal.NODES), "affine")
    folder = tmp_path / "m"
    folder.mkdir()
    c.save(folder / "node_calibration.json")
    card = ModelCard(folder, {"id": "m", "version": "1", "task": "cxr-landmarks",
                              "node_calibration": {"file": "node_calibration.json",
                                                   "sha256": _sha(folder / "node_calibration.json")}})
    back = cal.load_calibration(card)
    np.testing.assert_allclose(back.scale, c.scale, atol=1e-6)
    np.testing.assert_allclose(back.offset, c.offset, atol=1e-6)
    assert back.form == "affine"
    std = rng.uniform(0, 5, (cal.NODES, 2))
    np.testing.assert_allclose(back.apply(std), back.offset[:, None] + back.scale[:, None] * std)
    np.testing.assert_allclose(back.apply(std).mean(1), back.apply_node_std(std.mean(1)))


def test_card_without_calibration_gives_none(tmp_path):
    assert cal.load_calibration(_card(_model_folder(tmp_path, calibration=False))) is None


@pytest.mark.parametrize("damage,words", [
    ("sha256", "sha256"),
    ("shape", "shape [119]"),
    ("negative_scale", "'scale' must be > 0"),
    ("nan", "NaN"),
    ("missing", "file missing"),
    ("not_json", "not a node calibration"),
    ("no_sha_in_card", "no node_calibration.sha256"),
])
def test_a_bad_calibration_file_is_refused_with_one_line_naming_it(tmp_path, damage, words):
    folder = _model_folder(tmp_path)
    path = folder / "node_calibration.json"
    if damage == "sha256":
        _rewrite_calibration(folder, lambda d: d["scale"].__setitem__(0, 9.0), resha=False)
    elif damage == "shape":
        _rewrite_calibration(folder, lambda d: d["scale"].pop())
    elif damage == "negative_scale":
        _rewrite_calibration(folder, lambda d: d["scale"].__setitem__(3, -1.0))
    elif damage == "nan":
        _rewrite_calibration(folder, lambda d: d["offset"].__setitem__(3, float("nan")))
    elif damage == "missing":
        path.unlink()
    elif damage == "not_json":
        path.write_text("{ not json")
        card = json.loads((folder / "model.json").read_text())
        card["node_calibration"]["sha256"] = _sha(path)
        (folder / "model.json").write_text(json.dumps(card))
    elif damage == "no_sha_in_card":
        card = json.loads((folder / "model.json").read_text())
        del card["node_calibration"]["sha256"]
        (folder / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelError) as e:
        cal.load_calibration(_card(folder))
    message = str(e.value)
    assert "\n" not in message and "node_calibration.json" in message and words in message


def test_cli_refuses_a_tampered_calibration_with_one_line(tmp_path, monkeypatch):
    folder = _model_folder(tmp_path)
    _rewrite_calibration(folder, lambda d: d["scale"].__setitem__(0, 9.0), resha=False)
    monkeypatch.setenv("UQSEG_MODELS", str(folder.parent))
    rc, out, err = run_cli(["predict", "--task", "cxr-landmarks", "--model", "cxr-calib-test", SAMPLE,
                            "--out", tmp_path / "out"])
    lines = stderr_lines(err)
    assert rc != 0 and "Traceback" not in err + out
    assert len(lines) == 1 and "node_calibration.json" in lines[0] and "sha256" in lines[0], lines


# ------------------------------------------------------------------------------------ a real prediction, applied
@pytest.fixture(scope="module")
def predictions(tmp_path_factory):
    """The shipped sample through the task with 1.1.0 (the shipped weights + the fixture calibration) and with a
    copy without the calibration (1.0.0's behaviour), both written as uqseg predict writes them."""
    import torch

    from uqseg.io.load import load_image
    from uqseg.tasks import RunOptions, get_task

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("calib")
    task = get_task("cxr-landmarks")
    out = {}
    for name, folder in (("calibrated", _model_folder(tmp, "cxr-cal")),
                         ("raw", _model_folder(tmp, "cxr-nocal", calibration=False))):
        card = _card(folder)
        model = task.load(card, "cpu")
        image = load_image(SAMPLE)
        case = task.predict(image, model, RunOptions(card=card, device="cpu", seed=0))
        summary = task.write(case, tmp / name / "chest")
        out[name] = (case, summary, tmp / name / "chest", model)
    return out


def test_predict_applies_the_factor_of_every_node(predictions):
    case, summary, case_dir, model = predictions["calibrated"]
    r = case.prediction
    scale = np.asarray(json.loads(CAL_FILE.read_text())["scale"])
    assert model.node_calibration is not None and r.raw_std is not None
    np.testing.assert_allclose(r.std, r.raw_std * scale[:, None], rtol=1e-12)
    assert not np.allclose(r.std, r.raw_std)  # the factors are not all 1
    raw_case = predictions["raw"][0].prediction
    np.testing.assert_array_equal(r.raw_std, raw_case.std)  # raw = what the uncalibrated model gives
    with open(case_dir / "landmarks.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["node", "organ", "mean_x", "mean_y", "std_x", "std_y", "raw_std_x", "raw_std_y"]
    for row in rows:
        i = int(row["node"])
        for ax in ("x", "y"):
            raw = float(row[f"raw_std_{ax}"])
            assert float(row[f"std_{ax}"]) == pytest.approx(raw * scale[i], abs=6e-4 * max(1.0, scale[i]))
    # the curves carry the calibrated std (mm: spacing × calibrated px)
    spacing = case.image.spacing
    sl = slice(94, 120)
    curve = json.loads((case_dir / "heart.mrk.json").read_text())
    values = curve["markups"][0]["measurements"][0]["controlPointValues"]
    expected = 0.5 * (r.std[sl, 0] * spacing[0] + r.std[sl, 1] * spacing[1])
    np.testing.assert_allclose(values, expected, rtol=1e-5)
    assert summary["node_calibration"]["file"] == "node_calibration.json"
    assert summary["node_calibration"]["sha256"] == _sha(CAL_FILE)
    assert summary["node_std_head"] is None


def test_means_rings_and_dice_are_unchanged(predictions, shared_file):
    from uqseg.cxr.rasterise import labelmap

    a, b = predictions["calibrated"][0].prediction, predictions["raw"][0].prediction
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(labelmap(a.mean, a.shape), labelmap(b.mean, b.shape))
    for name in ("landmarks.csv",):
        ra = list(csv.DictReader(open(predictions["calibrated"][2] / name)))
        rb = list(csv.DictReader(open(predictions["raw"][2] / name)))
        assert [(r["mean_x"], r["mean_y"]) for r in ra] == [(r["mean_x"], r["mean_y"]) for r in rb]
    nrrd = pytest.importorskip("nrrd")
    seg = [nrrd.read(str(p[2] / "segmentation.seg.nrrd"))[0] for p in (predictions["calibrated"], predictions["raw"])]
    np.testing.assert_array_equal(seg[0], seg[1])  # the written label map (the header holds a timestamp)
    # Dice on a JSRT val image (real masks) with and without the calibration
    from uqseg.io.load import load_image
    from uqseg.metrics import dice
    from uqseg.tasks import RunOptions, get_task
    from PIL import Image as PILImage

    image_path = shared_file("cxr_jsrt/images/JPCLN001.png")
    mask = np.asarray(PILImage.open(shared_file("cxr_jsrt/masks/JPCLN001.png")))
    task = get_task("cxr-landmarks")
    dices = []
    for key in ("calibrated", "raw"):
        _, _, _, model = predictions[key]
        card = _card(SHIPPED)
        r = task.predict(load_image(image_path), model, RunOptions(card=card, device="cpu", seed=0)).prediction
        lm = labelmap(r.mean, mask.shape)
        dices.append([dice(lm == k, mask == k) for k in (1, 2, 3)])
    assert dices[0] == dices[1] and min(dices[0]) > 0.85


def test_image_uncertainty_and_ood_stay_on_the_raw_std(predictions):
    ca, sa, _, _ = predictions["calibrated"]
    cb, sb, _, _ = predictions["raw"]
    assert sa["image_uncertainty"] == sb["image_uncertainty"] and sa["ood"] == sb["ood"]
    assert sa["image_uncertainty"] == pytest.approx(ca.prediction.raw_node_std.mean(), abs=1e-4)
    assert sa["organ_uncertainty"] == sb["organ_uncertainty"]
    assert sa["ood_threshold_ref"] == sb["ood_threshold_ref"]


def test_a_model_without_calibration_behaves_as_before(predictions):
    case, summary, case_dir, model = predictions["raw"]
    r = case.prediction
    assert model.node_calibration is None and r.raw_std is None and r.calibration is None
    np.testing.assert_array_equal(r.mc_std, r.std)
    assert summary["node_calibration"] is None
    with open(case_dir / "landmarks.csv", newline="") as f:
        for row in csv.DictReader(f):
            assert row["std_x"] == row["raw_std_x"] and row["std_y"] == row["raw_std_y"]


def test_a_pinned_refit_stays_calibrated(predictions):
    from uqseg.correction.cxr_pinned import refit_with_pins

    case, _, _, model = predictions["calibrated"]
    r = case.prediction
    new = refit_with_pins(model, case.image, r, {100: tuple(r.mean[100] + [6.0, -4.0])}, samples=20)
    heart, lungs = slice(94, 120), slice(0, 94)
    np.testing.assert_allclose(new.std[heart], new.calibration.apply(new.raw_std)[heart], rtol=1e-12)
    np.testing.assert_array_equal(new.std[lungs], r.std[lungs])  # organs without pins keep theirs
    np.testing.assert_array_equal(new.raw_std[lungs], r.raw_std[lungs])
    assert not np.allclose(new.raw_std[heart], r.raw_std[heart])


def test_a_fine_tuned_model_carries_the_calibration(tmp_path):
    from uqseg.finetune.model_folder import base_files, fine_tuned_card, write_model_folder
    import torch

    base = _card(_model_folder(tmp_path, "cxr-cal"))
    card = fine_tuned_card(base, "cxr-hybridgnet-vae-ft1", "1.1.0+ft.1", {"cases": []})
    folder = write_model_folder(tmp_path, "cxr-hybridgnet-vae-ft1", {"w": torch.zeros(2)}, card, base_files(base))
    loaded = cal.load_calibration(ModelCard(folder, json.loads((folder / "model.json").read_text())))
    np.testing.assert_array_equal(loaded.scale, cal.load_calibration(base).scale)


# ------------------------------------------------------------------------------------ the CV code, synthetic
def _synthetic(images=6, seed=0):
    """Node i's error = k_i × its std exactly: the raw std ranks badly across nodes (k differs 20×), a per-node
    scale ranks perfectly."""
    rng = np.random.default_rng(seed)
    k = np.array([1.0, 5.0, 10.0, 20.0])
    S = rng.uniform(1.0, 2.0, (images, k.size))
    return S, S * k


def test_pooled_spearman_is_over_all_pairs():
    S = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert cal.pooled_spearman(S, S * 10) == pytest.approx(1.0)
    assert cal.pooled_spearman(S, -S) == pytest.approx(-1.0)
    assert cal.pooled_spearman(S, np.array([[4.0, 3.0], [2.0, 1.0]])) == pytest.approx(-1.0)


def test_cross_validation_recovers_a_per_node_scale():
    S, E = _synthetic()
    folds = cal.contiguous_folds(6, 3)
    raw = cal.pooled_spearman(S, E)
    assert raw < 0.9
    for name in ("scale_rms", "scale_lsq"):
        assert cal.cross_validated(cal.FITS[name], S, E, folds) == pytest.approx(1.0)
    scale, offset = cal.fit_scale_lsq(S, E)
    np.testing.assert_allclose(scale * np.sqrt(np.pi / 2), [1, 5, 10, 20])
    assert not offset.any()
    nested = cal.nested_cross_validated(cal.FITS, S, E, folds, inner_k=2)
    assert nested["spearman"] == pytest.approx(1.0) and len(nested["chosen"]) == 3
    assert "raw" not in nested["chosen"]


def test_held_out_predictions_do_not_see_their_own_error():
    S, E = _synthetic(images=9, seed=1)
    folds = cal.contiguous_folds(9, 3)
    before = cal.held_out_predictions(cal.fit_affine, S, E, folds)
    E2 = E.copy()
    E2[4] *= 50.0  # image 4 is in fold 1: only the OTHER folds' predictions may change
    after = cal.held_out_predictions(cal.fit_affine, S, E2, folds)
    np.testing.assert_array_equal(before[3:6], after[3:6])
    assert not np.allclose(before[:3], after[:3])


def test_monotone_forms_stay_increasing_and_non_negative():
    rng = np.random.default_rng(2)
    S = rng.uniform(1, 5, (8, 4))
    E = 30.0 - 4.0 * S + rng.normal(0, 0.1, S.shape)  # error FALLS with the std: slopes clip at ~0, not below
    for name, fit in cal.FITS.items():
        scale, offset = fit(S, E)
        assert np.all(scale > 0) and np.all(offset >= 0), name


def test_folds_must_fit_the_images():
    with pytest.raises(ValueError):
        cal.contiguous_folds(3, 4)
    assert [len(f) for f in cal.contiguous_folds(21, 7)] == [3] * 7


def test_the_batch_nodes_table_carries_both_stds(predictions):
    """The `uqseg batch` nodes table (split from a replica batch as the driver does, no Ray needed): std_x / std_y
    calibrated, raw_std_x / raw_std_y the MC std, equal to landmarks.csv."""
    import datetime as dt

    pa = pytest.importorskip("pyarrow", reason="uqseg[batch] (pyarrow) is part of the test extras")
    from uqseg.batch.tables import DETAIL_TABLES, REPLICA_SCHEMA, case_row, split_replica_batch

    case, summary, case_dir, _ = predictions["calibrated"]
    details = DETAIL_TABLES["cxr-landmarks"].rows(case, summary)
    row = case_row({"case_id": "chest", "input_path": str(SAMPLE), "sha256": "0" * 64}, "cxr-landmarks",
                   _card(SHIPPED), {"samples": 50, "seed": 0, "fast": False}, summary, None, device="cpu",
                   worker="test", load_input_ms=1.0, predict_ms=1.0,
                   finished_at=dt.datetime.now(dt.timezone.utc), details=details)
    _, nodes = split_replica_batch(pa.Table.from_pylist([row], schema=REPLICA_SCHEMA), "cxr-landmarks")
    assert nodes.num_rows == 120 and nodes.column_names[-4:] == ["std_x", "std_y", "raw_std_x", "raw_std_y"]
    with open(case_dir / "landmarks.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for key in ("std_x", "std_y", "raw_std_x", "raw_std_y"):
        assert nodes.column(key).to_pylist() == [float(r[key]) for r in rows], key
    assert nodes.column("std_x").to_pylist() != nodes.column("raw_std_x").to_pylist()
