"""Issue 19's cross-validation tools (mammo-pectoral and mammo-breast): folds of the training images, the stronger
augmentation, the issue's error definition (every reference muscle row, a missed row at the image edge), test-time
augmentation and the pooling of held-out numbers over folds. What a user of the card relies on: the folds never hold a validation image
and hold out every training image exactly once; a row the model misses costs its whole distance to the edge; the
augmentation moves mask and image together and keeps intensities in 0..1; the standard setting's draws are the
original recipe's (its weights reproduce); a breast card only takes folds trained with its own recipe.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

TRAINING = Path(__file__).resolve().parents[1] / "Training"


@pytest.fixture(autouse=True)
def training_modules(monkeypatch):
    monkeypatch.syspath_prepend(str(TRAINING))
    torch.set_num_threads(1)


def _names():
    return [f"X_{i:04d}.png" for i in range(50)]


def test_folds_hold_out_each_training_image_once_and_never_a_validation_image():
    from datasets.ddsm_pectoral import split
    from common import cv_split

    train, val = split(_names())
    held = []
    for fold in range(4):
        tr, ho = cv_split(train, 4, fold)
        assert len(ho) == 10 and len(tr) == 30
        assert not set(ho) & set(tr) and not (set(ho) | set(tr)) & set(val)
        held += ho
    assert sorted(held) == sorted(train)


def test_train_pectoral_cross_validation_command(shared_data, tmp_path):
    import train_pectoral

    out = tmp_path / "cv"
    train_pectoral.main(["--data", str(shared_data / "mammo_ddsm"), "--out", str(out), "--limit", "3", "--epochs",
                         "1", "--batch", "2", "--width", "2", "--threads", "1", "--augment", "strong",
                         "--folds", "4", "--fold", "1"])
    config = json.loads((out / "config.json").read_text())
    _, val = train_pectoral.split(train_pectoral.list_cases(shared_data / "mammo_ddsm"))
    assert config["cv"] == {"folds": 4, "fold": 1} and config["augment"] == "strong"
    assert not set(config["val_cases"]) & set(val)  # the held-out fold, not the validation split
    with pytest.raises(SystemExit):
        train_pectoral.main(["--out", str(tmp_path / "bad"), "--folds", "4", "--fold", "4"])


def _wedge_batch(n=4):
    cols = torch.arange(256)[None, :] < torch.linspace(120, 10, 512)[:, None]
    masks = cols[None, None].float().expand(n, 1, 512, 256).clone()
    images = torch.where(masks > 0, 0.8, 0.3) + 0.0 * masks
    return images, masks


def test_strong_augmentation_moves_mask_with_image_and_stays_in_range():
    from pectoral_augment import STRONG, random_affine, random_intensity

    images, masks = _wedge_batch()
    g = torch.Generator().manual_seed(3)
    img, msk = random_affine(images, masks, g, STRONG)
    # the muscle is the bright part: after the same warp, mask and bright pixels still coincide
    inside = img[msk > 0.99].mean()
    outside = img[msk < 0.01].mean()
    assert inside > 0.75 and outside < 0.35
    out = random_intensity(img, g, STRONG)
    assert out.min() >= 0 and out.max() <= 1 and torch.isfinite(out).all()


def test_tone_curve_keeps_black_and_white_and_order():
    from pectoral_augment import tone_curve

    x = torch.linspace(0, 1, 101).view(1, 1, 1, 101).expand(16, 1, 1, 101)
    y = tone_curve(x, torch.Generator().manual_seed(0), p=1.0)
    assert torch.allclose(y[..., 0], torch.zeros(16, 1, 1), atol=1e-6)
    assert torch.allclose(y[..., -1], torch.ones(16, 1, 1), atol=1e-5)
    assert (y.diff(dim=-1) >= 0).all()
    assert (y - x).abs().amax() > 0.1  # it does change contrast


def test_standard_setting_draws_are_the_original_recipes():
    """The original intensity chain (gamma, sigmoid p 0.3, contrast, blur/sharpen, noise, stripes) with the original
    ranges, written out here, equals random_intensity with STANDARD draw for draw."""
    from pectoral_augment import (STANDARD, blur_or_sharpen, film_edge_stripes, random_intensity, sigmoid_window)

    from uqseg.transforms.augment import random_contrast_brightness, random_gamma, random_noise

    images, _ = _wedge_batch()
    a = random_intensity(images, torch.Generator().manual_seed(7), STANDARD)
    g = torch.Generator().manual_seed(7)
    x = random_gamma(images, g, 1.6)
    x = sigmoid_window(x, g, 0.3)
    x = random_contrast_brightness(x, g, (0.8, 1.2), 0.1)
    x = blur_or_sharpen(x, g)
    x = random_noise(x, g, 0.04)
    assert torch.equal(a, film_edge_stripes(x, g).clamp(0, 1))


class _Result:
    def __init__(self, rows, mean, std, width=100, flipped=False):
        self.rows, self.mean_col, self.std_col = np.array(rows), np.array(mean, float), np.array(std, float)
        self.shape, self.flipped = (6, width), flipped


def test_missed_rows_count_at_the_image_edge_and_outside_two_sigma():
    from evaluate_pectoral import all_rows_errors

    truth = np.array([np.nan, 20.5, 30.5, 40.5, np.nan, np.nan])  # muscle in rows 1..3 (pixel-centre boundary)
    res = _Result(rows=[1, 2], mean=[22.5, 30.5], std=[1.5, 0.1])
    err, in2s = all_rows_errors(res, truth)
    assert err.tolist() == [2.0, 0.0, 41.0]  # row 3 missed: boundary at −½
    assert in2s.tolist() == [True, True, False]
    # a flipped result reports columns un-flipped: the canonical column is (W − 1) − col
    err_f, _ = all_rows_errors(_Result(rows=[1, 2], mean=[76.5, 68.5], std=[1.5, 0.1], flipped=True), truth)
    assert err_f.tolist() == [2.0, 0.0, 41.0]


def test_gamma_tta_averages_row_distributions():
    from evaluate_pectoral import GammaTTA

    from uqseg.mammo.pectoral_model import PectoralHeatmapNet

    torch.manual_seed(0)
    net = PectoralHeatmapNet(width=2).eval()
    x = torch.rand(1, 1, 256, 256)
    with torch.no_grad():
        mean, var, prob = GammaTTA(net, [1.0]).decode(x)
        m1, v1, p1 = net.decode(x)
        assert torch.allclose(prob, p1) and torch.allclose(mean, m1, atol=1e-4)
        _, _, p3 = GammaTTA(net, [0.8, 1.0, 1.25]).decode(x)
        expect = (net.decode(x ** 0.8)[2] + p1 + net.decode(x ** 1.25)[2]) / 3
        assert torch.allclose(p3, expect, atol=1e-6)
        assert torch.allclose(p3.sum(-1), torch.ones(1, 256), atol=1e-5)


def _fold_eval(path: Path, mae_all: float, rows_all: int, within: float, mae: float = 1.0, rows: int = 10):
    path.mkdir(parents=True)
    path.joinpath("evaluation.json").write_text(json.dumps({
        "mae_input_px_all_rows": mae_all, "all_rows": rows_all, "within_2sigma_share": within, "mae": mae,
        "rows": rows, "images": 10, "mae_input_px_all_rows_per_image": {f"{path.parent.name}.png": mae_all}}))


def test_cv_summary_pools_rows_and_chooses_only_complete_settings(tmp_path):
    from pectoral_cv_summary import summarise

    for f, (m, n) in enumerate([(4.0, 100), (8.0, 300)]):
        _fold_eval(tmp_path / f"a_f{f}" / "eval", m, n, 0.9)
        _fold_eval(tmp_path / f"b_f{f}" / "eval", 6.0, n, 0.95)
        _fold_eval(tmp_path / f"b_f{f}" / "eval_tta", 5.0, n, 0.95)  # test-time augmentation of b
    _fold_eval(tmp_path / "c_f0" / "eval", 1.0, 100, 1.0)  # one fold only: never chosen
    s = summarise(tmp_path, folds=2)
    assert s["settings"]["a"]["mae_input_px_all_rows"] == pytest.approx(7.0)  # (4·100 + 8·300) / 400
    assert s["settings"]["b"]["mae_input_px_all_rows"] == pytest.approx(6.0)
    assert not s["settings"]["c"]["complete"] and s["chosen"] == "b"  # the single pass, not "b+tta"
    assert s["test_time_augmentation"] == {"b": {"gain_px": pytest.approx(1.0), "network_passes": 3}}


# ------------------------------------------------------------------------------------ mammo-breast's CV card refresh
def _breast_fold(root: Path, i: int, folds: int, dice: float, stages=((15, 3e-3), (30, 1.5e-3), (30, 1e-3)), width=16):
    for s, (epochs, lr) in zip(("s1", "s2", "s3"), stages):
        (root / f"f{i}" / s).mkdir(parents=True)
        (root / f"f{i}" / s / "config.json").write_text(json.dumps({
            "epochs": epochs, "lr": lr, "width": width, "cv": {"folds": folds, "fold": i}, "threads": 1,
            "train_seconds": 10.0, "val_cases": [f"img{i}.png"]}))
    (root / f"f{i}" / "eval").mkdir()
    rows = [{"name": f"img{i}_{k}.png", "dice_breast": dice, "dice_pectoral": dice - 0.1, "dice_tissue": 0.98}
            for k in range(2)]
    (root / f"f{i}" / "eval" / "evaluation.json").write_text(json.dumps({
        "per_image": rows, "pectoral_fn_images": [], **{k: {"mean": dice} for k in ("dice_breast", "dice_tissue")},
        "dice_pectoral": {"mean": dice - 0.1}}))


def test_breast_card_gets_the_pooled_cv_and_the_missed_targets(tmp_path):
    from refresh_breast_card import check_recipe, refreshed
    from breast_cv_summary import summarise

    card = {"version": "2.0.0", "architecture": {"width": 16}, "validation": {}, "notes": None,
            "training": {"stages": [{"epochs": 15, "lr": 3e-3}, {"epochs": 30, "lr": 1.5e-3},
                                    {"epochs": 30, "lr": 1e-3}]}}
    _breast_fold(tmp_path, 0, 2, 0.96)
    _breast_fold(tmp_path, 1, 2, 0.94)
    info = check_recipe(card, tmp_path, 2)
    s = summarise(tmp_path, 2)
    new = refreshed(card, s, info, "2.1.0", "cv")
    cvd = new["validation"]["cross_validated"]
    assert new["version"] == "2.1.0" and s["images"] == 4
    assert cvd["dice_breast_mean"] == pytest.approx(0.95) and cvd["targets_reached"]["dice_breast"]
    assert cvd["dice_pectoral_mean"] == pytest.approx(0.85) and not cvd["targets_reached"]["dice_pectoral"]
    assert cvd["missed_by"]["dice_pectoral"] == pytest.approx(0.03)
    assert card["version"] == "2.0.0"  # the input card is not changed


def test_breast_card_refuses_folds_of_another_recipe(tmp_path):
    from refresh_breast_card import check_recipe

    card = {"architecture": {"width": 16},
            "training": {"stages": [{"epochs": 15, "lr": 3e-3}, {"epochs": 30, "lr": 1.5e-3},
                                    {"epochs": 30, "lr": 1e-3}]}}
    _breast_fold(tmp_path / "a", 0, 1, 0.95, width=8)
    with pytest.raises(ValueError, match="width 8"):
        check_recipe(card, tmp_path / "a", 1)
    _breast_fold(tmp_path / "b", 0, 1, 0.95, stages=((15, 3e-3), (30, 1.5e-3), (10, 1e-3)))
    with pytest.raises(ValueError, match="stages"):
        check_recipe(card, tmp_path / "b", 1)
    _breast_fold(tmp_path / "c", 0, 2, 0.95)
    with pytest.raises(ValueError, match="missing"):  # fold 1 of 2 never finished
        check_recipe(card, tmp_path / "c", 2)
    with pytest.raises(ValueError, match="fold 0 of 3"):  # fold 0 was trained for another number of folds
        check_recipe(card, tmp_path / "c", 3)


# ------------------------------------------------------------------------- mammo-pectoral: acceptance and card refresh
def test_shipped_pectoral_model_flags_every_non_mammogram(shipped_model, shared_data):
    """The acceptance check a retrained candidate must pass before it replaces the shipped weights (issue 19's strong
    candidate failed it: 7 of 11): chest X-rays, CT slices and noise are all flagged by the shipped model."""
    pytest.importorskip("SimpleITK")
    from pectoral_ood_check import check

    card, net = shipped_model("mammo-pectoral")
    with torch.no_grad():
        result = check(net, card["uncertainty"]["ood_threshold_grid"], shared_data)
    assert result["inputs"] == 11 and result["passed"], [r for r in result["per_input"] if not r["flagged"]]


def test_pectoral_card_refresh_adds_the_issue_fields_and_refuses_another_models_evaluation():
    from refresh_pectoral_card import refreshed

    card = {"version": "1.0.0", "validation": {"mae_grid": 3.551}, "training": {}, "notes": ["old"]}
    ev = {"mae": 3.5511, "mae_input_px_all_rows": 6.0, "within_2sigma_share": 0.93, "all_rows": 100,
          "mae_input_px_all_rows_per_image": {"a.png": 6.0},
          "all_rows_by_third": {"mae_input_px": [5.0, 5.0, 8.0], "rows": [33, 33, 34]}}
    new = refreshed(card, ev, {"chosen": "strong"}, [], "1.0.1", ["new"])
    v = new["validation"]
    assert new["version"] == "1.0.1" and new["notes"] == ["new", "old"]
    assert v["missed_by"] == {"mae_input_px_all_rows": 1.5, "within_2sigma_share": 0.0}
    assert v["targets_reached"] == {"mae_input_px_all_rows": False, "within_2sigma_share": True}
    assert new["training"]["cross_validation"]["chosen"] == "strong" and card["version"] == "1.0.0"
    with pytest.raises(ValueError, match="not an evaluation of this model"):
        refreshed(card, {**ev, "mae": 3.9}, None, [], "1.0.1", [])
