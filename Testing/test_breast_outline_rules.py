"""The outline rules of mammo-breast's post-processing (`uqseg.mammo.breast`): the skin-line refinement from the
image intensities (`breast_skin_line`), the cut below the inframammary fold on MLO views (`breast_fold`) and the
pectoral row fill (`postprocess`), on synthetic masks and images with known answers, and the refinement on one real
DDSM training image against its manual label."""

from __future__ import annotations

import numpy as np
import pytest

from uqseg.mammo.breast import clean_label, fill_pectoral_rows, postprocess
from uqseg.mammo.breast_fold import RISE_MM, cut_below_fold, fold_row
from uqseg.mammo.breast_preprocess import Prepared
from uqseg.mammo.breast_skin_line import BAND_MM, refine_tissue
from uqseg.metrics import dice

PIXEL_MM = 0.4  # the working grid


def half_ellipse(shape, centre_row, rows, cols):
    """Tissue against the chest wall (column 0): a half ellipse with semi-axes `rows` × `cols` pixels."""
    r, c = np.mgrid[: shape[0], : shape[1]]
    return ((r - centre_row) / rows) ** 2 + (c / cols) ** 2 <= 1.0


def outer_columns(mask):
    return np.where(mask.any(axis=1), mask.shape[1] - 1 - np.argmax(mask[:, ::-1], axis=1), -1)


def prepared(image):
    h, w = image.shape
    return Prepared(image.astype(np.float32), (h, w), False, "given", (PIXEL_MM, PIXEL_MM), "test", "as loaded")


# ------------------------------------------------------------------------------------------- the fold cut (MLO)
@pytest.fixture
def breast_and_abdomen():
    shape = (240, 150)
    breast = half_ellipse(shape, 100, 80, 100)  # rows 20..180, 100 px = 40 mm wide
    abdomen = half_ellipse(shape, 215, 40, 55)  # bulges out again below the fold, overlaps the breast at the wall
    return breast, abdomen


def test_a_body_part_attached_below_the_fold_is_cut(breast_and_abdomen):
    breast, abdomen = breast_and_abdomen
    assert (breast & abdomen).any()  # attached: one component
    label = np.where(breast | abdomen, 1, 0).astype(np.uint8)
    row = fold_row(label, PIXEL_MM)
    e = outer_columns(breast | abdomen)
    assert row is not None and 170 <= row <= 200  # the notch between the breast and the abdominal bulge
    assert e[row] == e[100 : row + 1].min() and e[row] <= 0.6 * e.max()
    out, cut_at = cut_below_fold(label, PIXEL_MM)
    assert cut_at == row
    assert not out[row + 1:].any()  # the abdomen is gone
    np.testing.assert_array_equal(out[: row + 1], label[: row + 1])  # the breast above the notch is untouched
    lost = (label == 1) & (out == 0)
    assert lost.sum() >= 0.8 * (abdomen & ~breast).sum() and (lost & breast).sum() < 0.02 * breast.sum()


def test_the_breast_alone_a_nipple_and_a_small_fold_are_not_cut(breast_and_abdomen):
    breast, _ = breast_and_abdomen
    label = breast.astype(np.uint8)
    label[95:106, 98:106] = 1  # a nipple in profile at the widest row
    assert fold_row(label, PIXEL_MM) is None
    # A notch in the outline near the breast's full width (here 0.74 of it: a dent of the skin line) is no fold,
    # however far the outline comes out again below it.
    label[110:126, 75:] = 0
    e = outer_columns(label > 0)
    assert e[126:].max() - e[110:126].min() >= RISE_MM / PIXEL_MM and e[110:126].min() > 0.6 * e.max()
    assert fold_row(label, PIXEL_MM) is None
    # A bulge below a notch near the chest wall that rises by less than RISE_MM stays (a small real fold).
    small = half_ellipse(breast.shape, 200, 25, int(RISE_MM / PIXEL_MM) + 6)
    label_small = np.where(breast | small, 1, 0).astype(np.uint8)
    e = outer_columns(label_small > 0)
    notch = 150 + int(np.argmin(e[150:205]))
    assert 0 < e[notch:].max() - e[notch] < RISE_MM / PIXEL_MM
    assert fold_row(label_small, PIXEL_MM) is None


def test_the_fold_cut_applies_to_mlo_views_only(breast_and_abdomen):
    breast, abdomen = breast_and_abdomen
    label = np.where(breast | abdomen, 1, 0).astype(np.uint8)
    image = np.where(breast | abdomen, 0.6, 0.02)  # a sharp edge: the skin-line refinement keeps the outline
    prep = prepared(image)
    row = fold_row(label, PIXEL_MM)
    cc = clean_label(label, prep, mlo=False)
    assert (cc != label).sum() < 0.02 * label.sum()  # a CC view keeps its outline (e.g. an axillary tail)
    assert cc[row + 1:].sum() > 0.95 * label[row + 1:].sum()
    mlo = clean_label(label, prep, mlo=True)
    assert not mlo[row + 3:].any()  # (the notch of the refined outline may lie a row or two lower)
    assert (mlo[: row + 1] != label[: row + 1]).sum() < 0.02 * label.sum()


# ------------------------------------------------------------------------------------- the skin-line refinement
def faded_breast(shape=(240, 160), radius=110, ramp_px=10, seed=0):
    """A breast against the chest wall whose intensity fades linearly to the background over `ramp_px` pixels
    before its true edge (the faint periphery), with film noise; returns (image, true tissue, signed distance)."""
    r, c = np.mgrid[: shape[0], : shape[1]]
    inside = radius - np.hypot(r - shape[0] / 2, c)  # signed distance to the true edge, > 0 inside
    image = 0.02 + 0.5 * np.clip(inside / ramp_px, 0, 1)
    image += np.random.default_rng(seed).normal(0, 0.005, shape)
    return image, inside > 0, inside


