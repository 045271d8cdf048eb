"""Model-aware pectoral boundary correction from clicks (uqseg.correction.pectoral_path).

Synthetic heatmaps test the maths (exact DP against brute force, the mode switch of a multimodal stretch, flips,
history independence); the real validation images test the simulated user (one click on the truth in the most uncertain row)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from uqseg.correction.pectoral_path import (CorrectedPectoralResult, chain_posterior, correct_pectoral,
                                            mode_basin, viterbi_path)
from uqseg.mammo import boundary_grid as bg
from uqseg.mammo.heatmap import find_modes
from uqseg.mammo.pectoral import decode_to_input, grid_rows_to_input, muscle_grid_rows

G = bg.GRID
SHAPE = (960, 480)  # rows, cols of the synthetic input image (the DDSM size)


def mode_a(r):
    """Grid column of the main mode per grid row: a straight sloping boundary."""
    return 180.0 - 0.9 * np.asarray(r, dtype=np.float64)


def fork(r):
    """Offset of the second mode: 0, rising smoothly over grid rows 45-70 to 30 columns, back to 0 over 100-125."""
    r = np.asarray(r, dtype=np.float64)
    up = np.clip((r - 45) / 25, 0, 1)
    down = np.clip((125 - r) / 25, 0, 1)
    return 30.0 * (0.5 - 0.5 * np.cos(np.pi * np.minimum(up, down)))


def fork_heatmap(weight_b: float = 0.4, width: float = 2.5) -> np.ndarray:
    """(G, G) row distributions: mode A alone, except in the fork where a second mode B = A + fork holds
    `weight_b` of the mass (B is the weaker mode, the one a user has to click on)."""
    cols = np.arange(G, dtype=np.float64)[None, :]
    r = np.arange(G)[:, None]
    a = np.clip(mode_a(r), 3, G - 4)
    b = a + fork(r)
    p = (1 - weight_b) * np.exp(-0.5 * ((cols - a) / width) ** 2) + weight_b * np.exp(-0.5 * ((cols - b) / width) ** 2)
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def result_from_heatmap(prob: np.ndarray, flipped: bool = False):
    """A PectoralResult decoded exactly as predict_pectoral decodes the network's heatmap."""
    cols = np.arange(G, dtype=np.float64)
    p = prob.astype(np.float64)
    mean = p @ cols
    var = p @ cols**2 - mean**2 + 0.1
    return decode_to_input(mean, var, prob, SHAPE, flipped, "synthetic")


def input_click(grid_row: int, grid_col: float, flipped: bool = False) -> tuple[int, float]:
    """(row, col) in input pixels of a point on grid row `grid_row`, canonical grid column `grid_col`."""
    h, w = SHAPE
    y = int(np.rint(bg.grid_row_to_image(grid_row, h)))
    x = float(bg.grid_col_to_image(grid_col, w))
    return y, ((w - 1) - x if flipped else x)


# ------------------------------------------------------------------------------------------------ chain maths
def test_viterbi_and_posterior_match_brute_force():
    rng = np.random.default_rng(3)
    prob = rng.random((4, 5)) ** 3 + 1e-3
    prob /= prob.sum(axis=1, keepdims=True)
    lam = 0.7
    paths = np.array(list(itertools.product(range(5), repeat=4)))
    score = np.log(prob[np.arange(4), paths]).sum(1) - lam * (np.diff(paths, axis=1) ** 2).sum(1)
    assert tuple(viterbi_path(np.log(prob), lam)) == tuple(paths[np.argmax(score)])
    w = np.exp(score - score.max())
    marg = np.array([[w[paths[:, r] == c].sum() for c in range(5)] for r in range(4)]) / w.sum()
    np.testing.assert_allclose(chain_posterior(prob, lam), marg, rtol=1e-9, atol=1e-12)


def test_posterior_survives_underflow_of_the_linear_pass():
    prob = np.full((6, 40), 1e-12)
    prob[:, 2] = 1.0
    prob[3] = 0.0
    prob[3, 37] = 1.0  # a clicked row far from where the mass is, with a very stiff chain
    q = chain_posterior(prob, 5.0)
    assert np.all(np.isfinite(q)) and np.allclose(q.sum(1), 1.0) and q[3, 37] == pytest.approx(1.0)


