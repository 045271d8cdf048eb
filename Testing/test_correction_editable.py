"""Edits restricted to the uncertain region and "accept the alternative" (uqseg.correction.editable).

On a synthetic CT phantom — a 3-D blob whose boundary is faint on one side, where the
predicted label misses a cap of the blob and the predictive variance is high — a brush stroke restricted to the
editable area cannot change a confident voxel."""

from __future__ import annotations

import numpy as np
import pytest

from uqseg.correction.editable import accept_alternative, apply_restricted_edit, editable_mask, runner_up_label
from uqseg.correction.regions import component_regions

SPACING = (0.8, 0.8, 2.0)  # mm, x = col, y = row, z = slice (as Image.spacing)
SHAPE = (24, 64, 64)  # slice, row, col
THRESHOLD = 0.05


def phantom():
    """(truth, prediction, variance, mm): an ellipsoid of radius 16 mm; the prediction misses its cap beyond
    x > 9 mm from the centre (where the boundary is faint); the variance is high over the missed cap and its
    boundary (the error smoothed by a 1.5-voxel Gaussian, peak ≈ 0.25) and 1e-3 elsewhere. mm: the voxel
    centres' (z, y, x) offsets from the centre in mm."""
    from scipy import ndimage

    z, y, x = np.indices(SHAPE, dtype=np.float64)
    centre = np.array(SHAPE) / 2.0
    mm = [(z - centre[0]) * SPACING[2], (y - centre[1]) * SPACING[1], (x - centre[2]) * SPACING[0]]
    radius = np.sqrt(mm[0] ** 2 + mm[1] ** 2 + mm[2] ** 2)
    truth = (radius <= 16.0).astype(np.uint8)
    prediction = truth.copy()
    prediction[mm[2] > 9.0] = 0
    variance = 1e-3 + 0.3 * ndimage.gaussian_filter((prediction != truth).astype(np.float64), 1.5)
    return truth, prediction, variance, mm


def test_restricted_brush_never_changes_a_confident_voxel():
    truth, pred, var, mm = phantom()
    editable = editable_mask(var, THRESHOLD, dilate_mm=2.0, spacing=SPACING)
    assert 0 < editable.sum() < editable.size // 10
    # a big brush stroke (radius 20 mm around the cap) that also covers confident interior and background
    stroke = np.sqrt(mm[0] ** 2 + mm[1] ** 2 + (mm[2] - 10.0) ** 2) <= 20.0
    assert (stroke & ~editable).sum() > 3 * (stroke & editable).sum()  # mostly confident voxels
    painted = apply_restricted_edit(pred, stroke, editable, segment=1)
    confident = ~editable
    np.testing.assert_array_equal(painted[confident], pred[confident])
    changed = painted != pred
    assert changed.any() and np.all(editable[changed] & stroke[changed])
    erased = apply_restricted_edit(painted, stroke, editable, segment=1, erase=True)
    np.testing.assert_array_equal(erased[confident], pred[confident])
    assert np.all(erased[editable & stroke] == 0)
    assert pred.sum() == phantom()[1].sum()  # inputs are never modified


def test_editable_area_grows_by_millimetres_not_voxels():
    u = np.zeros((9, 9, 9))
    u[4, 4, 4] = 1.0
    grown = editable_mask(u, 0.5, dilate_mm=2.0, spacing=(1.0, 1.0, 2.0))  # z (slices) twice as coarse
    assert grown[4, 4, 2] and grown[4, 4, 6] and not grown[4, 4, 7]  # ±2 columns of 1 mm
    assert grown[3, 4, 4] and grown[5, 4, 4] and not grown[6, 4, 4]  # ±1 slice of 2 mm
    assert np.array_equal(editable_mask(u, 0.5), u > 0.5)
    np.testing.assert_array_equal(editable_mask(u, 0.5, dilate_mm=5.0, spacing=(1, 1, 1),
                                                restrict_to=np.zeros(u.shape, bool)), np.zeros(u.shape, bool))


def test_accept_a_sample_for_the_uncertain_region_fixes_only_that_region():
    truth, pred, var, _ = phantom()
    regions = component_regions(var, THRESHOLD, SPACING, min_voxels=10)
    assert len(regions.regions) == 1  # the one faint part of the boundary
    region = regions.mask(1)
    sample = truth  # a sample of the model that did include the cap
    fixed = accept_alternative(pred, region, sample)
    np.testing.assert_array_equal(fixed[~region], pred[~region])
    np.testing.assert_array_equal(fixed[region], truth[region])
    err_before, err_after = (pred != truth).sum(), (fixed != truth).sum()
    assert err_after < 0.5 * err_before
    np.testing.assert_array_equal(accept_alternative(pred, region, 0)[region], 0)


def test_breast_runner_up_flips_the_region_to_the_second_class():
    p = np.zeros((3, 4, 5))
    p[0], p[1], p[2] = 0.2, 0.5, 0.3  # label breast (1), runner-up pectoral (2)
    p[:, 0, 0] = (0.6, 0.1, 0.3)  # label background, runner-up pectoral
    label = np.argmax(p, axis=0).astype(np.uint8)
    alt = runner_up_label(p)
    assert alt[1, 1] == 2 and alt[0, 0] == 2
    region = np.zeros((4, 5), bool)
    region[1:3, 1:3] = True
    out = accept_alternative(label, region, alt)
    assert out.dtype == label.dtype and np.all(out[region] == 2) and np.array_equal(out[~region], label[~region])
    with pytest.raises(ValueError):
        apply_restricted_edit(label.astype(float), region, region, 1)
