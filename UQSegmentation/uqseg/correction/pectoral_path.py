"""Model-aware correction of the pectoral boundary from clicked points: the most probable smooth path through the
model's row-wise heatmap that passes through the user's clicks.

Frames. The model's heatmap `PectoralResult.grid_prob` is (G, G) = (256, 256): grid rows × grid columns of the
CANONICAL image (chest wall on the left) with the quarter-width ramp padding on the left (`boundary_grid`). Clicks
are in INPUT pixel coordinates: (row, col) pixel-centre indices of the image as loaded, in its own orientation
(un-flipped; the columns of boundary.csv). The result is a `PectoralResult` in input coordinates again.

Model. Each grid row r has the model's distribution p_r(c) over grid columns c (the softmax heatmap, floored at
PROB_FLOOR). A path c_0 … c_{G−1} (one column per grid row) scores

    S(c) = Σ_r log p_r(c_r) − λ Σ_r (c_{r+1} − c_r)²          (λ = `smoothness`, per grid row, grid columns⁻²)

i.e. a chain (hidden Markov) model with unary log p and a Gaussian random-walk prior on the column step. A click
at input (row y, column x) maps to grid row round(image_row_to_grid(y)) and grid column image_col_to_grid(x) (after
the flip to canonical); the path is constrained to lie within `tolerance` grid columns of it there.
- `viterbi_path` finds the best path (dynamic programming, O(G·C²));
- `chain_posterior` gives the per-row marginals of the same chain (forward–backward), with or without clicks.

Correction (`correct_pectoral`):
1. the best path without clicks (u) and with them (k); the CHANGED grid rows are those where k and u differ by more
   than CHANGE_TOLERANCE grid columns, plus the clicked rows. The click's effect is therefore local: rows where the
   clicks do not move the best path keep the model's own mean exactly (and its σ up to the shrink factor of step 3,
   which is 1 to a fraction of a percent far from the clicks), and without clicks the result is the model's result. A click on the other mode of a multimodal stretch moves the whole stretch (every row in which the
   best path switches mode) to that mode.
2. changed rows: the new mean is the mean of the clicked chain's posterior marginal over the BASIN of the heatmap mode
   the clicked best path passes through (`mode_basin`: the row split at the lowest point between neighbouring
   significant modes of `find_modes`; a one-mode row is one basin) — the chosen mode at sub-column precision, never
   an average across modes; at a clicked grid row it is the clicked column exactly.
3. σ: the model's spread of that basin (its σ² restricted to the basin, + the model's VAR_FLOOR; = the model's σ
   in one-mode rows, the chosen mode's width in a resolved multimodal row; unchanged rows keep the model's σ), times
   the factor by which the clicks shrink the chain's posterior std in that row,
   σ_new = σ_basin · min(1, std(posterior with clicks) / std(posterior without)) — ≈ 1 far from the clicks, small
   at and next to them.
4. back to input pixels with the same rules as `predict_pectoral` (`decode_to_input`: muscle rows = the contiguous
   run of grid rows from the first whose mean lies inside the image; rows linearly interpolated), except that
   the run is extended to include every clicked row (a click says "the boundary is here"; rows of the extension
   whose path lies in the padding get a negative column, i.e. no muscle pixels); then each clicked input
   row is set to the clicked column EXACTLY, the small residual being spread linearly over ±2 grid rows
   (±2·H/256 input rows) so the curve stays continuous.
5. multimodal flags: changed rows are re-tested on their clicked posterior marginal (`find_modes`), others keep the
   model's flags; `grid_prob` of the result holds those marginals in changed rows and the model's heatmap elsewhere.

Clicks accumulate: always pass ALL clicks so far. A corrected result remembers the model's uncorrected result
(`base`), and `correct_pectoral(corrected, clicks)` starts from that base, so results do not depend on the history
(undo = drop a click and re-run).

λ (`SMOOTHNESS`) was tuned on the 40 TRAINING images of ../shared/data/mammo_ddsm (not the validation split): one
simulated click on the true boundary in the row of largest σ, boundary MAE (input px, rows where prediction and
reference both have muscle) before → after, mean over the images:
    λ      0.1    0.3    0.5    1      2      3      5
    after  4.857  4.796  4.754  4.676  4.623  4.461  5.873     (before 5.089)
    worse  0      0      1      1      2      5      8         (images whose MAE rose)
λ = 1 doubles the median gain of λ ≤ 0.5 while one image in 40 gets worse (by 0.01 px); larger λ also forbids the
steep parts of real boundaries (λ·Δc² per row) and makes more images worse.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import NamedTuple, Sequence

import numpy as np

from uqseg.mammo import boundary_grid as bg
from uqseg.mammo.heatmap import find_modes
from uqseg.mammo.pectoral import PectoralResult, grid_rows_to_input, muscle_grid_rows
from uqseg.mammo.pectoral_model import VAR_FLOOR

#: λ of the step cost λ·Δc² between consecutive grid rows (Δc in grid columns); tuned on the training images.
SMOOTHNESS = 1.0
#: A clicked grid row must lie within this many grid columns of the clicked point.
CLICK_TOLERANCE = 1.0
#: A row counts as changed when the best path with clicks moves by more than this (grid columns).
CHANGE_TOLERANCE = 1
#: Floor of the heatmap probabilities (keeps log p finite where the softmax underflows).
PROB_FLOOR = 1e-12
#: Half-width of the taper that makes a clicked input row land exactly on the click, in grid rows.
LANDING_HALF_WIDTH_GRID_ROWS = 2.0


class BoundaryClick(NamedTuple):
    """A user's point on the boundary: input pixel row and column (pixel centres, input orientation)."""

    row: float
    col: float


