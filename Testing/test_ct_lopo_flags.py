"""The ct-organs flag measurement of issue 18 (Training/evaluate_ct_lopo.py `assess`,
export_ct.flag_summary, Training/refresh_ct_card.py): a confident wrong island in the pelvis — low variance, no OOD — is counted as wrong and
flagged only by the detached-fragment rule, so the pelvis check sees it flagged and the "without fragments" count
does not; the organ's main body is never called a fragment; a fragment that lies in the reference is counted as a
false alarm; and the card refresher refuses an evaluation of another model. Volumes on a 2 mm grid (8 µl a voxel)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
TRAINING = REPO / "Training"
ORGANS = ["liver", "spleen"]
VOXEL_ML = 0.008


@pytest.fixture(autouse=True)
def training_modules(monkeypatch):
    monkeypatch.syspath_prepend(str(TRAINING))


def _case():
    """(prediction, reference, pelvis mask): the liver predicted right; a 2.2 ml 'liver' island in the pelvis slices
    (z 0-9) with low variance and no OOD; a 2.2 ml 'spleen' main body inside the reference spleen and a 1.7 ml spleen
    piece that is also inside the reference (a right fragment: a false alarm)."""
    shape = (40, 40, 40)
    label = np.zeros(shape, np.uint8)
    ref = np.zeros(shape, np.uint8)
    label[20:36, 5:25, 5:25] = 1
    ref[20:36, 5:25, 5:25] = 1
    label[2:8, 30:37, 30:37] = 1  # 294 voxels = 2.35 ml, wrong, in the pelvis
    label[22:28, 28:35, 28:36] = 2  # spleen main body: 336 voxels
    ref[22:28, 28:35, 28:36] = 2
    label[30:36, 30:36, 30:36] = 2  # 216 voxels = 1.73 ml, in the reference too
    ref[30:36, 30:36, 30:36] = 2
    variance = np.full((len(ORGANS), *shape), 1e-5, np.float32)
    variance = np.concatenate([np.zeros((1, *shape), np.float32), variance])
    pred = SimpleNamespace(work_label=label, work_variance=variance, work_ood=np.zeros(shape, np.float32),
                           work_hu=np.full(shape, 40.0, np.float32))
    pelvis = np.zeros(shape, np.uint8)
    pelvis[0:10] = 1
    return pred, ref, pelvis


def test_a_low_variance_pelvic_island_is_flagged_only_as_a_fragment():
    from evaluate_ct_lopo import assess

    pred, ref, pelvis = _case()
    out = assess(pred, ref, pelvis, ORGANS, (0, 40), var_threshold=1e-3, ood_threshold=0.5, voxel_ml=VOXEL_ML)
    island = next(c for c in out["components"] if c["wrong"])
    assert island["organ"] == "liver" and island["ml"] == pytest.approx(2.35) and island["in_pelvis"]
    assert island["flag_fragment"] and not island["flag_variance"] and not island["flag_ood"] and island["flagged"]
    assert out["pelvis"]["wrong_components"] == 1 and out["pelvis"]["wrong_components_flagged"] == 1
    assert out["pelvis"]["wrong_components_flagged_without_fragments"] == 0 and out["pelvis"]["unflagged"] == []
    mains = [c for c in out["components"] if c["ml"] > 2.5]
    assert len(mains) == 2 and not any(c["flag_fragment"] for c in mains)
    assert out["right_components_flagged_as_fragments"] == 1  # the spleen piece inside the reference


def test_flag_summary_counts_fragments_and_their_false_alarms():
    from evaluate_ct_lopo import assess
    from export_ct import flag_summary

    pred, ref, pelvis = _case()
    t = assess(pred, ref, pelvis, ORGANS, (0, 40), var_threshold=1e-3, ood_threshold=0.5, voxel_ml=VOXEL_ML)
    s = flag_summary([{"tests": {"B": t}}])
    assert (s["wrong_components"], s["wrong_components_flagged"], s["by_fragment"]) == (1, 1, 1)
    assert s["wrong_components_flagged_without_fragments"] == 0 and s["components_flag_rate_without_fragments"] == 0
    assert (s["right_components"], s["right_components_flagged_as_fragments"]) == (3, 1)


def test_the_card_refresher_refuses_an_evaluation_of_another_model():
    from refresh_ct_card import refreshed

    card = json.loads((REPO / "Resources" / "Models" / "ct-organs-mob" / "model.json").read_text())
    own = {"variance_threshold": card["uncertainty"]["region_threshold"] * 1.01,
           "ood_threshold": card["ood"]["threshold"], "train_cases": ["A", "B"], "form": "mixture_of_bases", "samples": 30, "organs": ORGANS, "tests": {}}
    with pytest.raises(ValueError, match="not an evaluation of this model"):
        refreshed(card, own, {}, "9.9.9", "note", None)
    own["variance_threshold"] = card["uncertainty"]["region_threshold"]
    new = refreshed(card, own, {}, "9.9.9", "note", None)
    assert new["version"] == "9.9.9" and new["weights"] == card["weights"] and new["ood"] == card["ood"]
    assert new["notes"].startswith("note (Before: ")


def test_the_shipped_card_says_how_its_flags_were_counted():
    card = json.loads((REPO / "Resources" / "Models" / "ct-organs-mob" / "model.json").read_text())
    flags = card["validation"]["flags"]
    assert "detached fragment" in flags["rule"]
    lopo = flags["leave_one_patient_out"]
    assert lopo["wrong_components_flagged"] <= lopo["wrong_components"]
    assert lopo["wrong_components_flagged_without_fragments"] <= lopo["wrong_components_flagged"]
    pelvis = card["validation"]["leave_one_patient_out"]["eval_AtoB"]["tests"]["B"]["pelvis"]
    assert pelvis["slices"] > 0 and pelvis["unflagged"] == [] and pelvis["wrong_components_flagged"] == pelvis[
        "wrong_components"]
