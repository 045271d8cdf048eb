"""Maths of the pectoral-boundary heatmap regression (Zech et al., MIDL 2026), checked against hand computations.

Covers: row softmax / moments (Eqs. 1–2), Gaussian and Laplace NLL (Eqs. 3–4), templates and the JS regulariser
(Eq. 5), the ramp padding and image↔grid mappings, boundary extraction / extrapolation / grid targets, the
multimodality rule, chest-wall orientation and the MLO check, and decoding grid-level outputs back to input pixels.
No network is run; everything is CPU-only and fast.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from uqseg.errors import InputError
from uqseg.io.image import Image
from uqseg.io.phantoms import mlo_phantom
from uqseg.mammo import boundary_grid as bg
from uqseg.mammo.heatmap import (
    PEAK_MIN_SEPARATION,
    PEAK_MIN_SHARE,
    find_modes,
    multimodal_rows,
    row_moments,
    row_softmax,
)
from uqseg.mammo.losses import (
    FIXED_TEMPLATE_VAR,
    gaussian_nll,
    heatmap_loss,
    js_divergence,
    js_regulariser,
    laplace_nll,
    mae,
    mse,
    template,
)
from uqseg.mammo.orientation import canonicalise, chest_wall_side, require_mlo
from uqseg.mammo.pectoral import decode_to_input, muscle_grid_rows

D = torch.float64


def t(x, dtype=D):
    return torch.tensor(x, dtype=dtype)


def gauss_row(width: int, centres, sigmas, heights) -> np.ndarray:
    """Unnormalised sum of Gaussian bumps on columns 0..width-1 (numpy), normalised to sum 1."""
    j = np.arange(width, dtype=np.float64)
    p = sum(h * np.exp(-((j - c) ** 2) / (2 * s**2)) for c, s, h in zip(centres, sigmas, heights))
    return p / p.sum()


# ----------------------------------------------------------------------------------------------------------------
# Eqs. 1–2: softmax and moments
# ----------------------------------------------------------------------------------------------------------------


def test_row_softmax_hand_values_and_shift_invariance():
    logits = t([[0.0, math.log(3.0)], [5.0, 5.0]])
    p = row_softmax(logits)
    # e^0 / (e^0 + 3) = 1/4, 3/4; equal logits → 1/2, 1/2
    assert torch.allclose(p, t([[0.25, 0.75], [0.5, 0.5]]))
    assert torch.allclose(row_softmax(logits + 7.0), p)


def test_row_moments_symmetric_row():
    p = t([0.0, 0.25, 0.5, 0.25, 0.0])
    mean, var = row_moments(p)
    # μ = 1·.25 + 2·.5 + 3·.25 = 2;  σ² = .25·(1−2)² + .5·0 + .25·(3−2)² = 0.5
    assert mean.item() == pytest.approx(2.0)
    assert var.item() == pytest.approx(0.5)


def test_row_moments_two_point_and_var_floor():
    p = t([0.0, 0.3, 0.0, 0.0, 0.7, 0.0])
    mean, var = row_moments(p)
    # μ = 1·0.3 + 4·0.7 = 3.1;  σ² = 0.3·(1 − 3.1)² + 0.7·(4 − 3.1)² = 1.323 + 0.567 = 1.89 (= p(1−p)·3²)
    assert mean.item() == pytest.approx(3.1)
    assert var.item() == pytest.approx(0.3 * 2.1**2 + 0.7 * 0.9**2)
    assert var.item() == pytest.approx(1.89)
    mean_f, var_f = row_moments(p, var_floor=0.1)
    assert mean_f.item() == pytest.approx(3.1)
    assert var_f.item() == pytest.approx(1.99)


def test_row_moments_one_hot_has_zero_variance_without_floor():
    p = torch.zeros(8, dtype=D)
    p[5] = 1.0
    mean, var = row_moments(p, var_floor=0.25)
    assert mean.item() == pytest.approx(5.0)
    assert var.item() == pytest.approx(0.25)


def test_row_moments_batched_shapes_and_per_row_values():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 7, generator=gen, dtype=D)
    prob = row_softmax(logits)
    mean, var = row_moments(prob, var_floor=0.1)
    assert mean.shape == (2, 3) and var.shape == (2, 3)
    cols = np.arange(7)
    for b in range(2):
        for r in range(3):
            pr = prob[b, r].numpy()
            mu = float((pr * cols).sum())
            assert mean[b, r].item() == pytest.approx(mu)
            assert var[b, r].item() == pytest.approx(float((pr * (cols - mu) ** 2).sum()) + 0.1)


# ----------------------------------------------------------------------------------------------------------------
# Eqs. 3–4: likelihoods, and the baselines
# ----------------------------------------------------------------------------------------------------------------

ONE = torch.tensor([True])


@pytest.mark.parametrize(
    "y, mu, var, expected",
    [
        (3.0, 1.0, 2.0, 0.5 * math.log(4 * math.pi) + 1.0),  # ½ln(2π·2) + 2²/(2·2)
        (0.0, 0.5, 8.0, 0.5 * math.log(16 * math.pi) + 0.25 / 16.0),  # ½ln(2π·8) + .25/16
        (5.0, 5.0, 1.0, 0.5 * math.log(2 * math.pi)),
    ],
)
def test_gaussian_nll_closed_form(y, mu, var, expected):
    assert gaussian_nll(t([mu]), t([var]), t([y]), ONE).item() == pytest.approx(expected)


@pytest.mark.parametrize(
    "y, mu, var, expected",
    [
        (3.0, 1.0, 2.0, math.log(2.0) + 2.0),  # b = sqrt(2/2) = 1: ln(2·1) + 2/1
        (0.0, 0.5, 8.0, math.log(4.0) + 0.25),  # b = sqrt(8/2) = 2: ln(4) + 0.5/2
        (-1.0, 2.0, 18.0, math.log(6.0) + 1.0),  # b = 3: ln 6 + 3/3
    ],
)
def test_laplace_nll_closed_form(y, mu, var, expected):
    assert laplace_nll(t([mu]), t([var]), t([y]), ONE).item() == pytest.approx(expected)


def test_mae_mse_hand_values():
    mean, var, target = t([1.0, 4.0, 0.0]), t([1.0, 1.0, 1.0]), t([3.0, 1.0, 100.0])
    valid = torch.tensor([True, True, False])
    assert mae(mean, var, target, valid).item() == pytest.approx((2.0 + 3.0) / 2)
    assert mse(mean, var, target, valid).item() == pytest.approx((4.0 + 9.0) / 2)


@pytest.mark.parametrize("loss", [gaussian_nll, laplace_nll, mae, mse])
def test_invalid_rows_do_not_change_the_loss(loss):
    mean, var, target = t([1.0, 0.5]), t([2.0, 8.0]), t([3.0, 0.0])
    ref = loss(mean, var, target, torch.tensor([True, True])).item()
    # add an invalid row with absurd (finite) values in the middle
    mean3, var3, target3 = t([1.0, -50.0, 0.5]), t([2.0, 1e-3, 8.0]), t([3.0, 1000.0, 0.0])
    got = loss(mean3, var3, target3, torch.tensor([True, False, True])).item()
    assert got == pytest.approx(ref)
    # and the invalid row does change it when marked valid (the test can fail)
    assert loss(mean3, var3, target3, torch.tensor([True, True, True])).item() != pytest.approx(ref)


def test_losses_with_no_valid_row_are_zero():
    v = torch.tensor([False, False])
    for loss in (gaussian_nll, laplace_nll, mae, mse):
        assert loss(t([1.0, 2.0]), t([1.0, 1.0]), t([0.0, 0.0]), v).item() == 0.0


def test_gaussian_nll_gradients_hand_values():
    mean = t([1.0, 7.0]).requires_grad_()
    var = t([2.0, 3.0]).requires_grad_()
    target = t([3.0, 0.0])
    gaussian_nll(mean, var, target, torch.tensor([True, False])).backward()
    # d/dμ = −(y − μ)/σ² = −2/2 = −1;  d/dσ² = 1/(2σ²) − (y − μ)²/(2σ⁴) = 0.25 − 4/8 = −0.25;  invalid row: 0
    assert mean.grad.tolist() == pytest.approx([-1.0, 0.0])
    assert var.grad.tolist() == pytest.approx([-0.25, 0.0])


def test_laplace_nll_gradients_hand_values():
    mean = t([1.0, 7.0]).requires_grad_()
    var = t([2.0, 3.0]).requires_grad_()
    target = t([3.0, 0.0])
    laplace_nll(mean, var, target, torch.tensor([True, False])).backward()
    # b = sqrt(σ²/2) = 1, db/dσ² = 1/(4b) = 1/4
    # d/dμ = −sign(y − μ)/b = −1
    # d/dσ² = d ln(2b)/dσ² − |y − μ|/b² · db/dσ² = 1/(2σ²) − 2 · 1/4 = 0.25 − 0.5 = −0.25
    assert mean.grad.tolist() == pytest.approx([-1.0, 0.0])
    assert var.grad.tolist() == pytest.approx([-0.25, 0.0])


# ----------------------------------------------------------------------------------------------------------------
# Templates, JS divergence, Eq. 5
# ----------------------------------------------------------------------------------------------------------------


def test_js_identical_is_zero_and_disjoint_is_ln2():
    p = t([0.1, 0.2, 0.3, 0.4])
    assert js_divergence(p, p).item() == pytest.approx(0.0, abs=1e-12)
    a, b = t([0.5, 0.5, 0.0, 0.0]), t([0.0, 0.0, 0.25, 0.75])
    assert js_divergence(a, b).item() == pytest.approx(math.log(2.0), abs=1e-9)


def test_js_two_bin_hand_value_and_symmetry():
    p, q = t([1.0, 0.0]), t([0.5, 0.5])
    # m = (.75, .25); KL(p‖m) = ln(1/.75) = ln(4/3); KL(q‖m) = .5 ln(.5/.75) + .5 ln(.5/.25) = .5 ln(4/3)
    expected = 0.5 * (math.log(4 / 3) + 0.5 * math.log(4 / 3))  # = 0.75 ln(4/3)
    assert js_divergence(p, q).item() == pytest.approx(expected, abs=1e-9)
    assert js_divergence(q, p).item() == pytest.approx(expected, abs=1e-9)
    p2, q2 = t([0.25, 0.75]), t([0.75, 0.25])
    # m = (.5, .5): KL(p2‖m) = .25 ln .5 + .75 ln 1.5 = KL(q2‖m)
    expected2 = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    assert js_divergence(p2, q2).item() == pytest.approx(expected2, abs=1e-9)


def test_js_batched_over_last_axis():
    p = t([[1.0, 0.0], [0.5, 0.5]])
    q = t([[0.5, 0.5], [0.5, 0.5]])
    js = js_divergence(p, q)
    assert js.shape == (2,)
    assert js[0].item() == pytest.approx(0.75 * math.log(4 / 3), abs=1e-9)
    assert js[1].item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("kind", ["gaussian", "laplace"])
def test_templates_normalised_and_peak_at_rounded_mean(kind):
    mean, var = t([10.3, 10.7, 40.0]), t([4.0, 4.0, 9.0])
    q = template(mean, var, 64, kind)
    assert q.shape == (3, 64)
    assert torch.allclose(q.sum(-1), torch.ones(3, dtype=D))
    assert (q >= 0).all()
    assert q.argmax(-1).tolist() == [10, 11, 40]


def test_template_variances_on_a_wide_grid():
    mean, var = t([100.3]), t([9.0])
    cols = torch.arange(200, dtype=D)
    q = template(mean, var, 200, "gaussian")[0]
    mu = (q * cols).sum()
    assert mu.item() == pytest.approx(100.3, abs=1e-6)
    assert (q * (cols - mu) ** 2).sum().item() == pytest.approx(9.0, rel=1e-3)
    # Laplace with the same variance (b = sqrt(σ²/2)); discretisation makes it a little smaller than σ²
    var_l = t([18.0])
    ql = template(t([100.0]), var_l, 200, "laplace")[0]
    v = (ql * (cols - 100.0) ** 2).sum().item()
    assert v == pytest.approx(18.0, rel=0.03)


def test_template_unknown_kind_raises():
    with pytest.raises(ValueError):
        template(t([1.0]), t([1.0]), 8, "cauchy")


def test_js_regulariser_zero_for_own_template_and_larger_for_bimodal():
    width = 256
    own = template(t([100.3]), t([9.0]), width, "gaussian")  # (1, W)
    mean, var = row_moments(own)
    valid = torch.tensor([True])
    js_own = js_regulariser(own, mean, var, valid, "gaussian").item()
    assert js_own == pytest.approx(0.0, abs=1e-6)

    bimodal = t(gauss_row(width, [60.0, 140.0], [3.0, 3.0], [1.0, 1.0]))[None]
    mb, vb = row_moments(bimodal)
    js_bi = js_regulariser(bimodal, mb, vb, valid, "gaussian").item()
    assert js_bi > 0.1
    assert js_bi > js_own + 0.1

    # masking: an invalid bimodal row does not raise the regulariser
    both = torch.cat([own, bimodal])
    mm, vv = row_moments(both)
    js_masked = js_regulariser(both, mm, vv, torch.tensor([True, False]), "gaussian").item()
    assert js_masked == pytest.approx(js_own, abs=1e-6)


@pytest.mark.parametrize("name, kind", [("mae", "laplace"), ("mse", "gaussian")])
def test_heatmap_loss_baselines_use_fixed_template_variance(name, kind):
    width = 64
    prob = t(np.stack([gauss_row(width, [20.0], [1.5], [1.0]), gauss_row(width, [40.0], [6.0], [1.0])]))
    mean, var = row_moments(prob)
    target = t([22.0, 37.0])
    valid = torch.tensor([True, True])
    total, data, js = heatmap_loss(prob, mean, var, target, valid, name=name, js_weight=10.0)
    assert FIXED_TEMPLATE_VAR == 10.0
    expected_js = js_regulariser(prob, mean, torch.full_like(var, 10.0), valid, kind)
    assert js.item() == pytest.approx(expected_js.item(), rel=1e-9)
    own_var_js = js_regulariser(prob, mean, var, valid, kind)
    assert abs(own_var_js.item() - js.item()) > 1e-3  # the fixed variance is really used
    d = (target - mean).abs() if name == "mae" else (target - mean) ** 2
    assert data.item() == pytest.approx(d.mean().item())
    assert total.item() == pytest.approx(data.item() + 10.0 * js.item())


@pytest.mark.parametrize("name, fn, kind", [("nll_laplace", laplace_nll, "laplace"),
                                            ("nll_gaussian", gaussian_nll, "gaussian")])
def test_heatmap_loss_nll_uses_own_variance(name, fn, kind):
    width = 64
    prob = t(np.stack([gauss_row(width, [20.0], [1.5], [1.0]), gauss_row(width, [40.0], [6.0], [1.0])]))
    mean, var = row_moments(prob, var_floor=0.1)
    target, valid = t([22.0, 37.0]), torch.tensor([True, True])
    total, data, js = heatmap_loss(prob, mean, var, target, valid, name=name, js_weight=2.0)
    assert data.item() == pytest.approx(fn(mean, var, target, valid).item())
    assert js.item() == pytest.approx(js_regulariser(prob, mean, var, valid, kind).item())
    assert total.item() == pytest.approx(data.item() + 2.0 * js.item())
    total0, data0, js0 = heatmap_loss(prob, mean, var, target, valid, name=name, js_weight=0.0)
    assert js0.item() == 0.0 and total0.item() == pytest.approx(data0.item())


# ----------------------------------------------------------------------------------------------------------------
# Padding and coordinate mappings
# ----------------------------------------------------------------------------------------------------------------


def test_pad_width_is_a_quarter():
    assert bg.pad_width(256) == 64
    assert bg.pad_width(480) == 120
    assert bg.pad_width(100) == 25


def test_pad_with_ramp_values():
    gen = torch.Generator().manual_seed(1)
    image = torch.rand(2, 3, 5, generator=gen, dtype=D) + 0.5
    pad = 4
    out = bg.pad_with_ramp(image, pad)
    assert out.shape == (2, 3, 5 + 4)
    assert torch.equal(out[..., pad:], image)
    # linear ramp 1/5, 2/5, 3/5, 4/5 (outermost → next to the image) times the edge column
    ramp = t([1.0, 2.0, 3.0, 4.0]) / 5.0
    assert torch.allclose(out[..., :pad], image[..., :1] * ramp)
    assert (out[..., 0] < out[..., pad - 1]).all()
    assert (out[..., 0] > 0).all() and (out[..., pad - 1] < image[..., 0]).all()
    diffs = out[..., 1 : pad + 1] - out[..., :pad]
    assert torch.allclose(diffs, (image[..., :1] / 5.0).expand_as(diffs))  # equal steps, last one onto the edge
    assert torch.equal(bg.pad_with_ramp(image, 0), image)


def test_col_mappings_hand_values_and_inverse():
    w, g = 480, 256  # P = 120, padded width 600
    assert bg.image_col_to_grid(200.0, w, g) == pytest.approx((200 + 120 + 0.5) * 256 / 600 - 0.5)
    # the outer edge of the padding and the right edge of the image map to the grid's edges
    assert bg.image_col_to_grid(-120 - 0.5, w, g) == pytest.approx(-0.5)
    assert bg.image_col_to_grid(480 - 0.5, w, g) == pytest.approx(256 - 0.5)
    x = np.array([-120.5, -60.0, -0.5, 0.0, 17.25, 479.0])
    assert np.allclose(bg.grid_col_to_image(bg.image_col_to_grid(x, w, g), w, g), x)
    gcols = np.linspace(-0.5, 255.5, 17)
    assert np.allclose(bg.image_col_to_grid(bg.grid_col_to_image(gcols, w, g), w, g), gcols)
    assert bg.col_scale(w, g) == pytest.approx(600 / 256)
    slope = bg.grid_col_to_image(11.0, w, g) - bg.grid_col_to_image(10.0, w, g)
    assert slope == pytest.approx(bg.col_scale(w, g))
    slope_back = bg.image_col_to_grid(11.0, w, g) - bg.image_col_to_grid(10.0, w, g)
    assert slope_back == pytest.approx(1.0 / bg.col_scale(w, g))


def test_row_mappings_hand_values_and_inverse():
    h, g = 512, 256
    assert bg.image_row_to_grid(-0.5, h, g) == pytest.approx(-0.5)
    assert bg.image_row_to_grid(511.5, h, g) == pytest.approx(255.5)
    # grid row 10 is the centre of image rows 20 and 21
    assert bg.grid_row_to_image(10, h, g) == pytest.approx(20.5)
    y = np.array([0.0, 3.0, 100.5, 511.0])
    assert np.allclose(bg.grid_row_to_image(bg.image_row_to_grid(y, h, g), h, g), y)
    assert np.allclose(bg.image_row_to_grid(bg.grid_row_to_image(y / 2, h, g), h, g), y / 2)


def test_to_grid_places_a_column_where_the_mapping_says():
    h, w = 64, 480
    image = torch.zeros(1, 1, h, w, dtype=torch.float32)
    image[..., 200] = 1.0
    grid = bg.to_grid(image)
    assert grid.shape == (1, 1, 256, 256)
    row = grid[0, 0, 100].double()
    centroid = ((row * torch.arange(256, dtype=D)).sum() / row.sum()).item()
    assert centroid == pytest.approx((200 + 120 + 0.5) * 256 / 600 - 0.5, abs=0.05)
    # the ramp padding of a constant image: zero-ish at the outer edge, rising towards the image
    const = torch.ones(1, 1, h, w)
    gc = bg.to_grid(const)[0, 0, 32]
    padded_end = int(bg.image_col_to_grid(-0.5, w))  # last grid column fully in the padding
    assert gc[0] < 0.05
    assert torch.all(gc[1:padded_end] > gc[: padded_end - 1])
    assert torch.allclose(gc[padded_end + 2 :], torch.ones(1), atol=1e-5)


# ----------------------------------------------------------------------------------------------------------------
# Boundary from a mask, extrapolation, grid targets
# ----------------------------------------------------------------------------------------------------------------


def test_boundary_from_mask_hand_rows():
    m = np.array(
        [
            [1, 1, 1, 0, 0, 0],  # run 3 → 3 − ½ = 2.5
            [1, 1, 1, 0.4, 0, 0],  # run 3 + partial 0.4 → 3.4 − ½ = 2.9
            [0, 1, 1, 0, 0, 0],  # no muscle at the chest wall → NaN
            [1, 1, 1, 1, 1, 1],  # full row → NaN
            [1, 0, 0, 0, 0, 0],  # run 1 → 0.5
            [1, 1, 0, 1, 1, 0],  # only the run from column 0 counts → 1.5
            [0.6, 0.2, 0, 0, 0, 0],  # 0.6 ≥ ½ starts the run and counts by its fraction, then 0.2 → 0.8 − ½ = 0.3
            [0, 0, 0, 0, 0, 0],  # empty → NaN
        ],
        dtype=np.float64,
    )
    b = bg.boundary_from_mask(m)
    expected = np.array([2.5, 2.9, np.nan, np.nan, 0.5, 1.5, 0.3, np.nan])
    assert np.allclose(b, expected, equal_nan=True)


def test_mask_from_boundary_round_trip_on_binary_runs():
    rng = np.random.default_rng(3)
    h, w = 40, 17
    runs = rng.integers(0, w, size=h)  # 0 .. w-1 (a full row has no boundary inside the image)
    runs[:3] = [0, 1, w - 1]
    m = (np.arange(w)[None, :] < runs[:, None]).astype(np.uint8)
    b = bg.boundary_from_mask(m)
    assert np.allclose(b[runs > 0], runs[runs > 0] - 0.5)
    assert np.isnan(b[runs == 0]).all()
    back = bg.mask_from_boundary(b, w)
    assert back.dtype == np.uint8
    assert np.array_equal(back, m)


def test_mask_from_boundary_pixel_centre_rule():
    b = np.array([2.5, 2.0, 2.01, -0.2, np.nan, 0.0])
    m = bg.mask_from_boundary(b, 5)
    # pixel centre c < b is muscle
    assert m.tolist() == [
        [1, 1, 1, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
    ]


def _line_boundary(h=60, last=40):
    y = np.arange(h, dtype=np.float64)
    b = 100.0 - 2.0 * y
    b[last:] = np.nan
    return b


def test_extrapolate_straight_line_continues_exactly_and_stops_at_min_col():
    b = _line_boundary()
    out, filled = bg.extrapolate_boundary(b, min_col=-10.5)
    y = np.arange(60)
    # 100 − 2y ≥ −10.5 ⇔ y ≤ 55.25: rows 40..55 filled, 56.. stay NaN
    assert np.array_equal(np.flatnonzero(filled), np.arange(40, 56))
    assert np.allclose(out[:56], 100.0 - 2.0 * y[:56])
    assert np.isnan(out[56:]).all()
    assert np.isnan(b[40:]).all()  # the input is not modified
    # row 56 lies at x = −12: kept for min_col −12.1, not for −11.9
    _, filled2 = bg.extrapolate_boundary(b, min_col=-12.1)
    assert np.flatnonzero(filled2)[-1] == 56
    _, filled3 = bg.extrapolate_boundary(b, min_col=-11.9)
    assert np.flatnonzero(filled3)[-1] == 55


def test_extrapolate_stops_at_the_end_of_the_image():
    b = _line_boundary(h=45, last=40)
    out, filled = bg.extrapolate_boundary(b, min_col=-100.0)
    assert np.array_equal(np.flatnonzero(filled), np.arange(40, 45))
    assert np.allclose(out, 100.0 - 2.0 * np.arange(45))


def test_extrapolate_uses_only_the_last_rows_for_the_fit():
    b = _line_boundary()
    b[:35] = 150.0  # not on the line; the default fit uses max(5, 40 // 10) = 5 rows: 35..39
    out, filled = bg.extrapolate_boundary(b, min_col=-10.5)
    assert np.allclose(out[40:56], 100.0 - 2.0 * np.arange(40, 56))
    # fit_rows=2: rows 38, 39 → the same line
    b2 = _line_boundary()
    b2[:38] = 150.0
    out2, _ = bg.extrapolate_boundary(b2, min_col=-10.5, fit_rows=2)
    assert np.allclose(out2[40:56], 100.0 - 2.0 * np.arange(40, 56))


@pytest.mark.parametrize("slope", [1.0, 0.0])
def test_extrapolate_non_negative_slope_fills_nothing(slope):
    y = np.arange(30, dtype=np.float64)
    b = 10.0 + slope * y
    b[20:] = np.nan
    out, filled = bg.extrapolate_boundary(b, min_col=-100.0)
    assert not filled.any()
    assert np.allclose(out, b, equal_nan=True)


def test_extrapolate_too_few_rows_fills_nothing():
    b = np.full(10, np.nan)
    b[3] = 5.0
    out, filled = bg.extrapolate_boundary(b, min_col=-100.0)
    assert not filled.any() and np.allclose(out, b, equal_nan=True)
    out, filled = bg.extrapolate_boundary(np.full(10, np.nan), min_col=-100.0)
    assert not filled.any() and np.isnan(out).all()


def test_extrapolate_gap_is_filled_up_to_the_next_labelled_row_only():
    y = np.arange(60, dtype=np.float64)
    b = 100.0 - 2.0 * y
    b[30:35] = np.nan  # a gap in the labels
    b[35:40] = 5.0  # a second labelled run (not part of "the muscle")
    b[40:] = np.nan
    b[:3] = np.nan  # the muscle starts at row 3
    out, filled = bg.extrapolate_boundary(b, min_col=-100.0)
    # the first run is rows 3..29; fit on its last max(5, 27 // 10) = 5 rows; fill 30..34, stop at row 35
    assert np.array_equal(np.flatnonzero(filled), np.arange(30, 35))
    assert np.allclose(out[30:35], 100.0 - 2.0 * y[30:35])
    assert np.allclose(out[35:40], 5.0)
    assert np.isnan(out[40:]).all() and np.isnan(out[:3]).all()


@pytest.fixture(scope="module")
def phantom_left():
    return mlo_phantom(shape=(512, 256))


def test_grid_targets_on_phantom(phantom_left):
    _, boundary, mask = phantom_left
    h, w = mask.shape
    target, valid, present = bg.grid_targets(mask)
    assert target.shape == valid.shape == present.shape == (256,)
    assert target.dtype == np.float32
    assert not (present & ~valid).any()  # valid ⊇ present
    pr = np.flatnonzero(present)
    assert pr[0] == 0 and np.array_equal(pr, np.arange(pr[-1] + 1))  # contiguous from the top
    # each grid row covers image rows 2r, 2r+1 (k = 512 / 256 = 2)
    covered = boundary.reshape(256, 2)
    truth = bg.image_col_to_grid(covered.mean(axis=1), w)
    assert np.all(np.abs(target[present] - truth[present]) < 1.0)
    # the muscle's last image row ↔ the last present grid row
    last_row = np.flatnonzero(mask.any(axis=1))[-1]
    assert pr[-1] in ((last_row - 1) // 2, last_row // 2)

    ext = np.flatnonzero(valid & ~present)
    assert ext.size > 10
    assert ext[0] == pr[-1] + 1 and np.array_equal(ext, np.arange(ext[0], ext[-1] + 1))
    assert np.all(np.diff(target[ext]) < 0)  # moving towards the chest wall
    # no muscle in extrapolated rows; all but the first one (which straddles the muscle's end) lie in the padding
    assert np.all(target[ext] < bg.image_col_to_grid(0.0, w))
    assert np.all(target[ext[1:]] < bg.image_col_to_grid(-0.5, w))
    # they stop at the padding's outer edge (−P − ½ ↔ grid −½)
    assert np.all(target[ext] >= bg.image_col_to_grid(-bg.pad_width(w) - 0.5, w) - 1e-4)
    assert target[ext[-1]] < -0.5 + 1.0
    assert not valid[ext[-1] + 1 :].any()
    assert np.all(target[~valid] == 0.0)


# ----------------------------------------------------------------------------------------------------------------
# Multimodality rule
# ----------------------------------------------------------------------------------------------------------------


def test_one_bump_is_one_mode():
    p = gauss_row(256, [100.0], [4.0], [1.0])
    assert find_modes(p) == [100]


def test_two_separated_bumps_are_two_modes_strongest_first():
    p = gauss_row(256, [60.0, 160.0], [4.0, 4.0], [0.8, 1.0])
    assert find_modes(p) == [160, 60]
    assert multimodal_rows(np.stack([p, gauss_row(256, [60.0], [4.0], [1.0])])).tolist() == [True, False]


def test_small_second_bump_below_share_is_ignored():
    assert PEAK_MIN_SHARE == 0.25
    small = gauss_row(256, [60.0, 160.0], [4.0, 4.0], [1.0, 0.2])  # 20 % < 25 %
    assert find_modes(small) == [60]
    larger = gauss_row(256, [60.0, 160.0], [4.0, 4.0], [1.0, 0.3])  # 30 % ≥ 25 % (control)
    assert find_modes(larger) == [60, 160]


def test_close_peaks_merge_by_separation():
    assert PEAK_MIN_SEPARATION == 5
    # two spikes 4 apart: after the 3-tap box filter the peaks are at columns 51 and 55 with a zero valley at 52..53,
    # so only the separation (4 < 5) merges them
    p = np.zeros(100)
    p[[50, 54]] = 0.5
    assert len(find_modes(p)) == 1
    q = np.zeros(100)
    q[[50, 56]] = 0.5  # 6 apart: two modes (control)
    assert len(find_modes(q)) == 2


def test_shallow_valley_is_one_mode():
    # σ = 5, 14 apart (> 2σ): the raw row has two local maxima, but the valley stays ≈ 0.73 of the peaks (≥ 0.5)
    p = gauss_row(256, [100.0, 114.0], [5.0, 5.0], [1.0, 1.0])
    interior = (p[1:-1] > p[:-2]) & (p[1:-1] > p[2:])
    assert interior.sum() == 2
    peaks = np.flatnonzero(interior) + 1
    valley = p[peaks[0] : peaks[1] + 1].min()
    assert 0.6 < valley / p[peaks].min() < 0.85
    assert len(find_modes(p)) == 1
    # 30 apart: deep valley → 2 modes (control)
    assert len(find_modes(gauss_row(256, [100.0, 130.0], [5.0, 5.0], [1.0, 1.0]))) == 2


def test_edge_mode_is_found():
    p = gauss_row(64, [0.0, 40.0], [2.0, 2.0], [1.0, 1.0])
    assert sorted(find_modes(p)) == [0, 40]


# ----------------------------------------------------------------------------------------------------------------
# Orientation and the MLO check
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_phantoms():
    left = mlo_phantom(shape=(256, 128), seed=2)[0]
    right = mlo_phantom(shape=(256, 128), seed=2, chest_wall="right")[0]
    return left, right


def test_chest_wall_from_pixels_and_canonicalise(small_phantoms):
    left, right = small_phantoms
    assert np.array_equal(right, left[:, ::-1])  # the phantom's mirror (premise of the test)
    assert chest_wall_side(Image(left)) == ("left", "intensity")
    assert chest_wall_side(Image(right)) == ("right", "intensity")
    arr, flipped, source = canonicalise(Image(right))
    assert flipped is True and source == "intensity"
    assert np.array_equal(arr, left)
    arr, flipped, _ = canonicalise(Image(left))
    assert flipped is False and np.array_equal(arr, left)


def test_patient_orientation_overrides_pixels(small_phantoms):
    left, right = small_phantoms
    assert chest_wall_side(Image(left, meta={"patient_orientation": ["P", "L"]})) == ("right", "PatientOrientation")
    assert chest_wall_side(Image(right, meta={"patient_orientation": ["A", "R"]})) == ("left", "PatientOrientation")
    arr, flipped, source = canonicalise(Image(left, meta={"patient_orientation": ("P", "F")}))
    assert flipped and source == "PatientOrientation" and np.array_equal(arr, right)
    # a PatientOrientation that is not two values falls back to the pixels
    assert chest_wall_side(Image(right, meta={"patient_orientation": ["P"]})) == ("right", "intensity")
    assert chest_wall_side(Image(left, meta={"patient_orientation": ["", ""]})) == ("left", "intensity")


def test_require_mlo():
    arr = np.zeros((8, 8), np.float32)
    with pytest.raises(InputError) as exc:
        require_mlo(Image(arr, meta={"view": "CC", "path": "/data/case1/lcc.dcm"}))
    assert exc.value.path == "/data/case1/lcc.dcm"
    assert "/data/case1/lcc.dcm" in str(exc.value) and "MLO" in str(exc.value)
    with pytest.raises(InputError):
        require_mlo(Image(arr, meta={"view": "xccl"}))
    require_mlo(Image(arr, meta={"view": "MLO"}))
    require_mlo(Image(arr, meta={"view": None}))
    require_mlo(Image(arr))


# ----------------------------------------------------------------------------------------------------------------
# Decoding grid-level outputs back to input pixels
# ----------------------------------------------------------------------------------------------------------------

VAR_G = 4.0
PAD_COL = -20.0  # an image column inside the padding (P = 64 for W = 256)


def _grid_outputs(boundary, shape, g=256):
    """Grid-level (μ, σ², p) that encode a known canonical boundary: μ at each grid row is the boundary at that
    grid row's centre (image row 2r + ½, linear between rows 2r and 2r+1), mapped to grid columns; rows without
    muscle get a mean inside the padding."""
    h, w = shape
    k = h // g
    assert k == 2
    b_at_centre = 0.5 * (boundary[0::2] + boundary[1::2])  # NaN where either covered row has no muscle
    x_img = np.where(np.isnan(b_at_centre), PAD_COL, b_at_centre)
    mean_g = bg.image_col_to_grid(x_img, w, g)
    var_g = np.full(g, VAR_G)
    cols = np.arange(g)
    prob = np.exp(-((cols[None, :] - mean_g[:, None]) ** 2) / (2 * VAR_G))
    prob /= prob.sum(axis=1, keepdims=True)
    return mean_g, var_g, prob, b_at_centre


@pytest.mark.parametrize("flipped", [False, True])
def test_decode_to_input_round_trip(phantom_left, flipped):
    _, boundary, mask = phantom_left
    h, w = mask.shape
    mean_g, var_g, prob_g, b_centre = _grid_outputs(boundary, (h, w))
    prob_g = prob_g.copy()
    # rows 20..22 of the grid get a second mode → image rows whose nearest grid row is 20..22:
    # ry = (y + ½)·256/512 − ½ = y/2 − ¼, rint(ry) ∈ {20, 21, 22} ⇔ y ∈ 40..45
    prob_g[20:23] = 0.5 * prob_g[20:23] + 0.5 * np.roll(prob_g[20:23], 60, axis=1)

    res = decode_to_input(mean_g, var_g, prob_g, (h, w), flipped, "test")
    assert res.shape == (h, w) and res.flipped is flipped and res.orientation_source == "test"

    muscle_rows = np.flatnonzero(mask.any(axis=1))
    assert muscle_rows[0] == 0
    rows = res.rows
    assert rows.size == res.mean_col.size == res.std_col.size == res.multimodal.size
    assert np.array_equal(rows, np.arange(rows[0], rows[-1] + 1))
    assert rows[0] == 0 and abs(int(rows[-1]) - int(muscle_rows[-1])) <= 2

    common = np.intersect1d(rows, muscle_rows)
    assert common.size >= muscle_rows.size - 2
    sel = np.isin(rows, common)
    truth = boundary[common] if not flipped else (w - 1) - boundary[common]
    assert np.all(np.abs(res.mean_col[sel] - truth) < 1.0)

    # σ: sqrt(4) grid columns × (256 + 64)/256 image columns per grid column = 2 · 1.25 = 2.5 px
    assert np.allclose(res.std_col, 2.0 * 320 / 256)
    assert res.image_uncertainty == pytest.approx(2.5)
    assert res.image_uncertainty_grid == pytest.approx(2.0)

    assert np.array_equal(rows[res.multimodal], np.arange(40, 46))
    assert res.is_multimodal

    # rows whose grid mean falls in the padding hold no muscle
    padding_grid_rows = np.flatnonzero(np.isnan(b_centre))
    assert padding_grid_rows.size > 0
    assert not res.grid_muscle[padding_grid_rows].any()
    assert rows[-1] <= 2 * padding_grid_rows[0] + 1
    assert np.all(np.isin(np.flatnonzero(res.grid_muscle), np.flatnonzero(~np.isnan(b_centre))))

    expected_mask = mask if not flipped else mask[:, ::-1]
    got = res.muscle_mask()
    assert got.shape == (h, w) and got.dtype == np.uint8
    mismatch = got != expected_mask
    assert mismatch.mean() < 0.01
    assert mismatch.sum(axis=1).max() <= 1  # only a thin band at the boundary
    if flipped:
        # muscle on the right (chest-wall) side
        assert got[: muscle_rows[-1] - 2, w - 1].all()
        assert not got[:, 0].any()
        assert np.all(res.mean_col > w / 2)
    else:
        assert got[: muscle_rows[-1] - 2, 0].all()
        assert not got[:, w - 1].any()


def test_decode_to_input_no_muscle():
    g = 256
    mean_g = np.full(g, bg.image_col_to_grid(PAD_COL, 256))
    var_g = np.full(g, 1.0)
    prob_g = np.full((g, g), 1.0 / g)
    res = decode_to_input(mean_g, var_g, prob_g, (512, 256), False, "test")
    assert res.rows.size == 0 and res.mean_col.size == 0
    assert math.isnan(res.image_uncertainty) and math.isnan(res.image_uncertainty_grid)
    assert not res.muscle_mask().any()


def test_muscle_grid_rows_contiguous_run_from_first_inside():
    x = np.array([-3.0, 5.0, 0.0, 2.0, -0.1, 7.0, 8.0])
    assert muscle_grid_rows(x).tolist() == [False, True, True, True, False, False, False]
    assert not muscle_grid_rows(np.array([-1.0, -2.0])).any()
    assert muscle_grid_rows(np.array([1.0, 2.0])).tolist() == [True, True]
