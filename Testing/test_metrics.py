"""The shared metrics (`uqseg.metrics`), against hand-computed values: Spearman with ties, entropy for numpy and
torch alike, Dice of empty masks, AUROC of a constant score."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from uqseg.metrics import auroc, average_ranks, dice, entropy, spearman
from uqseg.metrics.information import entropy_term


def test_average_ranks_share_ties():
    np.testing.assert_array_equal(average_ranks([10, 20, 20, 30]), [1.0, 2.5, 2.5, 4.0])


def test_spearman_counts_ties_exactly():
    # ranks of a: 1, 2.5, 2.5, 4; of b: 1..4 → Pearson of the ranks = 0.9486832980505138
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(3 / math.sqrt(10), abs=1e-12)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([5, 5, 5], [1, 2, 3]))
    # the argsort-of-argsort shortcut (no ties) gives 1.0 here, which is wrong for tied data
    assert spearman([0, 0, 0, 1], [0, 1, 2, 3]) == pytest.approx(0.7745966692414834)


def test_entropy_numpy_and_torch_agree_and_zero_probabilities_count_zero():
    p = np.array([[0.5, 1.0, 0.0], [0.5, 0.0, 1.0]])
    expected = np.array([math.log(2), 0.0, 0.0])
    np.testing.assert_allclose(entropy(p, axis=0), expected)
    np.testing.assert_allclose(entropy(torch.tensor(p), axis=0).numpy(), expected)
    np.testing.assert_allclose(entropy_term(p).sum(0), expected)


def test_dice_and_auroc_edge_cases():
    empty = np.zeros((4, 4), bool)
    assert dice(empty, empty) == 1.0 and dice(empty, ~empty) == 0.0
    assert auroc(np.ones(6), [0, 1, 0, 1, 0, 1]) == 0.5
    assert auroc([0.1, 0.2, 0.9, 0.8], [0, 0, 1, 1]) == 1.0