@dataclass
class CorrectedPectoralResult(PectoralResult):
    """A `PectoralResult` after clicks (input pixel coordinates), plus what the correction used.

    base: the model's uncorrected result. clicks: the clicks applied (input pixel (row, col), row rounded to an
    integer). changed_grid_rows: bool (G,) grid rows whose boundary the clicks changed. smoothness: λ used.
    free_chain: (best path, posterior std per grid row) of the chain WITHOUT clicks — they depend only on the base
    and λ, so a further correction of this result reuses them."""

    base: PectoralResult = field(repr=False, default=None)
    clicks: tuple = ()
    changed_grid_rows: np.ndarray = field(repr=False, default=None)
    smoothness: float = SMOOTHNESS
    free_chain: tuple = field(repr=False, default=None)

    def changed_rows(self, min_shift_px: float = 0.5) -> np.ndarray:
        """Input rows whose boundary column differs from the base result by more than `min_shift_px`, or that
        were added to / removed from the muscle rows."""
        before = dict(zip(self.base.rows.tolist(), self.base.mean_col.tolist()))
        after = dict(zip(self.rows.tolist(), self.mean_col.tolist()))
        rows = set(before) | set(after)
        moved = [r for r in rows if r not in before or r not in after or abs(after[r] - before[r]) > min_shift_px]
        return np.array(sorted(moved), dtype=np.int64)


# ---------------------------------------------------------------------------------------------------- chain model
def step_cost(n_cols: int, smoothness: float) -> np.ndarray:
    """(C, C) λ·(c − c′)², [previous column c′, next column c]."""
    cols = np.arange(n_cols, dtype=np.float64)
    return smoothness * (cols[None, :] - cols[:, None]) ** 2


