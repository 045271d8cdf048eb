"""Calibration metrics of `uqseg.metrics.calibration` (MoB paper, Table 4 / Fig. 3), checked against values
computed by hand and against direct full-array numpy formulas.

Covers: Dice edge cases and per class; NLL = -log p of a known distribution (multi-class and binary map, eps floor,
mask); reliability bins (1.0 in the last bin, edges belong to the upper bin, empty bins NaN and ignored); ECE / MCE
of a hand-computed over-confident set of 6 voxels in 2 bins and of a perfectly calibrated synthetic set; the volume
pass `segmentation_calibration` (mask semantics, chunk boundaries, a 64³ volume against the direct formulas; no
timing: timings belong to `uqseg bench`); equal-count error-vs-uncertainty bins with ties; rank AUROC (1 / 0.5 / 0,
ties, against all pairs); the reliability diagram PNG. CPU only, fast.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from uqseg.metrics.calibration import (
    CHUNK_VOXELS,
    DEFAULT_N_BINS,
    ReliabilityBins,
    auroc,
    confidence_and_correct,
    dice,
    dice_per_class,
    ece,
    error_vs_uncertainty,
    mce,
    nll,
    plot_reliability,
    reliability_bins,
    segmentation_calibration,
    true_class_probability,
)

# ------------------------------------------------------------------------------------------- shared synthetic sets
# Over-confident set, by hand (15 bins of width 1/15):
#   4 voxels at confidence 0.95 (bin ⌊0.95·15⌋ = 14), 3 correct → acc 0.75, gap |0.75 - 0.95| = 0.20
#   2 voxels at confidence 0.62 (bin ⌊0.62·15⌋ = 9),  0 correct → acc 0.00, gap |0.00 - 0.62| = 0.62
#   ECE = 4/6 · 0.20 + 2/6 · 0.62 = 0.34;  MCE = 0.62 (the smaller bin is the worse one); 13 bins empty.
HAND_CONFIDENCE = np.array([0.95, 0.95, 0.95, 0.95, 0.62, 0.62])
HAND_CORRECT = np.array([True, True, True, False, False, False])
HAND_ECE = 4 / 6 * 0.20 + 2 / 6 * 0.62
HAND_MCE = 0.62


def calibrated_binary_set(n: int, seed: int = 0, sharpen: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Foreground probabilities q ~ U(0, 1) and labels drawn with P(label = 1) = q (perfectly calibrated); the
    reported map is q sharpened by temperature 1/`sharpen` (> 1: over-confident, < 1: under-confident)."""
    rng = np.random.default_rng(seed)
    q = rng.uniform(0.0, 1.0, n)
    label = (rng.uniform(0.0, 1.0, n) < q).astype(np.int64)
    reported = q**sharpen / (q**sharpen + (1 - q) ** sharpen)
    return reported, label


def reference_ece_mce(confidence: np.ndarray, correct: np.ndarray, n_bins: int) -> tuple[float, float]:
    """ECE / MCE straight from the definition, one boolean mask per bin (no bincount)."""
    gaps, weights = [], []
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        inside = (confidence >= lo) & ((confidence < hi) if b < n_bins - 1 else (confidence <= hi))
        if inside.any():
            gaps.append(abs(correct[inside].mean() - confidence[inside].mean()))
            weights.append(inside.sum() / confidence.size)
    return float(np.dot(weights, gaps)), float(max(gaps))


def three_methods_bins() -> dict[str, ReliabilityBins]:
    """Reliability bins of a calibrated, an over-confident and an under-confident model on the same labels."""
    out = {}
    for name, sharpen in (("calibrated", 1.0), ("over-confident (T = 0.4)", 2.5), ("under-confident (T = 2)", 0.5)):
        p, label = calibrated_binary_set(200_000, seed=3, sharpen=sharpen)
        out[name] = segmentation_calibration(p, label)["reliability"]
    return out


