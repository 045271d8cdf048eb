"""The ct-organs training recipe (Training/train_ct.py) on the real shared CT: the data adapter aligns the label map
by physical position, patches are sampled with foreground oversampling, and both stages of the schedule run a few
optimisation steps end to end (weights + config written, stage 2 starts from stage 1)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

TRAINING = Path(__file__).resolve().parents[1] / "Training"
sys.path.insert(0, str(TRAINING))


def test_shared_abdomen_labels_align_with_the_ct(shared_data):
    from datasets.totalseg import load_shared_abdomen

    case = load_shared_abdomen(shared_data / "ct_totalseg", ["liver", "aorta"])
    assert case.label.shape == case.image.shape == (20, 512, 512)
    liver_hu = case.image.array[case.label == 1]
    aorta_hu = case.image.array[case.label == 2]
    # liver parenchyma and contrast-filled aorta: a y-flipped (mis-aligned) map would put these on fat / air
    assert 40 < np.median(liver_hu) < 160
    assert np.median(aorta_hu) > 120
    # the liver lies on the patient's right: low LPS x (ITK/LPS x grows to the patient's left)
    cols = np.nonzero(case.label == 1)[2]
    assert cols.mean() < 256


def test_patch_sampling_oversamples_foreground():
    from ct_augment import sample_patch

    rng = np.random.default_rng(0)
    vol = np.zeros((20, 100, 100), np.float32)
    lab = np.zeros((20, 100, 100), np.uint8)
    lab[5:8, 10:14, 10:14] = 1  # a tiny organ: 0.1 % of the volume
    hits = 0
    for _ in range(300):
        img, l = sample_patch(vol, lab, (8, 32, 32), rng, foreground=1 / 3, z_range=(0, 14))
        hits += bool((l == 1).any())
        assert img.shape == l.shape == (10, 64, 64)
    assert hits > 90  # ≥ 1/3 of patches hold the organ (uniform sampling would give ~ 5 %)
    # slices outside the allowed z range (the validation slab) are never sampled
    vol[14:] = 5.0
    for _ in range(50):
        img, l = sample_patch(vol, lab, (8, 32, 32), rng, foreground=0.5, z_range=(0, 14))
        assert not (img == 5.0).any()


def test_two_stage_schedule_runs(shared_data, tmp_path):
    import train_ct

    common = ["--data", str(shared_data / "ct_totalseg"), "--organs", "liver", "--batch", "1", "--patch", "8", "32",
              "32", "--filters", "4", "8", "16", "16", "--eval-every", "2", "--train-samples", "2", "--threads", "2"]
    assert train_ct.main(common + ["--form", "deterministic", "--steps", "2", "--lr", "1e-3",
                                   "--out", str(tmp_path / "s1")]) == 0
    assert train_ct.main(common + ["--form", "mixture_of_bases", "--steps", "2", "--init",
                                   str(tmp_path / "s1" / "weights.safetensors"), "--out", str(tmp_path / "s2")]) == 0
    cfg = json.loads((tmp_path / "s2" / "config.json").read_text())
    assert cfg["training"]["steps_done"] == 2 and cfg["architecture"]["form"] == "mixture_of_bases"
    assert cfg["split"]["shared"]["val_slices"] == [14, 20]
    assert "liver" in cfg["final_val"]["example_ct_dicom"]["dice_mc"]
    log = [json.loads(line) for line in (tmp_path / "s2" / "log.jsonl").read_text().splitlines()]
    assert {"ce", "dice", "kl", "orth", "weight_entropy"} <= set(log[-1])