def viterbi_path(log_prob: np.ndarray, smoothness: float) -> np.ndarray:
    """The column path (G,) int maximising Σ_r log_prob[r, c_r] − λ Σ_r (c_{r+1} − c_r)². log_prob (G, C) may hold
    −inf (forbidden states, e.g. outside a click's window). Ties go to the smaller column."""
    g, c = log_prob.shape
    cost = step_cost(c, smoothness)
    cols = np.arange(c)
    back = np.zeros((g, c), dtype=np.int32)
    v = log_prob[0].astype(np.float64)
    for r in range(1, g):
        s = v[:, None] - cost
        back[r] = np.argmax(s, axis=0)
        v = s[back[r], cols] + log_prob[r]
    path = np.empty(g, dtype=np.int64)
    path[-1] = int(np.argmax(v))
    for r in range(g - 1, 0, -1):
        path[r - 1] = back[r, path[r]]
    return path


def chain_posterior(prob: np.ndarray, smoothness: float) -> np.ndarray:
    """Per-row marginals (G, C) of the chain p(c) ∝ Π_r prob[r, c_r] · Π_r exp(−λ (c_{r+1} − c_r)²) (scaled
    forward–backward). prob (G, C) ≥ 0, each row with some positive entry (zeros = forbidden states).

    The products run in linear space with per-row normalisation (fast: one (C × C) matrix–vector product per row);
    when that underflows (large λ with the mass far from where a clicked row allows it) the whole pass is redone in
    log space."""
    g, c = prob.shape
    cost = step_cost(c, smoothness)
    trans = np.exp(-cost)  # [previous, next]
    alpha = np.empty((g, c))
    beta = np.empty((g, c))
    a = prob[0] / prob[0].sum()
    alpha[0] = a
    ok = _scaled_pass(a, range(1, g), lambda r, a: (a @ trans) * prob[r], alpha)
    if ok:
        b = np.ones(c)
        beta[-1] = b
        ok = _scaled_pass(b, range(g - 2, -1, -1), lambda r, b: trans @ (prob[r + 1] * b), beta)
    if ok:
        q = alpha * beta
        total = q.sum(axis=1)
        if np.all(total > 1e-280):
            return q / total[:, None]
    return _chain_posterior_log(prob, cost)


def _scaled_pass(v: np.ndarray, rows, step, out: np.ndarray) -> bool:
    """One direction of the scaled forward–backward pass: for r in `rows`, v = step(r, v) normalised to sum 1,
    stored in out[r]. False (and stop) when a sum underflows or is not finite."""
    for r in rows:
        v = step(r, v)
        total = v.sum()
        if not (total > 1e-280 and np.isfinite(total)):
            return False
        v /= total
        out[r] = v
    return True