# --------------------------------------------------------------------------------------------------------- Dice
def test_dice_edge_cases_and_hand_value():
    empty = np.zeros((4, 4), dtype=bool)
    full = np.ones((4, 4), dtype=bool)
    assert dice(empty, empty) == 1.0
    assert dice(empty, full) == 0.0 and dice(full, empty) == 0.0
    assert dice(full, full) == 1.0
    pred = np.array([1, 1, 1, 0, 0], dtype=bool)  # {0, 1, 2}
    true = np.array([0, 1, 1, 1, 0], dtype=bool)  # {1, 2, 3}: overlap 2 → 2·2 / (3 + 3)
    assert dice(pred, true) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="same shape"):
        dice(pred, true[:4])


def test_dice_per_class_counts_each_label_and_absent_class_is_one():
    pred = np.array([0, 1, 1, 2, 2, 2])
    true = np.array([0, 1, 2, 2, 2, 0])
    scores = dice_per_class(pred, true, classes=[0, 1, 2, 7])
    assert scores[0] == pytest.approx(2 * 1 / (1 + 2))
    assert scores[1] == pytest.approx(2 * 1 / (2 + 1))
    assert scores[2] == pytest.approx(2 * 2 / (3 + 3))
    assert scores[7] == 1.0  # in neither map
    assert list(scores) == [0, 1, 2, 7]
    assert scores[2] == dice(pred == 2, true == 2)


# ---------------------------------------------------------------------------------------------------------- NLL
def test_nll_of_a_known_distribution_is_minus_log_p():
    prob = np.array([[0.7, 0.1, 0.2], [0.2, 0.6, 0.3], [0.1, 0.3, 0.5]])  # (C=3, 3 voxels), columns sum to 1
    label = np.array([0, 1, 2])
    assert nll(prob, label) == pytest.approx(-(math.log(0.7) + math.log(0.6) + math.log(0.5)) / 3)
    assert nll(prob[:, :1], label[:1]) == pytest.approx(-math.log(0.7))
    np.testing.assert_allclose(true_class_probability(prob, np.array([2, 2, 0])), [0.1, 0.3, 0.2])
    # The mask restricts the mean to the voxels it selects.
    assert nll(prob, label, mask=np.array([False, True, False])) == pytest.approx(-math.log(0.6))


def test_nll_of_a_binary_foreground_map_and_the_eps_floor():
    fg = np.array([0.8, 0.8, 0.0])
    assert nll(fg[:1], np.array([1])) == pytest.approx(-math.log(0.8))
    assert nll(fg[1:2], np.array([0])) == pytest.approx(-math.log(0.2))
    # p(true class) = 0 costs -log(eps), not infinity.
    assert nll(fg[2:], np.array([1]), eps=1e-7) == pytest.approx(-math.log(1e-7))
    # A binary map gives the same as the explicit two-class volume (1 - p, p).
    label = np.array([1, 0, 0])
    assert nll(fg, label) == pytest.approx(nll(np.stack([1 - fg, fg]), label))


def test_probability_inputs_are_checked():
    label = np.array([0, 1])
    with pytest.raises(ValueError, match="sum to 1"):
        nll(np.array([[0.9, 0.9], [0.9, 0.9]]), label)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        nll(np.array([[2.0, -1.0], [-1.0, 2.0]]), label)  # logits
    with pytest.raises(ValueError, match="only 2 classes"):
        nll(np.array([[0.5, 0.5], [0.5, 0.5]]), np.array([0, 2]))
    with pytest.raises(ValueError, match="prob must be"):
        nll(np.full((2, 3), 0.5), label)
    with pytest.raises(ValueError, match="selects nothing"):
        nll(np.array([0.3, 0.6]), label, mask=np.zeros(2, dtype=bool))


# ------------------------------------------------------------------------------------------- reliability, ECE, MCE
def test_hand_computed_over_confident_ece_and_mce():
    assert ece(HAND_CONFIDENCE, HAND_CORRECT) == pytest.approx(HAND_ECE) == pytest.approx(0.34)
    assert mce(HAND_CONFIDENCE, HAND_CORRECT) == pytest.approx(HAND_MCE)
    bins = reliability_bins(HAND_CONFIDENCE, HAND_CORRECT)
    assert bins.n_bins == DEFAULT_N_BINS == 15
    assert bins.counts[14] == 4 and bins.counts[9] == 2 and bins.total == 6
    assert bins.accuracy[14] == pytest.approx(0.75) and bins.mean_confidence[14] == pytest.approx(0.95)
    assert bins.accuracy[9] == 0.0 and bins.mean_confidence[9] == pytest.approx(0.62)


