"""`uqseg finetune`: fine-tuning a shipped model on a folder of corrected cases (uqseg.finetune).

The corrections folders are built the way a user builds them: the shipped model predicts on 2 real images of
../shared/data, and the reference label of each image is saved as the "correction" with `uqseg.correction.save`
(the prediction is the `before`). Each task is fine-tuned once per module, through `uqseg.cli.main`, for 2 epochs
(2 optimisation steps of batch 2), and the tests share that run: the new folder, its card, its losses, the skipped
tampered case, and a prediction with the new model found through the registry (UQSEG_MODELS + --model). Failures:
an unreadable input image stops the run and leaves no model folder; a model write that fails half-way leaves
nothing. The augmentation's point transform is checked against its image warp on a synthetic dot.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from uqseg.cli import main as cli_main
from uqseg.correction.save import (read_record, record_path, save_label_correction, save_landmark_correction,
                                   save_pectoral_correction, verify_record)
from uqseg.correction.transaction import sha256_file
from uqseg.finetune.augment import random_theta, warp, warp_points
from uqseg.finetune.model_folder import next_name, write_model_folder
from uqseg.io.load import load_image
from uqseg.models.registry import ModelCard, find_model

# two real validation images per task (the shipped models never trained on them); the default learning rates
CASES = {
    "mammo-pectoral": ("mammo_ddsm", ["A_0039_1.RIGHT_MLO", "B_3623_1.RIGHT_MLO"]),  # chest wall left / right
    "cxr-landmarks": ("cxr_jsrt", ["JPCLN001", "JPCLN015"]),
    "mammo-breast": ("mammo_ddsm", ["A_0279_1.RIGHT_MLO", "B_3660_1.RIGHT_MLO"]),
}
EPOCHS, SEED = 2, 0
TAMPERED = "ZZ_TAMPERED"  # a copy of the first case whose label is changed after saving: its record fails


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli_main(argv)
    return rc, out.getvalue(), err.getvalue()


def image_path(shared: Path, task: str, case: str) -> Path:
    folder, _ = CASES[task]
    return shared / folder / "images" / f"{case}.png"


# ------------------------------------------------------------------------------------------- corrections folders
def save_pectoral(roots_cases, shared: Path, path: Path, model, card) -> None:
    """Predict once, save the reference boundary as the correction of every (root, case)."""
    from uqseg.mammo import boundary_grid as bg
    from uqseg.mammo.pectoral import predict_pectoral

    pred = predict_pectoral(load_image(path), model)
    label = np.asarray(PILImage.open(shared / "mammo_ddsm" / "labels" / path.name))
    canonical = (label == 3)[:, ::-1] if pred.flipped else label == 3
    b = bg.boundary_from_mask(canonical.astype(np.float64))
    rows = np.flatnonzero(~np.isnan(b))
    mean = b[rows] if not pred.flipped else (label.shape[1] - 1) - b[rows]
    reference = dataclasses.replace(pred, rows=rows, mean_col=mean, std_col=np.interp(rows, pred.rows, pred.std_col),
                                    multimodal=np.zeros(rows.size, bool))
    for root, case in roots_cases:
        save_pectoral_correction(root, case, reference, model=card, before=pred, base_label=label, input_path=path)


def save_cxr(roots_cases, shared: Path, path: Path, model, card) -> None:
    from uqseg.cxr.inference import predict_landmarks
    from uqseg.cxr.landmarks_io import read_landmarks

    image = load_image(path)
    pred = predict_landmarks(image, model, samples=10)
    nodes, _ = read_landmarks(shared / "cxr_jsrt" / "landmarks" / f"{path.stem}.json")
    for root, case in roots_cases:
        save_landmark_correction(root, case, nodes, image.shape, model=card, before_xy=pred.mean, input_path=path)


def save_breast(roots_cases, shared: Path, path: Path, model, card) -> None:
    from uqseg.io.geometry import volume_geometry
    from uqseg.mammo.breast import predict_breast
    from uqseg.tasks.mammo_breast import SEGMENTS

    image = load_image(path)
    pred = predict_breast(image, model, fast=True)
    dd = np.asarray(PILImage.open(shared / "mammo_ddsm" / "labels" / path.name))
    reference = np.where(dd == 3, 2, np.where(dd > 0, 1, 0)).astype(np.uint8)
    for root, case in roots_cases:
        save_label_correction(root, case, reference, task="mammo-breast", model=card, segments=SEGMENTS,
                              before=pred.label, input_path=path, **volume_geometry(image))


SAVERS = {"mammo-pectoral": save_pectoral, "cxr-landmarks": save_cxr, "mammo-breast": save_breast}


def tamper(root: Path, case: str) -> None:
    """Change one byte's worth of the case's trained-on file after saving (its record then fails to verify)."""
    rec = read_record(root, case)
    role = "landmarks" if rec["task"] == "cxr-landmarks" else "label"
    p = root / rec["files"][role]["path"]
    if p.suffix == ".png":
        a = np.asarray(PILImage.open(p)).copy()
        a[0, 0] = 3 - a[0, 0] if a[0, 0] in (0, 3) else 0
        PILImage.fromarray(a).save(p)
    else:
        p.write_bytes(p.read_bytes() + b"\n")


@pytest.fixture(scope="module", params=list(CASES))
def finetuned(request, shared_data, tmp_path_factory):
    """One fine-tuning run per task on 2 real corrected cases + 1 tampered one: (task, corrections, models folder,
    rc, stdout, stderr, base card)."""
    task = request.param
    _, names = CASES[task]
    paths = [image_path(shared_data, task, n) for n in names]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        pytest.skip(f"real images missing in ../shared/data: {missing}")
    from uqseg.tasks import TASKS

    card = find_model(task)
    model = TASKS[task].load(card, "cpu")
    root = tmp_path_factory.mktemp(f"corrections-{task}")
    SAVERS[task]([(root, names[0]), (root, TAMPERED)], shared_data, paths[0], model, card)
    SAVERS[task]([(root, names[1])], shared_data, paths[1], model, card)
    tamper(root, TAMPERED)
    models = tmp_path_factory.mktemp(f"models-{task}")
    rc, out, err = run_cli(["finetune", "--task", task, "--corrections", str(root), "--out", str(models),
                            "--epochs", str(EPOCHS), "--seed", str(SEED), "--device", "cpu"])
    return task, root, models, rc, out, err, card


def new_card(models: Path) -> tuple[Path, dict]:
    folders = [p for p in models.iterdir()]
    assert len(folders) == 1, folders
    return folders[0], json.loads((folders[0] / "model.json").read_text())


# ------------------------------------------------------------------------------------------------- the run
def test_run_writes_a_new_model_folder_with_its_provenance(finetuned):
    task, root, models, rc, out, err, base = finetuned
    assert rc == 0, err
    folder, card = new_card(models)
    # cxr 1.1.0's node calibration / 1.2.0's node std head: copied unchanged
    carried = [base[k]["file"] for k in ("node_calibration", "node_std_head") if base.get(k)]
    assert folder.name == f"{base.id}-ft1" and sorted(p.name for p in folder.iterdir()) == sorted(
        ["model.json", "weights.safetensors"] + carried)
    assert card["id"] == folder.name and card["version"] == f"{base.version}+ft.1" and card["default"] is False
    for key in ("task", "architecture", "preprocessing", "uncertainty"):
        assert card[key] == base[key], key
    src = card["fine_tuned_from"]
    assert (src["id"], src["version"], src["weights_sha256"]) == (base.id, base.version, base["weights"]["sha256"])
    assert card["weights"]["sha256"] == sha256_file(folder / "weights.safetensors") != src["weights_sha256"]
    ft = card["fine_tuning"]
    names = CASES[task][1]
    assert [c["case"] for c in ft["cases"]] == names
    assert [c["record_sha256"] for c in ft["cases"]] == [sha256_file(record_path(root, n)) for n in names]
    assert (ft["epochs"], ft["seed"], ft["batch"], ft["steps"]) == (EPOCHS, SEED, 2, EPOCHS)
    assert ft["lr"] > 0 and ft["loss"]["function"]
    # progress lines as predict's, fractions rising to 1; the summary line names the new model
    fractions = [float(line.split()[1]) for line in out.splitlines() if line.startswith("PROGRESS ")]
    assert fractions and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert f"{base.id}-ft1 (version {base.version}+ft.1): 2 cases, 1 skipped" in out


def test_loss_on_the_corrected_cases_goes_down(finetuned):
    task, _, models, rc, _, err, _ = finetuned
    assert rc == 0, err
    ft = new_card(models)[1]["fine_tuning"]
    before, after = ft["loss_before"]["loss"], ft["loss_after"]["loss"]
    print(f"{task}: loss {before:.6g} -> {after:.6g}; per case "
          + "; ".join(f"{c['case']} {c['before']} -> {c['after']}" for c in ft["loss_per_case"]))
    assert np.isfinite(before) and after < before
    assert len(ft["loss_per_case"]) == 2 and len(ft["epoch_train_loss"]) == EPOCHS


def test_tampered_record_is_skipped_with_the_reason(finetuned):
    task, root, models, rc, out, _, _ = finetuned
    assert verify_record(root, TAMPERED) != []
    ft = new_card(models)[1]["fine_tuning"]
    assert [s["case"] for s in ft["skipped"]] == [TAMPERED]
    reason = ft["skipped"][0]["reason"]
    assert "does not match the record (sha256)" in reason
    assert f"skipped {TAMPERED}: {reason}" in out.splitlines()
    assert TAMPERED not in [c["case"] for c in ft["cases"]]


def test_new_model_is_found_through_the_registry_and_predicts(finetuned, shared_data, tmp_path, monkeypatch):
    task, _, models, rc, _, _, base = finetuned
    assert rc == 0
    new_id = f"{base.id}-ft1"
    monkeypatch.setenv("UQSEG_MODELS", str(models))
    assert find_model(task).id == base.id  # not the default: the shipped model stays the task's default
    assert find_model(task, new_id).folder == models / new_id
    image = image_path(shared_data, task, CASES[task][1][0])
    extra = {"cxr-landmarks": ["--samples", "5"], "mammo-breast": ["--fast"]}.get(task, [])
    rc, _, err = run_cli(["predict", "--task", task, str(image), "--out", str(tmp_path), "--model", new_id,
                          "--device", "cpu", *extra])
    assert rc == 0, err
    summary = json.loads((tmp_path / image.stem / "summary.json").read_text())
    folder = models / new_id
    assert summary["model"] == {"id": new_id, "version": f"{base.version}+ft.1", "source": "user",
                                "folder": str(folder), "sha256": sha256_file(folder / "weights.safetensors")}


# --------------------------------------------------------------------------------------------------- failures
def test_unreadable_input_image_stops_the_run_and_leaves_no_model(finetuned, tmp_path):
    """A good case, then one whose (valid) record points at a file that is not an image: error naming the file,
    exit status 2, the models folder holds nothing (not even a hidden partial folder)."""
    task, root, _, _, _, _, base = finetuned
    first = CASES[task][1][0]
    corr = tmp_path / "corrections"
    shutil.copytree(root, corr)
    for name in CASES[task][1][1:] + [TAMPERED]:
        record_path(corr, name).unlink()
    bad_image = tmp_path / "broken.png"
    bad_image.write_bytes(b"this is not a PNG file\n" * 10)
    rec = read_record(corr, first)
    rec["case"], rec["input"] = "ZZ_BROKEN", str(bad_image)
    record_path(corr, "ZZ_BROKEN").write_text(json.dumps(rec))  # the files it lists are intact: it verifies
    assert verify_record(corr, "ZZ_BROKEN") == []
    models = tmp_path / "models"
    rc, out, err = run_cli(["finetune", "--task", task, "--corrections", str(corr), "--out", str(models),
                            "--epochs", "1", "--device", "cpu"])
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(bad_image) in lines[0]
    assert "ZZ_BROKEN" in lines[0]
    assert not models.exists() or list(models.iterdir()) == []


def test_a_model_write_failing_half_way_leaves_nothing(tmp_path):
    """The weights are written, then the card fails (a value JSON cannot hold): no folder, no partial folder."""
    state = {"w": torch.ones(3)}
    with pytest.raises(TypeError):
        write_model_folder(tmp_path, "m-ft1", state, {"id": "m-ft1", "bad": object()})
    assert list(tmp_path.iterdir()) == []
    folder = write_model_folder(tmp_path, "m-ft1", state, {"id": "m-ft1"})
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "weights.safetensors"]
    with pytest.raises(FileExistsError):  # never overwritten
        write_model_folder(tmp_path, "m-ft1", {"w": torch.zeros(3)}, {"id": "m-ft1"})
    assert [p.name for p in tmp_path.iterdir()] == ["m-ft1"]
    card = json.loads((folder / "model.json").read_text())
    assert card["weights"]["sha256"] == sha256_file(folder / "weights.safetensors")


def test_fine_tuning_a_fine_tuned_model_takes_the_next_number(tmp_path):
    (tmp_path / "net-ft1").mkdir()
    (tmp_path / "net-ft3").mkdir()
    base = ModelCard(tmp_path / "net", {"id": "net", "version": "2.1.0", "task": "t"})
    assert next_name(base, tmp_path) == ("net-ft4", "2.1.0+ft.4", 4)
    again = ModelCard(tmp_path / "net-ft3", {"id": "net-ft3", "version": "2.1.0+ft.3", "task": "t"})
    assert next_name(again, tmp_path) == ("net-ft4", "2.1.0+ft.4", 4)
    assert next_name(base, tmp_path / "absent") == ("net-ft1", "2.1.0+ft.1", 1)


# ------------------------------------------------------------------------------------------------ augmentation
@pytest.mark.parametrize("shape", [(64, 64), (96, 48)])
def test_warped_points_follow_the_warped_image(shape):
    """A Gaussian dot warped with `warp` lands where `warp_points` puts its centre (to a fraction of a pixel)."""
    h, w = shape
    gen = torch.Generator().manual_seed(3)
    theta = random_theta(4, gen, aspect=h / w)
    theta[:, :, :2] = theta[:, :, :2] @ torch.tensor([[np.cos(0.3), -np.sin(0.3) * h / w],
                                                       [np.sin(0.3) * w / h, np.cos(0.3)]], dtype=torch.float32)
    uv = torch.tensor([[[0.4, 0.6]]] * 4)
    yy, xx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    dot = torch.exp(-((xx - 0.4 * w) ** 2 + (yy - 0.6 * h) ** 2) / (2 * 2.0**2))[None, None].repeat(4, 1, 1, 1)
    out = warp(dot, theta)
    mass = out.sum(dim=(1, 2, 3))
    centre = torch.stack([(out[:, 0] * xx).sum(dim=(1, 2)) / mass / w, (out[:, 0] * yy).sum(dim=(1, 2)) / mass / h], -1)
    np.testing.assert_allclose(centre.numpy(), warp_points(uv, theta)[:, 0].numpy(), atol=0.25 / max(h, w))
