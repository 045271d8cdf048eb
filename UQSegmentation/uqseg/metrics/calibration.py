"""Accuracy and calibration metrics of a probabilistic segmentation (the evaluation of the MoB paper: Kampen, Aspe et
al., "Structured Covariance Modeling Using Learned Mixture-of-Bases for Uncertainty in 3D Segmentation", NLDL 2026,
Table 4 and Fig. 3): NLL, ECE / MCE with reliability diagrams, and error-vs-uncertainty binning; Dice
(`uqseg.metrics.overlap`) and AUROC (`uqseg.metrics.ranking`) are re-exported here for the same evaluation.

Conventions
- A **probability volume** `prob` is either
  * ``(C, ...)``: class probabilities, C ≥ 2, summing to 1 over axis 0 (a softmax output, or the mean of MC samples'
    softmaxes), with an integer label volume of shape ``...`` holding classes 0..C-1; or
  * a **binary foreground map** of exactly the label's shape: p = P(foreground), the label holds 0/1. It is treated
    as the two-class volume ``(1 - p, p)``, so the predicted class is foreground where p > 0.5 (a tie at 0.5 goes to
    background, like ``argmax`` picks the first class).
  The layout is told apart by the shapes alone (``prob.shape == label.shape`` → binary), never guessed from values.
- The standard segmentation confidence (Guo et al. 2017, applied per voxel): confidence = max_c p_c (the predicted
  class's probability) and correct = [argmax_c p_c == label]. Every voxel is one sample.
- Probabilities, confidences, accuracies, error rates, ECE and MCE are unitless fractions in [0, 1] (papers often
  print ECE ×100 as a percentage); NLL is in nats per voxel; Dice is a unitless overlap in [0, 1].
- Volumes of millions of voxels are processed in chunks of `uqseg.metrics.arrays.CHUNK_VOXELS` voxels with `np.bincount`, so the extra
  memory is a few chunk-sized arrays whatever the volume size (the sorts of `error_vs_uncertainty` and `auroc` need
  a few arrays of the input's length).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from uqseg.io.write import write_png_atomically
from uqseg.metrics.arrays import CHUNK_VOXELS  # noqa: F401 (re-exported: the chunk size the docstring names)
from uqseg.metrics.arrays import as_labels as _as_labels
from uqseg.metrics.arrays import chunks as _chunks
from uqseg.metrics.arrays import require_same_shape as _require_same_shape
from uqseg.metrics.arrays import tie_groups as _tie_groups
from uqseg.metrics.overlap import class_counts as _class_counts
from uqseg.metrics.overlap import dice, dice_from_counts as _dice_from_counts, dice_per_class
from uqseg.metrics.ranking import auroc

__all__ = [
    "DEFAULT_N_BINS",
    "ReliabilityBins",
    "ErrorVsUncertainty",
    "dice",
    "dice_per_class",
    "true_class_probability",
    "confidence_and_correct",
    "nll",
    "reliability_bins",
    "ece",
    "mce",
    "segmentation_calibration",
    "error_vs_uncertainty",
    "auroc",
    "plot_reliability",
]

#: Number of equal-width confidence bins on [0, 1] used for ECE / MCE (as in the paper and Guo et al. 2017).
DEFAULT_N_BINS = 15
#: How far class probabilities may stray from [0, 1] and from summing to 1 (float16 softmax outputs, rounding)
#: before the input is rejected as not being probabilities (e.g. logits passed by mistake).
PROBABILITY_TOLERANCE = 1e-2


def _as_mask(mask: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        raise ValueError(f"mask must be a boolean array, got dtype {m.dtype}")
    if m.shape != shape:
        raise ValueError(f"mask must have the label's shape {shape}, got {m.shape}")
    return m.reshape(-1)


def _check_unit_interval(x: np.ndarray, what: str) -> None:
    if x.size == 0:
        return
    lo, hi = x.min(), x.max()
    if not (lo >= -PROBABILITY_TOLERANCE and hi <= 1 + PROBABILITY_TOLERANCE):  # also catches NaN
        raise ValueError(f"{what} must lie in [0, 1], got values in [{lo}, {hi}]")


class _ProbabilityVolume:
    """`prob` and `label` (and an optional mask) flattened to voxels, served as two-dimensional (C, k) chunks."""

    def __init__(self, prob: Any, label: Any, mask: Any = None):
        p = np.asarray(prob)
        lab = _as_labels(label, "label")
        if p.dtype.kind != "f":
            raise ValueError(f"prob must be a floating-point array, got dtype {p.dtype}")
        if p.shape == lab.shape:
            self.binary = True
            self.n_classes = 2
            self._p = p.reshape(-1)
        elif p.ndim == lab.ndim + 1 and p.shape[1:] == lab.shape:
            if p.shape[0] < 2:
                raise ValueError("prob (C, ...) needs C ≥ 2 classes; pass a one-channel map squeezed (binary map)")
            self.binary = False
            self.n_classes = p.shape[0]
            self._p = p.reshape(p.shape[0], -1)
        else:
            raise ValueError(
                f"prob must be (C, *label.shape) class probabilities or a binary map of label's shape; "
                f"got prob {p.shape} and label {lab.shape}"
            )
        if lab.size and lab.max() >= self.n_classes:
            raise ValueError(f"label holds class {lab.max()} but prob has only {self.n_classes} classes")
        self.shape = lab.shape
        self._label = lab.reshape(-1)
        self._mask = _as_mask(mask, lab.shape)
        self.n_voxels = int(self._label.size)

    def chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        """Yield ``(p, label, mask)`` per chunk of voxels: p (C, k) class probabilities, label (k,) ints and the
        chunk's (k,) mask, or None when there is no mask."""
        for sl in _chunks(self.n_voxels):
            if self.binary:
                fg = self._p[sl]
                _check_unit_interval(fg, "binary foreground probabilities")
                p = np.stack([1.0 - fg, fg])
            else:
                p = self._p[:, sl]
                _check_unit_interval(p, "class probabilities")
                total = p.sum(axis=0, dtype=np.float64)
                if total.size and np.max(np.abs(total - 1.0)) > PROBABILITY_TOLERANCE:
                    raise ValueError("prob must sum to 1 over axis 0 (class probabilities, not logits)")
            yield p, self._label[sl], None if self._mask is None else self._mask[sl]