def test_the_same_set_through_a_probability_volume():
    # Binary foreground maps: confidence 0.95 / 0.62 on foreground (p) or background (1 - p) voxels.
    fg = np.array([0.95, 0.05, 0.95, 0.95, 0.62, 0.38])
    label = np.array([1, 0, 1, 0, 0, 1])  # correct: yes yes yes no no no
    result = segmentation_calibration(fg, label)
    assert result["ece"] == pytest.approx(HAND_ECE)
    assert result["mce"] == pytest.approx(HAND_MCE)
    assert result["n_voxels"] == 6
    conf, correct = confidence_and_correct(fg, label)
    np.testing.assert_allclose(conf, HAND_CONFIDENCE)
    np.testing.assert_array_equal(correct, HAND_CORRECT)


def test_empty_bins_are_nan_and_ignored_and_mce_picks_the_worst_non_empty_bin():
    bins = reliability_bins(HAND_CONFIDENCE, HAND_CORRECT)
    empty = bins.counts == 0
    assert empty.sum() == 13
    assert np.all(np.isnan(bins.accuracy[empty])) and np.all(np.isnan(bins.mean_confidence[empty]))
    assert math.isfinite(bins.ece) and math.isfinite(bins.mce)
    # The worst bin is the 2-voxel bin (gap 0.62), not the larger 4-voxel bin (gap 0.20).
    assert bins.mce == pytest.approx(np.nanmax(bins.gap)) == pytest.approx(0.62)
    # A perfectly calibrated bin next to a bad one: MCE is the bad one's gap whatever the counts.
    conf = np.array([0.5] * 100 + [0.99])
    correct = np.array([True] * 50 + [False] * 50 + [False])
    assert mce(conf, correct) == pytest.approx(0.99)
    assert ece(conf, correct) == pytest.approx(0.99 / 101)
    # No samples at all: undefined.
    none = reliability_bins(np.zeros(0), np.zeros(0, dtype=bool))
    assert math.isnan(none.ece) and math.isnan(none.mce)


def test_bin_assignment_confidence_one_goes_to_the_last_bin_and_edges_to_the_upper_bin():
    bins = reliability_bins(np.array([1.0, 1.0, 0.0]), np.array([True, False, True]))
    assert bins.counts[-1] == 2 and bins.counts[0] == 1
    assert bins.accuracy[-1] == 0.5 and bins.mean_confidence[-1] == 1.0
    np.testing.assert_allclose(bins.edges, np.arange(16) / 15)
    assert bins.edges[0] == 0.0 and bins.edges[-1] == 1.0
    two = reliability_bins(np.array([0.5, 0.4999]), np.array([True, True]), n_bins=2)
    np.testing.assert_array_equal(two.counts, [1, 1])  # 0.5 is the lower edge of the upper bin
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        reliability_bins(np.array([1.2]), np.array([True]))
    with pytest.raises(ValueError, match="n_bins"):
        reliability_bins(HAND_CONFIDENCE, HAND_CORRECT, n_bins=0)


def test_perfectly_calibrated_set_has_ece_near_zero():
    # Labels drawn with the stated probability: acc_b ≈ conf_b up to sampling noise. With 200 000 voxels over the
    # 8 bins above 0.5 (≈ 13 000–27 000 per bin) the noise of acc_b is ≈ 0.003, so ECE < 0.01 and MCE < 0.02 hold.
    p, label = calibrated_binary_set(200_000, seed=1)
    result = segmentation_calibration(p, label)
    assert result["ece"] < 0.01
    assert result["mce"] < 0.02
    # Over-confident reporting of the same labels is clearly worse.
    sharp, _ = calibrated_binary_set(200_000, seed=1, sharpen=2.5)
    assert segmentation_calibration(sharp, label)["ece"] > 0.05