def edge_offset(mask, inside):
    """Median signed distance (px, > 0 inside the true tissue) of the mask's outer edge pixels."""
    from scipy import ndimage

    edge = mask & ~ndimage.binary_erosion(mask, border_value=1)
    return float(np.median(inside[edge]))


@pytest.mark.parametrize("offset_px", [8, -8])  # the network's edge 3.2 mm inside / outside the true one
def test_the_skin_line_moves_to_the_faint_periphery(offset_px):
    image, truth, inside = faded_breast()
    net = inside > offset_px
    assert abs(edge_offset(net, inside) - offset_px) < 1.5
    refined = refine_tissue(net, image, PIXEL_MM)
    assert abs(edge_offset(refined, inside)) <= 3.0  # within 1.2 mm of the true edge, from 3.2 mm
    assert ((refined ^ truth).sum()) < 0.4 * ((net ^ truth).sum())
    # Only the band around the network's edge changes: the core and the far background keep their decision.
    changed = refined ^ net
    assert np.abs(inside[changed] - offset_px).max() <= BAND_MM / PIXEL_MM + 1


def test_the_faint_periphery_is_kept_and_background_noise_is_not_added():
    image, truth, inside = faded_breast(ramp_px=20)  # a long faint fade (8 mm) towards the skin
    net = inside > 10  # the network stops 4 mm inside the true edge
    refined = refine_tissue(net, image, PIXEL_MM)
    # The edge moves out to where the fade reaches 20 % of the way from the background to the tissue level next to
    # the band (here about 4 px = 1.6 mm inside the true edge): the faint periphery outside that is kept.
    periphery = (inside > 5) & (inside <= 10)
    assert refined[periphery].mean() > 0.9
    assert not refined[inside < -1].any()  # no background beyond the true edge
    # Tissue that runs off the image keeps the border (the border is not a skin line); no edge, no change.
    assert refined[net[:, 0], 0].all()
    assert refine_tissue(np.ones_like(net), image, PIXEL_MM).all()


def test_new_tissue_takes_the_label_of_its_nearest_tissue():
    from uqseg.mammo.breast_skin_line import refine_skin_line

    image, _, inside = faded_breast()
    label = np.where(inside > 8, 1, 0).astype(np.uint8)
    label[:40][label[:40] == 1] = 2  # the muscle at the top
    out = refine_skin_line(label, image, PIXEL_MM)
    added = (out > 0) & (label == 0)
    assert added.any()
    rows = np.nonzero(added)[0]
    values = out[added]
    # nearest tissue: the muscle well above row 40, the breast well below it (near row 40 the curved edge decides)
    assert (values[rows < 25] == 2).all() and (values[rows > 50] == 1).all()


# --------------------------------------------------------------------------------------------- pectoral row fill
def test_breast_islands_inside_the_muscle_become_pectoral():
    label = np.zeros((120, 100), np.uint8)
    label[:, :80] = 1
    r, c = np.mgrid[:120, :100]
    muscle = c < 50 - 0.8 * r  # a triangle against the chest wall, rows 0..62
    label[muscle] = 2
    island = (r > 5) & (r < 20) & (c > 10) & (c < 25)
    label[island] = 1  # the network calls a patch of the muscle "breast"
    notch = (r > 30) & (r < 40) & (c < 6)
    label[notch & muscle] = 1  # ... and a run along the chest wall
    out = postprocess(label, pixel_area_mm2=0.16)
    assert (out[muscle] == 2).all()
    np.testing.assert_array_equal(out[~muscle], label[~muscle])  # nothing outside the muscle's rows changes
    again = fill_pectoral_rows(out.copy())
    np.testing.assert_array_equal(again, out)


# ------------------------------------------------------------------------------------------ one real training image
def test_real_ddsm_faint_periphery_is_recovered(shared_file, shipped_model):
    """A_0011 (a TRAINING image: the rules were chosen on the training split) has a faint skin periphery that the
    network's edge cuts off; the refined outline is closer to the manual label."""
    import torch
    from PIL import Image as PILImage

    from uqseg.io import load_image
    from uqseg.mammo.breast import _argmax3, _probabilities_matching, predict_breast
    from uqseg.mammo.breast_preprocess import to_input_grid

    name = "A_0011_1.RIGHT_MLO.png"
    image, label = shared_file(f"mammo_ddsm/images/{name}"), shared_file(f"mammo_ddsm/labels/{name}")
    model = shipped_model("mammo-breast").model
    truth = np.asarray(PILImage.open(label))
    tissue_ref = truth > 0
    res = predict_breast(load_image(image), model, fast=True, input_maps=False)
    sx, sy = res.prepared.work_spacing_mm
    mean = torch.from_numpy(res.work_mean)
    plain = postprocess(mean.argmax(dim=0).numpy(), sx * sy)  # the network's outline, components only
    plain_in = _argmax3(to_input_grid(_probabilities_matching(mean, plain), res.prepared))

    before, after = dice(plain_in > 0, tissue_ref), dice(res.label > 0, tissue_ref)
    missed_before = (tissue_ref & (plain_in == 0)).sum()
    missed_after = (tissue_ref & (res.label == 0)).sum()
    assert after > before + 0.01, (before, after)
    assert missed_after < 0.5 * missed_before
