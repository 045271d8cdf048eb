"""The uncertainty of the shipped cxr-landmarks model means something (CheXmask-U Fig. 2, 3a, 5),
checked on a small subset of the JSRT val images (the full study with plots is Training/evaluate_cxr.py):
(a) a black square over the lateral border of a lung raises the std of the nodes under it above the others and above
    the same nodes on the clean image; (b) Gaussian noise of rising strength raises the mean node std; (c) binned node
    std vs error rises; (d) non-chest images (a mammogram, a CT slice) are flagged `ood`, the val images are not.
Each real image the tests need skips, naming the missing file, when absent; the shipped model must load (else: fail)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage

from uqseg.cxr import checks
from uqseg.cxr.graph import organ_slices
from uqseg.cxr.landmarks_io import read_landmarks
from uqseg.io.load import load_image

VAL_SUBSET = ("JPCLN001", "JPCLN046", "JPCNN042")  # three of the 21 val images
SAMPLES = 50


@pytest.fixture(scope="module")
def shipped(shipped_model):
    return shipped_model("cxr-landmarks")


@pytest.fixture(scope="module")
def val_cases(shared_file):
    """The three val images of VAL_SUBSET (all of them: the thresholds below are for this subset; a missing file
    skips, naming it)."""
    import json

    out = []
    for n in VAL_SUBSET:
        image, landmarks = shared_file(f"cxr_jsrt/images/{n}.png"), shared_file(f"cxr_jsrt/landmarks/{n}.json")
        assert json.loads(landmarks.read_text())["split"] == "val", f"{landmarks}: not a val image"
        img = np.asarray(PILImage.open(image), dtype=np.float32)
        nodes, _ = read_landmarks(landmarks)
        out.append((n, img, nodes))
    return out


@pytest.fixture(scope="module")
def clean(shipped, val_cases):
    _, model = shipped
    return [checks.predict_array(img, model, SAMPLES) for _, img, _ in val_cases]


def test_occlusion_raises_the_std_of_the_nodes_under_the_square(shipped, val_cases, clean):
    _, model = shipped
    ratios, increases = [], []
    for (name, img, truth), res in zip(val_cases, clean):
        for organ, pick in (("right_lung", np.argmin), ("left_lung", np.argmax)):
            sl = organ_slices()[organ]
            occ_img, box = checks.occlude(img, truth[sl][pick(truth[sl][:, 0])], 0.2)
            eff = checks.occlusion_effect(res, checks.predict_array(occ_img, model, SAMPLES), truth, box)
            ratios.append(eff["under_over_others"])
            increases.append(eff["occluded_over_clean"])
    assert np.median(ratios) > 1.5, f"std under the square / others: {np.round(ratios, 2)}"
    assert np.median(increases) > 1.5, f"occluded / clean std of the same nodes: {np.round(increases, 2)}"


def test_noise_raises_the_mean_node_std(shipped, val_cases, clean):
    _, model = shipped
    rng = np.random.default_rng(0)
    levels = (0.1, 0.3)
    means = [np.mean([r.image_uncertainty_ref for r in clean])]
    for level in levels:
        means.append(np.mean([checks.predict_array(checks.add_noise(img, level, rng), model, SAMPLES)
                              .image_uncertainty_ref for _, img, _ in val_cases]))
    assert checks.is_increasing(means), f"mean node std at noise 0, {levels}: {np.round(means, 3)}"
    assert means[-1] > 1.25 * means[0], np.round(means, 3)  # shipped model, small subset: 3.73 → 4.96


def test_binned_std_vs_error_rises(val_cases, clean):
    std = np.concatenate([r.node_std for r in clean])
    err = np.concatenate([np.linalg.norm(r.mean - t, axis=1) for (_, _, t), r in zip(val_cases, clean)])
    bin_std, bin_err = checks.binned_std_vs_error(std, err, bins=3)
    assert bin_err[-1] > bin_err[0], f"error per std tercile: {np.round(bin_err, 2)}"


def test_val_images_are_not_ood(shipped, clean):
    card, _ = shipped
    threshold = card["uncertainty"]["ood_threshold_ref"]
    assert all(r.image_uncertainty_ref <= threshold for r in clean), [r.image_uncertainty_ref for r in clean]


# one non-chest image per case (the first DDSM mammogram; the middle slice of the 20-slice CT series)
NON_CHEST = {"mammogram": "mammo_ddsm/images/A_0003_1.RIGHT_MLO.png",
             "ct_slice": "ct_totalseg/example_ct_dicom/CT.1.3.12.2.1107.5.1.4.60064.30000022120808113428000016583.dcm"}


@pytest.mark.parametrize("name", sorted(NON_CHEST))
def test_non_chest_image_is_ood(shipped, shared_file, name):
    card, model = shipped
    threshold = card["uncertainty"]["ood_threshold_ref"]
    arr = load_image(shared_file(NON_CHEST[name])).array
    u = checks.predict_array(arr, model, SAMPLES).image_uncertainty_ref
    assert u > threshold, f"{name}: image_uncertainty_ref {u:.3f} not above the threshold {threshold:.3f}"