def test_bins_match_the_definition_and_pool_over_cases():
    rng = np.random.default_rng(2)
    conf = rng.uniform(0, 1, 5000) ** 0.3
    correct = rng.uniform(0, 1, 5000) < conf**2
    expected_ece, expected_mce = reference_ece_mce(conf, correct, 15)
    assert ece(conf, correct) == pytest.approx(expected_ece, rel=1e-12)
    assert mce(conf, correct) == pytest.approx(expected_mce, rel=1e-12)
    pooled = ReliabilityBins.combine([reliability_bins(conf[:1234], correct[:1234]),
                                      reliability_bins(conf[1234:], correct[1234:])])
    whole = reliability_bins(conf, correct)
    np.testing.assert_array_equal(pooled.counts, whole.counts)
    np.testing.assert_allclose(pooled.accuracy, whole.accuracy, equal_nan=True)
    assert pooled.ece == pytest.approx(whole.ece)
    record = whole.as_dict()
    assert record["ece"] == whole.ece and len(record["counts"]) == 15


# ----------------------------------------------------------------------------------------- segmentation_calibration
def test_segmentation_calibration_over_chunks_matches_full_array_formulas():
    # 3 classes × 1.33 M voxels: more than one chunk, with a mask restricting the calibration metrics.
    shape = (110, 110, 110)
    assert np.prod(shape) > CHUNK_VOXELS
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(3, *shape)).astype(np.float32) * 2
    prob = np.exp(logits)
    prob /= prob.sum(axis=0)
    label = rng.integers(0, 3, size=shape)
    mask = np.zeros(shape, dtype=bool)
    mask[20:90, 10:100, 30:80] = True

    result = segmentation_calibration(prob, label, mask=mask)

    pred = prob.argmax(axis=0)
    conf = prob.max(axis=0).astype(np.float64)[mask]
    correct = (pred == label)[mask]
    expected_ece, expected_mce = reference_ece_mce(conf, correct, 15)
    p_true = np.take_along_axis(prob, label[None], axis=0)[0][mask].astype(np.float64)
    assert result["n_voxels"] == mask.sum()
    assert result["ece"] == pytest.approx(expected_ece, rel=1e-9)
    assert result["mce"] == pytest.approx(expected_mce, rel=1e-9)
    assert result["nll"] == pytest.approx(-np.mean(np.log(p_true)), rel=1e-9)
    assert result["nll"] == pytest.approx(nll(prob, label, mask=mask), rel=1e-12)
    # Dice ignores the mask: it is over the whole volume, foreground classes 1 and 2 by default.
    assert list(result["dice"]) == [1, 2]
    for c in (1, 2):
        assert result["dice"][c] == pytest.approx(dice(pred == c, label == c))


def test_segmentation_calibration_of_a_64_cubed_binary_volume_without_mask():
    # (no time is measured here: timings belong to `uqseg bench`, not to a test on a shared machine)
    rng = np.random.default_rng(5)
    fg = rng.uniform(0, 1, (64, 64, 64)).astype(np.float32)
    prob = np.stack([1 - fg, fg])  # (2, 64, 64, 64)
    label = (rng.uniform(0, 1, fg.shape) < fg).astype(np.uint8)
    result = segmentation_calibration(prob, label)
    assert result["n_voxels"] == 64**3 and result["ece"] < 0.02
    assert set(result) == {"dice", "nll", "ece", "mce", "n_voxels", "reliability"}
    conf = prob.max(axis=0).astype(np.float64).ravel()
    correct = (prob.argmax(axis=0) == label).ravel()
    expected_ece, expected_mce = reference_ece_mce(conf, correct, DEFAULT_N_BINS)
    assert result["ece"] == pytest.approx(expected_ece, rel=1e-9)
    assert result["mce"] == pytest.approx(expected_mce, rel=1e-9)
    p_true = np.where(label == 1, fg, 1 - fg).astype(np.float64)
    assert result["nll"] == pytest.approx(-np.mean(np.log(p_true)), rel=1e-6)


def test_segmentation_calibration_classes_and_errors():
    prob = np.array([[0.9, 0.2, 0.1], [0.1, 0.8, 0.9]])
    label = np.array([0, 1, 1])
    result = segmentation_calibration(prob, label, classes=[0, 1])
    assert result["dice"] == {0: 1.0, 1: 1.0}
    with pytest.raises(ValueError, match="not among"):
        segmentation_calibration(prob, label, classes=[2])
    with pytest.raises(ValueError, match="selects nothing"):
        segmentation_calibration(prob, label, mask=np.zeros(3, dtype=bool))
    with pytest.raises(ValueError, match="boolean"):
        segmentation_calibration(prob, label, mask=np.ones(3))