def test_mode_basin_splits_at_the_valley():
    p = fork_heatmap()[85].astype(np.float64)
    modes = sorted(find_modes(p))
    assert len(modes) == 2
    lo, hi = mode_basin(p, modes[1])
    assert modes[0] < lo <= modes[1] <= hi == G - 1
    assert mode_basin(fork_heatmap()[20], 10.0) == (0, G - 1)


# ------------------------------------------------------------------------------------------------ correction
def test_decode_matches_predict_pectoral_decoding():
    prob = fork_heatmap()
    base = result_from_heatmap(prob)
    multi = np.array([len(m) >= 2 for m in base.grid_modes])
    muscle = muscle_grid_rows(bg.grid_col_to_image(base.grid_mean, SHAPE[1]))
    rows, mean, std, flags = grid_rows_to_input(base.grid_mean, base.grid_var, multi, muscle, SHAPE, False)
    np.testing.assert_array_equal(rows, base.rows)
    np.testing.assert_allclose(mean, base.mean_col)
    np.testing.assert_allclose(std, base.std_col)
    np.testing.assert_array_equal(flags, base.multimodal)


def test_click_on_the_other_mode_moves_the_whole_ambiguous_stretch():
    base = result_from_heatmap(fork_heatmap())
    r = np.arange(G)
    separated = fork(r) >= 15  # grid rows where the two modes are clearly apart
    assert np.all(np.array([len(m) >= 2 for m in base.grid_modes])[separated])
    b_col = mode_a(85) + fork(85)
    click = input_click(85, b_col)
    cor = correct_pectoral(base, [click])
    assert isinstance(cor, CorrectedPectoralResult)
    # every clearly bimodal row switched to mode B, not just the clicked one (within 2 columns of B, which lies
    # >= 15 columns from A; the chain's smoothness rounds the bends of B a little)
    np.testing.assert_allclose(cor.grid_mean[separated], (mode_a(r) + fork(r))[separated], atol=2.0)
    plateau = (r >= 75) & (r <= 95)  # where B is a straight line again: on it to sub-column precision
    np.testing.assert_allclose(cor.grid_mean[plateau], (mode_a(r) + fork(r))[plateau], atol=0.5)
    # rows far from the fork keep the model's mean exactly and its σ to 0.1 %
    far = (r < 40) | (r > 130)
    np.testing.assert_array_equal(cor.grid_mean[far], base.grid_mean[far])
    np.testing.assert_allclose(cor.grid_var[far], base.grid_var[far], rtol=2e-3)
    assert np.all(cor.grid_var <= base.grid_var + 1e-12)
    # the resolved stretch is no longer multimodal and its σ is the width of mode B, not the spread of two modes
    assert not cor.multimodal[np.isin(cor.rows, base.rows[base.multimodal])].any()
    assert np.all(np.sqrt(cor.grid_var[separated]) < 3.0) and np.all(np.sqrt(base.grid_var[separated]) > 8.0)
    # the clicked input row lands exactly on the click
    landed = dict(zip(cor.rows.tolist(), cor.mean_col.tolist()))
    assert landed[click[0]] == click[1]


def test_click_on_the_main_mode_changes_nothing_far_away_and_no_click_is_the_model():
    base = result_from_heatmap(fork_heatmap())
    same = correct_pectoral(base, [])
    np.testing.assert_array_equal(same.mean_col, base.mean_col)
    np.testing.assert_array_equal(same.std_col, base.std_col)
    a_click = input_click(85, mode_a(85))
    cor = correct_pectoral(base, [a_click])
    changed = np.flatnonzero(cor.changed_grid_rows)
    assert changed.tolist() == [85]  # the best path already ran through A: only the clicked row is pinned
    assert cor.grid_mean[85] == pytest.approx(bg.image_col_to_grid(a_click[1], SHAPE[1]))