def _logsumexp(m: np.ndarray, axis: int) -> np.ndarray:
    top = m.max(axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    return np.squeeze(top, axis) + np.log(np.exp(m - top).sum(axis=axis))


def _chain_posterior_log(prob: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """`chain_posterior` in log space (O(G·C²) exponentials; only used when the linear pass underflows)."""
    g, c = prob.shape
    with np.errstate(divide="ignore"):
        lp = np.log(prob)
    la = np.empty((g, c))
    lb = np.empty((g, c))
    la[0] = lp[0]
    for r in range(1, g):
        la[r] = _logsumexp(la[r - 1][:, None] - cost, 0) + lp[r]
        la[r] -= la[r].max()
    lb[-1] = 0.0
    for r in range(g - 2, -1, -1):
        lb[r] = _logsumexp((lp[r + 1] + lb[r + 1])[None, :] - cost, 1)
        lb[r] -= lb[r].max()
    lq = la + lb
    lq -= lq.max(axis=1, keepdims=True)
    q = np.exp(lq)
    return q / q.sum(axis=1, keepdims=True)


def row_std(q: np.ndarray) -> np.ndarray:
    cols = np.arange(q.shape[1], dtype=np.float64)
    m = q @ cols
    return np.sqrt(np.maximum(q @ cols**2 - m**2, 0.0))


def mode_basin(p: np.ndarray, col: float) -> tuple[int, int]:
    """Inclusive column range of the mode of one heatmap row p (C,) that holds column `col`: the significant modes
    of `find_modes` split the row at the lowest point (3-tap smoothed) between neighbouring modes; a row with one
    mode is one basin (0, C − 1)."""
    c = p.size
    modes = sorted(find_modes(p))
    if len(modes) < 2:
        return 0, c - 1
    s = np.convolve(np.pad(np.asarray(p, dtype=np.float64), 1, mode="edge"), np.ones(3) / 3, mode="valid")
    cuts = [m + int(np.argmin(s[m:n + 1])) for m, n in zip(modes[:-1], modes[1:])]
    edges = [0] + cuts + [c]
    k = int(np.searchsorted(cuts, col, side="right"))
    return edges[k], max(edges[k], edges[k + 1] - 1)


def basin_moments(weights: np.ndarray, lo: int, hi: int) -> tuple[float, float]:
    """Mean and variance (grid columns) of the row distribution `weights` restricted to columns lo..hi."""
    cols = np.arange(lo, hi + 1, dtype=np.float64)
    w = np.asarray(weights[lo:hi + 1], dtype=np.float64)
    total = w.sum()
    if total <= 0:
        mid = 0.5 * (lo + hi)
        return mid, 0.0
    m = float((w * cols).sum() / total)
    return m, float((w * (cols - m) ** 2).sum() / total)


# ---------------------------------------------------------------------------------------------------- clicks
def click_to_grid(click, shape: tuple[int, int], flipped: bool, grid: int = bg.GRID) -> tuple[int, float, int, float]:
    """Input (row, col) → (grid row (nearest), grid column (float, canonical), input row (int), input col)."""
    h, w = shape
    row, col = float(click[0]), float(click[1])
    if not (-0.5 <= row <= h - 0.5 and -0.5 <= col <= w - 0.5):
        raise ValueError(f"click (row {row}, col {col}) lies outside the {h}×{w} image")
    y = int(np.clip(np.rint(row), 0, h - 1))
    x_canonical = (w - 1) - col if flipped else col
    gr = int(np.clip(np.rint(bg.image_row_to_grid(y, h, grid)), 0, grid - 1))
    gc = float(bg.image_col_to_grid(x_canonical, w, grid))
    return gr, gc, y, col


def _land_on_clicks(rows: np.ndarray, mean: np.ndarray, clicks: dict, half_width: float) -> np.ndarray:
    """Shift `mean` (input px) so that each clicked input row {row: col} holds its column exactly; the residual
    falls linearly to zero `half_width` rows away (between clicks closer than that it is interpolated)."""
    index = {int(r): i for i, r in enumerate(rows)}
    anchors = {r: c - mean[index[r]] for r, c in clicks.items() if r in index}
    if not anchors:
        return mean
    ys = sorted(anchors)
    pts = [(float(y), anchors[y]) for y in ys]
    for y in ys:
        for z in (y - half_width, y + half_width):
            if all(abs(z - y2) >= half_width - 1e-9 for y2 in ys):
                pts.append((z, 0.0))
    pts.sort()
    xs, ds = zip(*pts)
    out = mean + np.interp(rows.astype(np.float64), xs, ds, left=0.0, right=0.0)
    for r, c in clicks.items():
        if r in index:
            out[index[r]] = c
    return out


def _as_corrected(res: PectoralResult, **extra) -> CorrectedPectoralResult:
    values = {f.name: getattr(res, f.name) for f in fields(PectoralResult)}
    return CorrectedPectoralResult(**values, **extra)


# ---------------------------------------------------------------------------------------------------- correction
def correct_pectoral(result: PectoralResult, clicks: Sequence, *, smoothness: float = SMOOTHNESS,
                     tolerance: float = CLICK_TOLERANCE) -> CorrectedPectoralResult:
    """The boundary through the user's clicks (module docstring). result: a `PectoralResult` from
    `predict_pectoral` (or a corrected one: its `base` is used); clicks: (row, col) pairs or `BoundaryClick`s in
    input pixel coordinates — ALL clicks so far; a later click on the same grid row replaces an earlier one."""
    base = getattr(result, "base", None) or result
    if base.grid_prob is None:
        raise ValueError("the result carries no heatmap (grid_prob): correct a result of predict_pectoral")
    h, w = base.shape
    prob = np.maximum(np.asarray(base.grid_prob, dtype=np.float64), PROB_FLOOR)
    prob /= prob.sum(axis=1, keepdims=True)
    g, c = prob.shape
    pinned: dict[int, float] = {}
    landing: dict[int, float] = {}
    applied = []
    for click in clicks:
        gr, gc, y, x = click_to_grid(click, base.shape, base.flipped, g)
        pinned[gr] = gc
        landing[y] = x
        applied.append(BoundaryClick(float(y), float(x)))
    if not pinned:
        return _as_corrected(base, base=base, clicks=(), changed_grid_rows=np.zeros(g, bool), smoothness=smoothness)

    cols = np.arange(c, dtype=np.float64)
    allowed = np.ones((g, c), dtype=bool)
    for gr, gc in pinned.items():
        window_cols = np.abs(cols - np.clip(gc, 0, c - 1)) <= tolerance
        if not window_cols.any():
            window_cols[int(np.clip(np.rint(gc), 0, c - 1))] = True
        allowed[gr] = window_cols
    log_p = np.log(prob)
    free = getattr(result, "free_chain", None)
    if free is None or getattr(result, "smoothness", None) != smoothness:
        free = (viterbi_path(log_p, smoothness), row_std(chain_posterior(prob, smoothness)))
    path_free, std_free = free
    path_click = viterbi_path(np.where(allowed, log_p, -np.inf), smoothness)
    q_click = chain_posterior(prob * allowed, smoothness)

    changed = np.abs(path_click - path_free) > CHANGE_TOLERANCE
    pin_rows = np.array(sorted(pinned))
    changed[pin_rows] = True
    mean_g = np.asarray(base.grid_mean, dtype=np.float64).copy()
    var_g = np.asarray(base.grid_var, dtype=np.float64).copy()
    for r in np.flatnonzero(changed):
        lo, hi = mode_basin(base.grid_prob[r], path_click[r])
        mean_g[r] = basin_moments(q_click[r], lo, hi)[0]
        var_g[r] = basin_moments(base.grid_prob[r], lo, hi)[1] + VAR_FLOOR
    mean_g[pin_rows] = [pinned[r] for r in pin_rows]
    shrink = np.minimum(1.0, row_std(q_click) / np.maximum(std_free, 1e-9))
    var_g *= shrink**2

    shown = np.asarray(base.grid_prob, dtype=np.float64).copy()
    shown[changed] = q_click[changed]
    modes = list(base.grid_modes) if base.grid_modes else [find_modes(p) for p in base.grid_prob]
    for r in np.flatnonzero(changed):
        modes[r] = find_modes(shown[r])
    multi_g = np.array([len(m) >= 2 for m in modes])

    muscle = muscle_grid_rows(bg.grid_col_to_image(mean_g, w, g))
    span = np.flatnonzero(muscle).tolist() + pin_rows.tolist()
    muscle = np.zeros(g, dtype=bool)
    muscle[min(span):max(span) + 1] = True
    rows, mean, std, multi = grid_rows_to_input(mean_g, var_g, multi_g, muscle, base.shape, base.flipped)
    mean = _land_on_clicks(rows, mean, landing, LANDING_HALF_WIDTH_GRID_ROWS * h / g)
    unc = float(std.mean()) if std.size else float("nan")
    unc_g = float(np.sqrt(var_g[muscle]).mean()) if muscle.any() else float("nan")
    return CorrectedPectoralResult(base.shape, rows, mean, std, multi, base.flipped, base.orientation_source, unc,
                                   unc_g, mean_g, var_g, shown.astype(np.float32), modes, muscle, base=base,
                                   clicks=tuple(applied), changed_grid_rows=changed, smoothness=smoothness,
                                   free_chain=free)