# ------------------------------------------------------------------------------------------- error vs uncertainty
def test_error_vs_uncertainty_equal_count_bins_by_hand():
    u = np.array([7, 0, 5, 1, 6, 3, 2, 4], dtype=float)
    error = np.array([1, 0, 1, 0, 1, 1, 0, 0], dtype=bool)  # sorted by u: 0 0 0 1 0 1 1 1
    curve = error_vs_uncertainty(u, error, n_bins=4)
    np.testing.assert_array_equal(curve.counts, [2, 2, 2, 2])
    np.testing.assert_allclose(curve.mean_uncertainty, [0.5, 2.5, 4.5, 6.5])
    np.testing.assert_allclose(curve.error_rate, [0.0, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(curve.uncertainty_range, [[0, 1], [2, 3], [4, 5], [6, 7]])
    uneven = error_vs_uncertainty(np.arange(10.0), np.zeros(10, dtype=bool), n_bins=3)
    np.testing.assert_array_equal(uneven.counts, [3, 3, 4])
    with pytest.raises(ValueError, match="at least"):
        error_vs_uncertainty(np.arange(3.0), np.zeros(3, dtype=bool), n_bins=4)


def test_error_vs_uncertainty_shares_tie_groups_across_bins_independently_of_order():
    # Four voxels tie at u = 0 (two wrong) and straddle bins 0 and 1: both get the group's error rate 0.5.
    u = np.array([0, 0, 0, 0, 1, 1], dtype=float)
    error = np.array([1, 1, 0, 0, 0, 0], dtype=bool)
    curve = error_vs_uncertainty(u, error, n_bins=3)
    np.testing.assert_allclose(curve.error_rate, [0.5, 0.5, 0.0])
    np.testing.assert_allclose(curve.mean_uncertainty, [0.0, 0.0, 1.0])
    flipped = error_vs_uncertainty(u, error[[2, 3, 0, 1, 4, 5]], n_bins=3)
    np.testing.assert_allclose(flipped.error_rate, curve.error_rate)
    constant = error_vs_uncertainty(np.zeros(1000), np.arange(1000) % 4 == 0, n_bins=10)
    np.testing.assert_allclose(constant.error_rate, 0.25)


# ------------------------------------------------------------------------------------------------------- AUROC
def test_auroc_perfect_random_and_reversed():
    positive = np.array([0, 0, 0, 1, 1], dtype=bool)
    assert auroc(np.array([0.1, 0.2, 0.3, 0.8, 0.9]), positive) == 1.0
    assert auroc(np.array([0.9, 0.8, 0.7, 0.2, 0.1]), positive) == 0.0
    assert auroc(np.full(5, 0.3), positive) == 0.5  # all tied
    assert math.isnan(auroc(np.arange(3.0), np.zeros(3, dtype=bool)))
    assert math.isnan(auroc(np.arange(3.0), np.ones(3, dtype=bool)))


def test_auroc_ties_count_one_half():
    # Positives {0.4, 0.8} vs negatives {0.1, 0.4}: pairs 1 + ½ + 1 + 1 = 3.5 of 4.
    assert auroc(np.array([0.1, 0.4, 0.4, 0.8]), np.array([0, 1, 0, 1])) == pytest.approx(0.875)
    rng = np.random.default_rng(6)
    score = rng.integers(0, 6, 400).astype(float)  # many ties
    positive = rng.uniform(0, 1, 400) < 0.3 + 0.1 * score
    pos, neg = score[positive], score[~positive]
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert auroc(score, positive) == pytest.approx(pairs, rel=1e-12)


# ------------------------------------------------------------------------------------------ reliability diagram
def test_plot_reliability_writes_a_png(tmp_path):
    path = plot_reliability(three_methods_bins(), tmp_path / "plots" / "reliability.png", title="Synthetic check")
    assert path == tmp_path / "plots" / "reliability.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # no temporary file left
    with pytest.raises(ValueError, match="empty"):
        plot_reliability({}, tmp_path / "none.png")