def test_flipped_image_gives_the_mirrored_correction():
    prob = fork_heatmap()
    plain = correct_pectoral(result_from_heatmap(prob, flipped=False), [input_click(85, mode_a(85) + fork(85))])
    mirror = correct_pectoral(result_from_heatmap(prob, flipped=True),
                              [input_click(85, mode_a(85) + fork(85), flipped=True)])
    np.testing.assert_array_equal(plain.rows, mirror.rows)
    np.testing.assert_allclose(mirror.mean_col, (SHAPE[1] - 1) - plain.mean_col, atol=1e-9)
    np.testing.assert_array_equal(plain.muscle_mask()[:, ::-1], mirror.muscle_mask())


def test_result_does_not_depend_on_the_click_history():
    base = result_from_heatmap(fork_heatmap())
    c1, c2 = input_click(85, mode_a(85) + fork(85)), input_click(30, mode_a(30) + 4.0)
    once = correct_pectoral(base, [c1, c2])
    stepwise = correct_pectoral(correct_pectoral(base, [c1]), [c1, c2])
    np.testing.assert_array_equal(once.mean_col, stepwise.mean_col)
    np.testing.assert_array_equal(once.std_col, stepwise.std_col)
    assert stepwise.base is base
    landed = dict(zip(once.rows.tolist(), once.mean_col.tolist()))
    assert landed[c1[0]] == c1[1] and landed[c2[0]] == c2[1]


def test_click_below_the_muscle_extends_it_and_bad_clicks_are_refused():
    base = result_from_heatmap(fork_heatmap())
    last = int(base.rows.max())
    click = (last + 40, 5.0)
    cor = correct_pectoral(base, [click])
    assert click[0] in cor.rows.tolist() and cor.rows.max() >= click[0]
    assert dict(zip(cor.rows.tolist(), cor.mean_col.tolist()))[click[0]] == 5.0
    with pytest.raises(ValueError):
        correct_pectoral(base, [(SHAPE[0] + 3, 10.0)])


# ------------------------------------------------------------------------------------------------ real images
def truth_boundary_input(result, muscle: np.ndarray) -> np.ndarray:
    """Reference boundary column per input row (input orientation, NaN where the label has no muscle)."""
    m = muscle[:, ::-1] if result.flipped else muscle
    b = bg.boundary_from_mask(m.astype(np.float64))
    return (result.shape[1] - 1) - b if result.flipped else b


def boundary_mae(result, truth: np.ndarray) -> float:
    """Mean |predicted − reference| column over the rows where both have muscle (as Training/evaluate_pectoral)."""
    ok = ~np.isnan(truth[result.rows])
    return float(np.abs(result.mean_col[ok] - truth[result.rows][ok]).mean())


@pytest.fixture(scope="module")
def pectoral_model(shipped_model):
    return shipped_model("mammo-pectoral").model


# validation images (every 5th in sorted order): two with the chest wall on the left, one on the right
@pytest.mark.parametrize("name", ["A_0279_1.RIGHT_MLO.png", "D_4555_1.RIGHT_MLO.png", "D_4597_1.RIGHT_MLO.png"])
def test_one_click_in_the_most_uncertain_row_reduces_the_boundary_error(shared_file, pectoral_model, name):
    """The simulated user: a click on the true boundary in the row of largest σ lowers the image's MAE."""
    from PIL import Image as PILImage

    from uqseg.io import load_image
    from uqseg.mammo.pectoral import predict_pectoral

    image, label = shared_file(f"mammo_ddsm/images/{name}"), shared_file(f"mammo_ddsm/labels/{name}")
    result = predict_pectoral(load_image(image), pectoral_model)
    truth = truth_boundary_input(result, np.asarray(PILImage.open(label)) == 3)
    ok = ~np.isnan(truth[result.rows])
    row = int(result.rows[ok][np.argmax(result.std_col[ok])])
    cor = correct_pectoral(result, [(row, float(truth[row]))])
    assert boundary_mae(cor, truth) < boundary_mae(result, truth)
    assert dict(zip(cor.rows.tolist(), cor.mean_col.tolist()))[row] == float(truth[row])
    before = dict(zip(result.rows.tolist(), result.std_col.tolist()))
    near = (np.abs(cor.rows - row) <= 2) & np.isin(cor.rows, result.rows)
    assert np.all(cor.std_col[near] < np.array([before[r] for r in cor.rows[near]]))  # σ shrinks at the click
