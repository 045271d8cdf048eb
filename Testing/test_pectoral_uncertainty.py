"""Does the pectoral boundary's σ mean something? (Zech et al., MIDL 2026, Fig. 4 and Section 4.)

With the shipped model: σ rises where a dense region hides the muscle edge (project phantom); on the real validation
images σ rises with the error (binned, Fig. 4a) and with simulated dose reduction (Fig. 4b); a badly degraded image is
either flagged or still accurate — never a confident wrong boundary; a CT slice is flagged.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from uqseg.io.image import Image
from uqseg.io.phantoms import mlo_phantom
from uqseg.mammo import boundary_grid as bg
from uqseg.mammo.pectoral import predict_pectoral

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "Training"))
from evaluate_pectoral import binned, reduce_dose, spearman  # noqa: E402
from datasets.ddsm_pectoral import list_cases, load_case, split  # noqa: E402


@pytest.fixture(scope="module")
def model(shipped_model):
    card, net = shipped_model("mammo-pectoral")
    return net, card


def _flagged(result, card) -> bool:
    return result.is_multimodal or result.image_uncertainty_grid > card["uncertainty"]["ood_threshold_grid"]


def test_occluded_edge_raises_sigma_where_it_is_hidden(model):
    net, _ = model
    clear_img, truth, _ = mlo_phantom(dense_occlusion=False, skin_fold=False)
    hidden_img, _, _ = mlo_phantom(dense_occlusion=True, skin_fold=False)
    clear = predict_pectoral(Image(clear_img), net)
    hidden = predict_pectoral(Image(hidden_img), net)
    end = np.flatnonzero(~np.isnan(truth)).max()
    blob = slice(int(0.35 * end), int(0.6 * end))  # the blob sits at 40-50 % of the muscle height
    top = slice(0, int(0.25 * end))

    def sigma(res, rows):
        sel = (res.rows >= rows.start) & (res.rows < rows.stop)
        return res.std_col[sel].mean()

    assert sigma(hidden, blob) > 1.5 * sigma(clear, blob)
    assert sigma(hidden, top) < 1.3 * sigma(clear, top)  # the uncertainty stays local
    assert sigma(hidden, blob) > 2 * sigma(hidden, top)


@pytest.fixture(scope="module")
def validation(shared_file):
    """The DDSM validation split of the training recipe (every image of it, with its manual label)."""
    root = shared_file("mammo_ddsm")
    _, val = split(list_cases(root))
    assert len(val) >= 6, f"{root}: {len(val)} validation images, the tests below need at least 6"
    return [load_case(root, n) for n in val]


def _grid_errors(net, image255, muscle):
    res = predict_pectoral(Image(image255.astype(np.float32)), net)
    h, w = muscle.shape
    b = bg.boundary_from_mask(muscle)
    y = np.clip(np.rint(bg.grid_row_to_image(np.arange(bg.GRID), h)).astype(int), 0, h - 1)
    present = ~np.isnan(b[y])
    err = res.grid_mean[present] - bg.image_col_to_grid(b[y][present], w)
    return res, err, np.sqrt(res.grid_var[present])


def test_sigma_rises_with_error_on_real_validation_images(model, validation):
    net, _ = model
    errs, sigs = zip(*[_grid_errors(net, img * 255, m)[1:] for img, m in validation])
    s, e = binned(np.concatenate(sigs), np.concatenate(errs), bins=5)
    assert spearman(s, e) >= 0.8, (s, e)
    assert e[-1] > 2 * e[0]  # the most uncertain fifth of the rows is much less accurate than the least


def test_sigma_rises_when_dose_falls(model, validation):
    net, _ = model
    rng = np.random.default_rng(0)
    subset = validation[:6]
    full = np.mean([_grid_errors(net, img * 255, m)[2].mean() for img, m in subset])
    quarter = np.mean([_grid_errors(net, reduce_dose(img * 255, 0.25, rng), m)[2].mean() for img, m in subset])
    assert quarter > full


def test_badly_degraded_image_is_flagged_or_still_right(model, validation):
    net, card = model
    rng = np.random.default_rng(1)
    for img, muscle in validation[:3]:
        noisy = np.clip(img * 255 + rng.normal(0, 150, img.shape), 0, 255)
        res, err, _ = _grid_errors(net, noisy, muscle)
        mae_px = np.abs(err).mean() * bg.col_scale(muscle.shape[1])
        assert _flagged(res, card) or mae_px < 10, f"confident but wrong: MAE {mae_px:.1f} px, not flagged"


def test_ct_slice_is_flagged(model, shared_file):
    sitk = pytest.importorskip("SimpleITK")
    path = shared_file("ct_totalseg/pulmonary_report__models__ct_cropped.nii.gz")
    net, card = model
    vol = sitk.GetArrayFromImage(sitk.ReadImage(str(path))).astype(np.float32)
    assert _flagged(predict_pectoral(Image(vol[vol.shape[0] // 2]), net), card)