def _predicted_class_and_confidence(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.argmax(p, axis=0)
    conf = np.take_along_axis(p, pred[np.newaxis], axis=0)[0]
    return pred, np.clip(conf.astype(np.float64), 0.0, 1.0)


def _reference_probability(p: np.ndarray, lab: np.ndarray) -> np.ndarray:
    return np.take_along_axis(p, lab[np.newaxis].astype(np.intp), axis=0)[0].astype(np.float64)


# ---------------------------------------------------------------------------------------------------------- NLL
def true_class_probability(prob: Any, label: Any) -> np.ndarray:
    """The probability the model gives the reference class of each voxel, p_{label}, shaped like `label` (float64).

    `prob` is ``(C, ...)`` class probabilities or a binary foreground map of the label's shape, where p_1 = p and
    p_0 = 1 - p (see the module notes). This builds a full-size array; `nll` does not need it.
    """
    volume = _ProbabilityVolume(prob, label)
    parts = [_reference_probability(p, lab) for p, lab, _ in volume.chunks()]
    return (np.concatenate(parts) if parts else np.zeros(0)).reshape(volume.shape)


def nll(prob: Any, label: Any, eps: float = 1e-7, mask: Any = None) -> float:
    """Mean negative log-likelihood of the reference labels, in nats per voxel:

        NLL = -(1/N) Σ_i log max(p_{i, y_i}, eps)

    over the N voxels (inside `mask` when given; a boolean array of the label's shape). `prob` is ``(C, ...)``
    class probabilities summing to 1 over axis 0 with `label` holding classes 0..C-1, or a binary foreground
    probability map of exactly the label's shape with `label` in {0, 1} (p_1 = p, p_0 = 1 - p). `eps` floors the
    probability so that a confidently wrong voxel costs -log(eps) (≈ 16.1 nats at 1e-7) instead of infinity.
    """
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")
    volume = _ProbabilityVolume(prob, label, mask)
    total, n = 0.0, 0
    for p, lab, m in volume.chunks():
        if m is not None:
            p, lab = p[:, m], lab[m]
        total -= float(np.sum(np.log(np.maximum(_reference_probability(p, lab), eps))))
        n += lab.size
    if n == 0:
        raise ValueError("no voxels to evaluate (empty input or a mask that selects nothing)")
    return total / n


# ------------------------------------------------------------------------------------------- reliability and ECE
class _Bins:
    """`n_bins` of a binned summary whose `counts` holds one entry per bin."""

    @property
    def n_bins(self) -> int:
        return int(self.counts.size)


@dataclass(frozen=True, eq=False)
class ReliabilityBins(_Bins):
    """Confidence histogram of a reliability diagram: B equal-width bins on [0, 1].

    Bin b holds the samples with b/B ≤ confidence < (b+1)/B; the last bin also holds confidence 1.0 (bin index =
    min(⌊confidence · B⌋, B - 1)).

    edges: (B+1,) bin edges b/B. counts: (B,) samples per bin (int64).
    mean_confidence: (B,) conf_b = mean confidence of bin b's samples; NaN where the bin is empty.
    accuracy: (B,) acc_b = fraction of bin b's samples that are correct; NaN where the bin is empty.
    """

    edges: np.ndarray
    counts: np.ndarray
    mean_confidence: np.ndarray
    accuracy: np.ndarray

    @property
    def total(self) -> int:
        """N, the number of samples (voxels) in all bins."""
        return int(self.counts.sum())

    @property
    def gap(self) -> np.ndarray:
        """(B,) |acc_b - conf_b| per bin; NaN where the bin is empty."""
        return np.abs(self.accuracy - self.mean_confidence)

    @property
    def ece(self) -> float:
        """Expected Calibration Error: ECE = Σ_b (n_b / N) |acc_b - conf_b| (empty bins weigh 0); NaN if N = 0."""
        if self.total == 0:
            return float("nan")
        full = self.counts > 0
        return float(np.sum(self.counts[full] / self.total * self.gap[full]))

    @property
    def mce(self) -> float:
        """Maximum Calibration Error: MCE = max over non-empty bins of |acc_b - conf_b|; NaN if N = 0."""
        full = self.counts > 0
        return float(np.max(self.gap[full])) if np.any(full) else float("nan")

    @classmethod
    def from_sums(cls, counts: np.ndarray, confidence_sums: np.ndarray, correct_sums: np.ndarray) -> ReliabilityBins:
        """Bins from per-bin sample counts, sums of confidence and numbers correct."""
        counts = np.asarray(counts, dtype=np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_confidence = np.where(counts > 0, confidence_sums / counts, np.nan)
            accuracy = np.where(counts > 0, correct_sums / counts, np.nan)
        edges = np.arange(counts.size + 1) / counts.size
        return cls(edges, counts, mean_confidence, accuracy)

    @classmethod
    def combine(cls, bins: Sequence[ReliabilityBins]) -> ReliabilityBins:
        """Pool several histograms with the same bins (e.g. the cases of a test set) as if all samples were one set."""
        if not bins:
            raise ValueError("nothing to combine")
        n_bins = bins[0].n_bins
        if any(b.n_bins != n_bins for b in bins):
            raise ValueError(f"cannot combine histograms with different bin counts {[b.n_bins for b in bins]}")
        counts = sum(b.counts for b in bins)
        conf = sum(np.nan_to_num(b.mean_confidence * b.counts) for b in bins)
        correct = sum(np.nan_to_num(b.accuracy * b.counts) for b in bins)
        return cls.from_sums(counts, conf, correct)

    def as_dict(self) -> dict[str, Any]:
        """Plain lists (NaN → None) for JSON, plus ECE and MCE."""
        def listed(a: np.ndarray) -> list:
            return [None if isinstance(v, float) and v != v else v for v in a.tolist()]

        return {
            "edges": listed(self.edges), "counts": listed(self.counts),
            "mean_confidence": listed(self.mean_confidence), "accuracy": listed(self.accuracy),
            "ece": self.ece, "mce": self.mce,
        }


class _BinAccumulator:
    """Per-bin count, confidence sum and number correct, filled chunk by chunk with `np.bincount`."""

    def __init__(self, n_bins: int):
        if isinstance(n_bins, bool) or int(n_bins) != n_bins or n_bins < 1:
            raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
        self.n_bins = int(n_bins)
        self.counts = np.zeros(self.n_bins, dtype=np.int64)
        self.confidence_sums = np.zeros(self.n_bins)
        self.correct_sums = np.zeros(self.n_bins)

    def add(self, confidence: np.ndarray, correct: np.ndarray) -> None:
        conf = np.clip(confidence.astype(np.float64, copy=False), 0.0, 1.0)
        index = np.minimum((conf * self.n_bins).astype(np.intp), self.n_bins - 1)  # ⌊c·B⌋, c = 1 → last bin
        self.counts += np.bincount(index, minlength=self.n_bins)
        self.confidence_sums += np.bincount(index, weights=conf, minlength=self.n_bins)
        self.correct_sums += np.bincount(index, weights=correct.astype(np.float64), minlength=self.n_bins)

    def result(self) -> ReliabilityBins:
        return ReliabilityBins.from_sums(self.counts, self.confidence_sums, self.correct_sums)


def reliability_bins(confidence: Any, correct: Any, n_bins: int = DEFAULT_N_BINS) -> ReliabilityBins:
    """Histogram samples by confidence into `n_bins` equal-width bins on [0, 1] (1.0 goes to the last bin) and
    record each bin's count, mean confidence and accuracy (fraction of `correct`).

    confidence: floats in [0, 1] (any shape; for segmentation see `confidence_and_correct`).
    correct: booleans (or 0/1) of the same shape.
    """
    conf, corr = np.asarray(confidence), np.asarray(correct)
    _require_same_shape(conf, corr, "confidence", "correct")
    if conf.dtype.kind not in "fiub":
        raise ValueError(f"confidence must be numeric, got dtype {conf.dtype}")
    acc = _BinAccumulator(n_bins)
    cf, kf = conf.reshape(-1), corr.reshape(-1)
    for sl in _chunks(cf.size):
        _check_unit_interval(cf[sl], "confidence")
        acc.add(cf[sl], kf[sl] != 0)
    return acc.result()


def ece(confidence: Any, correct: Any, n_bins: int = DEFAULT_N_BINS) -> float:
    """Expected Calibration Error, ECE = Σ_b (n_b / N) |acc_b - conf_b| over `n_bins` equal-width confidence bins
    (Naeini et al. 2015; Guo et al. 2017); unitless in [0, 1], 0 = perfectly calibrated. See `reliability_bins`."""
    return reliability_bins(confidence, correct, n_bins).ece


def mce(confidence: Any, correct: Any, n_bins: int = DEFAULT_N_BINS) -> float:
    """Maximum Calibration Error, MCE = max_b |acc_b - conf_b| over the non-empty equal-width confidence bins;
    unitless in [0, 1]. See `reliability_bins`."""
    return reliability_bins(confidence, correct, n_bins).mce


def confidence_and_correct(prob: Any, label: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-voxel confidence = max_c p_c (float64) and correct = (argmax_c p_c == label) (bool), shaped like `label`.

    `prob` as for `nll` (``(C, ...)`` or a binary foreground map). Builds two full-size arrays; use
    `segmentation_calibration` for whole volumes.
    """
    volume = _ProbabilityVolume(prob, label)
    conf_parts, correct_parts = [], []
    for p, lab, _ in volume.chunks():
        pred, conf = _predicted_class_and_confidence(p)
        conf_parts.append(conf)
        correct_parts.append(pred == lab)
    if not conf_parts:
        return np.zeros(volume.shape), np.zeros(volume.shape, dtype=bool)
    return np.concatenate(conf_parts).reshape(volume.shape), np.concatenate(correct_parts).reshape(volume.shape)


def segmentation_calibration(
    prob: Any,
    label: Any,
    n_bins: int = DEFAULT_N_BINS,
    mask: Any = None,
    *,
    classes: Iterable[int] | None = None,
    eps: float = 1e-7,
) -> dict[str, Any]:
    """Dice per class, NLL, ECE and MCE of one probabilistic segmentation, in one chunked pass over the volume.

    prob: ``(C, ...)`` class probabilities (summing to 1 over axis 0) or a binary foreground map of the label's
        shape; label: the reference classes (see the module notes). The predicted label map is argmax_c p_c.
    mask: optional boolean array of the label's shape restricting the **voxel-wise calibration metrics** (NLL, ECE,
        MCE) to a region, e.g. a dilated box around the organ, so that millions of trivially certain background
        voxels do not dilute them. Dice is always computed over the whole volume: a mask around the reference organ
        would otherwise hide false positives outside it.
    classes: the classes whose Dice is reported; default the foreground classes 1..C-1 (just 1 for a binary map).
    n_bins, eps: as for `reliability_bins` and `nll`.

    Returns ``{"dice": {class: float}, "nll": nats per voxel, "ece": float, "mce": float, "n_voxels": number of
    voxels the calibration metrics cover, "reliability": ReliabilityBins}`` (the bins draw `plot_reliability`).
    """
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")
    volume = _ProbabilityVolume(prob, label, mask)
    n_classes = volume.n_classes
    classes = list(range(1, n_classes)) if classes is None else [int(c) for c in classes]
    bad = [c for c in classes if not 0 <= c < n_classes]
    if bad:
        raise ValueError(f"classes {bad} are not among the {n_classes} classes of prob")

    bins = _BinAccumulator(n_bins)
    class_counts = np.zeros((3, n_classes), dtype=np.int64)
    nll_sum = 0.0
    for p, lab, m in volume.chunks():
        pred, conf = _predicted_class_and_confidence(p)
        class_counts += _class_counts(pred, lab, n_classes)  # Dice: the whole volume
        if m is not None:
            p, lab, pred, conf = p[:, m], lab[m], pred[m], conf[m]
        bins.add(conf, pred == lab)
        nll_sum -= float(np.sum(np.log(np.maximum(_reference_probability(p, lab), eps))))
    reliability = bins.result()
    if reliability.total == 0:
        raise ValueError("no voxels to evaluate (empty input or a mask that selects nothing)")
    return {
        "dice": {c: _dice_from_counts(*class_counts[:, c]) for c in classes},
        "nll": nll_sum / reliability.total,
        "ece": reliability.ece,
        "mce": reliability.mce,
        "n_voxels": reliability.total,
        "reliability": reliability,
    }


# --------------------------------------------------------------------------------------- error vs uncertainty
@dataclass(frozen=True, eq=False)
class ErrorVsUncertainty(_Bins):
    """Equal-count bins of samples sorted by uncertainty (B bins, lowest uncertainty first).

    counts: (B,) samples per bin (they differ by at most one). mean_uncertainty: (B,) mean uncertainty per bin, in
    the unit of the uncertainty given (nats of entropy, probability variance, mm of std, ...). error_rate: (B,)
    mean error per bin (fraction of wrong voxels for boolean errors). uncertainty_range: (B, 2) the smallest and
    largest uncertainty in each bin.
    """

    counts: np.ndarray
    mean_uncertainty: np.ndarray
    error_rate: np.ndarray
    uncertainty_range: np.ndarray

    def as_dict(self) -> dict[str, Any]:
        """Plain lists for JSON."""
        return {
            "counts": self.counts.tolist(), "mean_uncertainty": self.mean_uncertainty.tolist(),
            "error_rate": self.error_rate.tolist(), "uncertainty_range": self.uncertainty_range.tolist(),
        }


def error_vs_uncertainty(uncertainty: Any, error: Any, n_bins: int = 10) -> ErrorVsUncertainty:
    """Error rate as a function of uncertainty: sort the samples by uncertainty and cut them into `n_bins` bins of
    equal count (sizes ⌊N/B⌋ or ⌈N/B⌉); report each bin's mean uncertainty and error rate. A useful model
    shows an error rate rising with uncertainty.

    uncertainty: finite floats, any unit (any shape). error: booleans, or per-sample error fractions in [0, 1], of
    the same shape (e.g. ``argmax != label``).
    Ties: samples of equal uncertainty that straddle a bin boundary are shared between the bins, each bin receiving
    the tie group's mean error (the expectation over a random order of the ties), so the result does not depend on
    the order of the voxels — important when many voxels have exactly zero uncertainty.
    """
    if isinstance(n_bins, bool) or int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    u, e = np.asarray(uncertainty), np.asarray(error)
    _require_same_shape(u, e, "uncertainty", "error")
    u, e = u.reshape(-1).astype(np.float64, copy=False), e.reshape(-1).astype(np.float64, copy=False)
    n = u.size
    if n < n_bins:
        raise ValueError(f"need at least n_bins = {n_bins} samples, got {n}")
    if not np.all(np.isfinite(u)):
        raise ValueError("uncertainty must be finite")
    if not (e.min() >= 0.0 and e.max() <= 1.0):
        raise ValueError("error must be boolean or fractions in [0, 1]")

    order = np.argsort(u, kind="stable")
    u_sorted, e_sorted = u[order], e[order]
    del order
    starts, sizes = _tie_groups(u_sorted)
    e_sorted = np.repeat(np.add.reduceat(e_sorted, starts) / sizes, sizes)  # each tie group's mean error

    bin_starts = (np.arange(n_bins) * n) // n_bins
    counts = np.diff(np.append(bin_starts, n))
    mean_uncertainty = np.add.reduceat(u_sorted, bin_starts) / counts
    error_rate = np.add.reduceat(e_sorted, bin_starts) / counts
    bounds = np.stack([u_sorted[bin_starts], u_sorted[bin_starts + counts - 1]], axis=1)
    return ErrorVsUncertainty(counts.astype(np.int64), mean_uncertainty, error_rate, bounds)


# ------------------------------------------------------------------------------------------ reliability diagram
def plot_reliability(
    bins_by_method: Mapping[str, ReliabilityBins],
    path: str | os.PathLike,
    title: str = "Reliability diagram",
) -> Path:
    """Draw a reliability diagram of one or more methods and write it atomically as a PNG (the paper's Fig. 3).

    Top panel: accuracy (fraction correct) against mean confidence (max class probability) of each non-empty bin,
    one line per method, labelled with its ECE and MCE, and the diagonal of perfect calibration (points below it =
    over-confident). Bottom panel: the share of voxels in each bin per method, on a log scale (segmentation puts
    most voxels in the last bin). Matplotlib with the Agg canvas, no pyplot state. Returns the path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not bins_by_method:
        raise ValueError("bins_by_method is empty: nothing to plot")
    fig = Figure(figsize=(6.4, 7.0), dpi=110)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 1, height_ratios=(3, 1.2), hspace=0.08)
    top = fig.add_subplot(grid[0])
    bottom = fig.add_subplot(grid[1], sharex=top)
    top.plot([0, 1], [0, 1], linestyle="--", color="0.45", lw=1.0, label="perfect calibration")

    colours = [f"C{k % 10}" for k in range(len(bins_by_method))]
    n_methods = len(bins_by_method)
    for k, ((name, bins), colour) in enumerate(zip(bins_by_method.items(), colours)):
        full = bins.counts > 0
        top.plot(bins.mean_confidence[full], bins.accuracy[full], marker="o", ms=4, lw=1.5, color=colour,
                 label=f"{name}  (ECE {bins.ece:.4f}, MCE {bins.mce:.3f})")
        width = np.diff(bins.edges) / n_methods
        left = bins.edges[:-1] + k * width
        share = bins.counts / max(bins.total, 1)
        bottom.bar(left[full], share[full], width=width[full], align="edge", color=colour, alpha=0.75,
                   edgecolor="none", label=name)

    top.set_xlim(0.0, 1.0)
    top.set_ylim(0.0, 1.0)
    top.set_aspect("auto")
    top.set_ylabel("accuracy (fraction correct)")
    top.set_title(title, fontsize=10)
    top.grid(True, color="0.9", lw=0.6)
    top.legend(loc="upper left", fontsize=8, frameon=True)
    top.tick_params(labelbottom=False, labelsize=8)
    bottom.set_yscale("log")
    bottom.set_xlabel("confidence (max class probability)")
    bottom.set_ylabel("share of voxels")
    bottom.grid(True, axis="y", color="0.9", lw=0.6)
    bottom.tick_params(labelsize=8)
    fig.subplots_adjust(left=0.12, right=0.97, top=0.95, bottom=0.08)
    return write_png_atomically(path, lambda tmp: fig.savefig(tmp, format="png"))
