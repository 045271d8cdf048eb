"""The node std head of cxr-landmarks 1.2.0 (issue 19, point 2; `uqseg.cxr.std_head`): the shipped card and file, that
predict shows sqrt(MC std² + s²) per axis on a real prediction (result, landmarks.csv, curves, summary) while means,
rings and image_uncertainty stay as without the head, that the shown std ranks the node errors of the JSRT val images
as the card says, refusals of a damaged head (one line naming the file), the pinned refit, the loss, and the recipe
on two images."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from uqseg.cxr import std_head
from uqseg.models.registry import ModelCard, ModelError

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "Resources" / "Models" / "cxr-hybridgnet-vae"
SAMPLE = REPO / "Resources" / "SampleData" / "cxr-chest" / "chest.dcm"


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _card(folder: Path) -> ModelCard:
    return ModelCard(folder, json.loads((folder / "model.json").read_text()))


def _copy(tmp_path: Path, model_id: str, head: bool = True) -> Path:
    """A user copy of the shipped model under another id, with or without the head."""
    folder = tmp_path / "models" / model_id
    folder.mkdir(parents=True)
    shutil.copy(SHIPPED / "weights.safetensors", folder / "weights.safetensors")
    card = json.loads((SHIPPED / "model.json").read_text())
    card["id"], card["default"] = model_id, False
    if head:
        shutil.copy(SHIPPED / "node_std_head.safetensors", folder / "node_std_head.safetensors")
    else:
        card.pop("node_std_head")
    (folder / "model.json").write_text(json.dumps(card, indent=1))
    return folder


# ------------------------------------------------------------------------------------------ the card and the file
def test_shipped_card_names_the_head_with_its_sha256_and_its_numbers():
    card = json.loads((SHIPPED / "model.json").read_text())
    spec = card["node_std_head"]
    assert card["version"] == "1.2.0" and "node_calibration" not in card
    assert spec["sha256"] == _sha(SHIPPED / spec["file"]) and (SHIPPED / spec["plot"]).is_file()
    v = spec["val_pooled_spearman"]
    assert v["shown_std"] > v["mc_std"] + 0.1  # the reason it ships
    assert spec["target_reached"] == (v["shown_std"] >= 0.45)
    assert spec["cv_chosen"] == max(spec["cv_training_images_pooled_spearman"],
                                    key=lambda k: spec["cv_training_images_pooled_spearman"][k]["combined"])
    assert spec["occlusion_check"]["share_above_1_shown"] == 1.0


# ------------------------------------------------------------------------------------ a real prediction, applied
@pytest.fixture(scope="module")
def predictions(tmp_path_factory):
    """The shipped sample through the task with the shipped model and with a copy without the head."""
    from uqseg.io.load import load_image
    from uqseg.tasks import RunOptions, get_task

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("head")
    task = get_task("cxr-landmarks")
    out = {}
    for name, folder in (("head", SHIPPED), ("raw", _copy(tmp, "cxr-nohead", head=False))):
        card = _card(folder)
        model = task.load(card, "cpu")
        case = task.predict(load_image(SAMPLE), model, RunOptions(card=card, device="cpu", seed=0))
        summary = task.write(case, tmp / name / "chest")
        out[name] = (case, summary, tmp / name / "chest", model)
    return out


def test_predict_shows_the_mc_std_combined_with_the_head(predictions):
    case, summary, case_dir, model = predictions["head"]
    r = case.prediction
    assert model.node_std_head is not None and r.aleatoric is not None and r.aleatoric.shape == (120,)
    np.testing.assert_allclose(r.std, np.sqrt(r.raw_std ** 2 + r.aleatoric[:, None] ** 2), rtol=1e-12)
    np.testing.assert_array_equal(r.raw_std, predictions["raw"][0].prediction.std)  # raw = the headless std
    assert np.all(r.aleatoric > 0) and r.aleatoric.std() > 0.1 * r.aleatoric.mean()  # varies between nodes
    with open(case_dir / "landmarks.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        i = int(row["node"])
        for k, ax in enumerate("xy"):
            assert float(row[f"std_{ax}"]) == pytest.approx(r.std[i, k], abs=6e-5)
            assert float(row[f"raw_std_{ax}"]) == pytest.approx(r.raw_std[i, k], abs=6e-5)
    spacing = case.image.spacing
    curve = json.loads((case_dir / "heart.mrk.json").read_text())
    values = curve["markups"][0]["measurements"][0]["controlPointValues"]
    np.testing.assert_allclose(values, 0.5 * (r.std[94:, 0] * spacing[0] + r.std[94:, 1] * spacing[1]), rtol=1e-5)
    entry = summary["node_std_head"]
    assert entry["file"] == "node_std_head.safetensors" and entry["sha256"] == _sha(SHIPPED / entry["file"])
    assert entry["mean_aleatoric_std"] == pytest.approx(r.aleatoric.mean(), abs=1e-4)
    assert predictions["raw"][1]["node_std_head"] is None


def test_means_and_image_uncertainty_do_not_change(predictions):
    a, sa = predictions["head"][0].prediction, predictions["head"][1]
    b, sb = predictions["raw"][0].prediction, predictions["raw"][1]
    np.testing.assert_array_equal(a.mean, b.mean)
    assert sa["image_uncertainty"] == sb["image_uncertainty"] and sa["ood"] == sb["ood"]
    assert sa["organ_uncertainty"] == sb["organ_uncertainty"]


def test_the_shown_std_points_at_the_wrong_nodes_of_the_val_images(shared_file):
    """The card's claim, through the task: pooled Spearman(shown node std, node error) over the 21 JSRT val images
    is the card's value and far above the MC std's."""
    sys.path.insert(0, str(REPO / "Training"))
    try:
        from datasets.jsrt_landmarks import list_cases, load_case
    finally:
        sys.path.remove(str(REPO / "Training"))
    from uqseg.cxr.calibration import pooled_spearman
    from uqseg.io.load import load_image
    from uqseg.tasks import RunOptions, get_task

    root = shared_file("cxr_jsrt")
    task, card = get_task("cxr-landmarks"), _card(SHIPPED)
    model = task.load(card, "cpu")
    shown, raw, err = [], [], []
    for name in list_cases(root)["val"]:
        _, nodes, _ = load_case(root, name)
        r = task.predict(load_image(root / "images" / f"{name}.png"), model,
                         RunOptions(card=card, device="cpu", seed=0)).prediction
        shown.append(r.node_std), raw.append(r.raw_node_std), err.append(np.linalg.norm(r.mean - nodes, axis=1))
    rho = pooled_spearman(np.array(shown), np.array(err))
    assert len(shown) == 21
    assert rho == pytest.approx(card.card["node_std_head"]["val_pooled_spearman"]["shown_std"], abs=2e-3)
    assert rho > pooled_spearman(np.array(raw), np.array(err)) + 0.1


# ------------------------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("damage, words", [
    ("sha256", "sha256"),
    ("missing", "missing"),
    ("hidden", "not a node std head"),
    ("nan", "NaN"),
])
def test_a_damaged_head_is_refused_with_one_line_naming_it(tmp_path, damage, words):
    from safetensors.torch import load_file, save_file

    folder = _copy(tmp_path, "cxr-bad-head")
    path = folder / "node_std_head.safetensors"
    card = json.loads((folder / "model.json").read_text())
    if damage == "sha256":
        path.write_bytes(path.read_bytes()[:-4] + b"\0\0\0\0")
    elif damage == "missing":
        path.unlink()
    elif damage == "hidden":
        card["node_std_head"]["hidden"] = 8  # the card's size does not fit the tensors
    elif damage == "nan":
        t = load_file(str(path))
        t["node_bias"][3] = float("nan")
        save_file(t, str(path))
        card["node_std_head"]["sha256"] = _sha(path)
    (folder / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelError) as e:
        std_head.load_std_head(_card(folder), 32)
    message = str(e.value)
    assert "\n" not in message and "node_std_head.safetensors" in message and words in message


def test_a_card_without_a_head_gives_none(tmp_path):
    assert std_head.load_std_head(_card(_copy(tmp_path, "cxr-no-head", head=False)), 32) is None


# -------------------------------------------------------------------------------------------- pinned refit
def test_a_pinned_node_loses_its_aleatoric_std_and_other_organs_keep_theirs(predictions):
    from uqseg.correction.cxr_pinned import refit_with_pins

    case, _, _, model = predictions["head"]
    r = case.prediction
    new = refit_with_pins(model, case.image, r, {100: tuple(r.mean[100] + [6.0, -4.0])}, samples=20)
    lungs = slice(0, 94)
    assert new.aleatoric[100] == 0 and r.aleatoric[100] > 0
    np.testing.assert_array_equal(np.delete(new.aleatoric, 100), np.delete(r.aleatoric, 100))
    np.testing.assert_allclose(new.std, np.sqrt(new.raw_std ** 2 + new.aleatoric[:, None] ** 2), rtol=1e-12)
    np.testing.assert_array_equal(new.std[lungs], r.std[lungs])
    assert new.node_std[100] < 1.0 < r.node_std[100]  # a node the user placed shows (almost) no std


# ------------------------------------------------------------------------------------------------- the maths
def test_gaussian_nll_is_smallest_at_the_per_axis_spread_of_the_error():
    """For a fixed error r, 2 log s + |r|² / (2 s²) is minimal at s = |r| / √2 (the per-axis std of a 2-D error)."""
    r = torch.tensor([[[3.0, 4.0]]])  # |r| = 5
    s = torch.linspace(1.0, 8.0, 7001)
    nll = torch.stack([std_head.gaussian_nll(torch.log(v).view(1, 1), r) for v in s])
    assert float(s[int(torch.argmin(nll))]) == pytest.approx(5 / math.sqrt(2), abs=2e-3)


def test_combine_is_the_root_sum_of_squares_per_axis():
    mc = np.array([[3.0, 0.0], [1.0, 2.0]])
    np.testing.assert_allclose(std_head.combine(mc, np.array([4.0, 0.0])), [[5.0, 4.0], [1.0, 2.0]])


# ------------------------------------------------------------------------------------------------- the recipe
def test_the_recipe_runs_on_two_images(shared_data, tmp_path, monkeypatch):
    """features → cv → fit → export on 2 training + 2 val images (1 augmented copy each) into a copy of the model
    folder: the head file the export writes loads through the task and changes the shown std."""
    monkeypatch.syspath_prepend(str(REPO / "Training"))
    import train_cxr_std_head as recipe

    torch.set_num_threads(1)
    run = tmp_path / "run"
    recipe.main(["features", "--data", str(shared_data / "cxr_jsrt"), "--out", str(run / "features.npz"),
                 "--limit", "2", "--copies", "1", "--samples", "8", "--threads", "1"])
    d = recipe.load_rows(run / "features.npz")
    assert d["features"].shape == (2 * 2 + 2, 120, 32) and d["augmented"].sum() == 2 and d["val"].sum() == 2
    recipe.main(["cv", "--features", str(run / "features.npz"), "--out", str(run), "--folds", "2",
                 "--only", "clean_e30", "aug_e30"])
    assert json.loads((run / "cv.json").read_text())["chosen"] in ("clean_e30", "aug_e30")
    recipe.main(["fit", "--features", str(run / "features.npz"), "--out", str(run), "--setting", "aug_e30"])
    result = json.loads((run / "result.json").read_text())
    assert result["train_rows"] == 4 and result["val_images"] == 2
    folder = _copy(tmp_path, "cxr-retrained")
    recipe.main(["export", "--run", str(run), "--card", str(folder), "--version", "9.9.9"])
    card = _card(folder)
    assert card.version == "9.9.9" and card.card["node_std_head"]["sha256"] == _sha(folder / "node_std_head.safetensors")
    head = std_head.load_std_head(card, 32)
    shipped = std_head.load_std_head(_card(SHIPPED), 32)
    assert not torch.equal(head.node_bias, shipped.node_bias)
