"""The pectoral ±σ band mask (uqseg.mammo.pectoral_band): which pixels a reader sees inside the band, and the σ the
DICOM Parametric Map paints there. A band one pixel too wide or on the wrong column is a wrong overlay."""

import numpy as np

from uqseg.mammo.pectoral_band import band_mask, band_values


def test_band_holds_the_pixel_centres_within_sigma_of_the_mean_boundary():
    mask = band_mask([1, 3], [4.0, 10.5], [2.0, 1.0], (5, 12))
    assert np.flatnonzero(mask[1]).tolist() == [2, 3, 4, 5, 6]      # |c − 4| ≤ 2, both ends included
    assert np.flatnonzero(mask[3]).tolist() == [10, 11]             # |c − 10.5| ≤ 1 → 9.5 … 11.5, cut at the edge
    assert not mask[[0, 2, 4]].any()                                # unlisted rows stay empty


def test_rows_outside_the_image_or_not_finite_are_left_out_and_only_filters():
    mask = band_mask([-1, 0, 7, 2], [3.0, np.nan, 3.0, 3.0], [1.0, 1.0, 1.0, 1.0], (5, 8),
                     only=[True, True, True, False])
    assert not mask.any()


def test_a_sharp_row_still_marks_its_boundary_pixel_in_the_parametric_map_but_not_in_the_display():
    assert not band_mask([0], [3.3], [0.2], (1, 8)).any()            # display: the band as the model states it
    values = band_values([0, 1], [3.3, 5.0], [0.2, 1.5], (2, 8))     # map: half-width floor ½ px
    assert np.flatnonzero(values[0]).tolist() == [3] and values[0, 3] == np.float32(0.2)
    assert np.flatnonzero(values[1]).tolist() == [4, 5, 6] and np.all(values[1, 4:7] == np.float32(1.5))
    assert values.dtype == np.float32
