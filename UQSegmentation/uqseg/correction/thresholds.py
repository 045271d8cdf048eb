"""Where an uncertain region starts: the threshold on a per-row / per-node / per-voxel uncertainty.

Default rule: a percentile of the model's VALIDATION distribution of the same uncertainty, stored in the
model card as

    card["uncertainty"]["region_threshold"]             the value, in the card's units (below)
    card["uncertainty"]["region_threshold_percentile"]  the percentile it is (DEFAULT_PERCENTILE unless stated)
    card["uncertainty"]["region_threshold_units"]       what it is measured in
    card["uncertainty"]["region_threshold_rule"]        how it was computed (which validation values)

Cards store it in a resolution-independent unit where the task has one, so a case converts it with `scale`:
- mammo-pectoral: boundary σ in 256-grid columns → input pixels: scale = `boundary_grid.col_scale(width)`;
- cxr-landmarks: node std ½(σx + σy) in pixels of a 512-pixel square → input pixels: scale = max(H, W) / 512;
- mammo-breast: predictive entropy in nats → scale 1; ct-organs: predictive variance → scale 1.
`card_to_case_scale(task, shape)` returns these factors.

Order of precedence in `region_threshold`: the caller's value (`override`, already in the case's units), else the
card's value × scale, else — when the card has none (e.g. a user's model, or ct-organs before its card has one) —
the FALLBACK: the `fallback_percentile` of the case's own finite values (`case_values`, in the case's units; pass
the values the regions are searched in, e.g. the muscle rows' σ or the voxels inside the body, not a volume that is
mostly background zeros). The returned `Threshold` says which rule gave the value, for display and provenance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

#: The percentile of the validation distribution used for the shipped cards: regions hold the top decile.
DEFAULT_PERCENTILE = 90.0


def card_to_case_scale(task: str, shape: tuple[int, ...]) -> float:
    """The `scale` for `region_threshold`: the factor from the shipped cards' units to a case's own units, for an
    input of `shape` (rows, cols[, ...]): mammo-pectoral `col_scale(width)`, cxr-landmarks max(H, W) / 512, else 1."""
    if task == "mammo-pectoral":
        from uqseg.mammo.boundary_grid import col_scale

        return float(col_scale(int(shape[1])))
    if task == "cxr-landmarks":
        from uqseg.cxr.inference import REF_SIDE

        return float(max(shape[0], shape[1])) / REF_SIDE
    return 1.0


@dataclass(frozen=True)
class Threshold:
    """A region threshold in the case's units, and where it came from.

    source: "caller" (the user's override), "model card" (card value × scale) or "case percentile" (fallback)."""

    value: float
    source: str
    percentile: float | None = None
    units: str | None = None

    def as_dict(self) -> dict:
        return {"value": self.value, "source": self.source, "percentile": self.percentile, "units": self.units}


def pooled_finite(values: np.ndarray | Iterable[np.ndarray]) -> np.ndarray:
    """One flat float64 array of the finite entries of an array or of a list of arrays (one per image)."""
    if isinstance(values, np.ndarray):
        parts = [values]
    else:
        parts = [np.asarray(v, dtype=np.float64).ravel() for v in values]
    flat = np.concatenate([np.asarray(p, dtype=np.float64).ravel() for p in parts]) if parts else np.zeros(0)
    return flat[np.isfinite(flat)]


def validation_percentile(values: np.ndarray | Iterable[np.ndarray], percentile: float = DEFAULT_PERCENTILE) -> float:
    """The `percentile` (0–100, numpy's linear interpolation) of the validation values pooled over all images.

    values: an array, or one array per validation image (e.g. σ of each image's muscle rows); NaN/inf are dropped.
    Every value counts once, so images with more rows / nodes / pixels weigh more."""
    flat = pooled_finite(values)
    if flat.size == 0:
        raise ValueError("no finite validation values to take a percentile of")
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must be in 0..100, got {percentile}")
    return float(np.percentile(flat, percentile))


def card_threshold_fields(values, percentile: float = DEFAULT_PERCENTILE, *, units: str, rule: str,
                          digits: int = 4) -> dict:
    """The fields an export script adds to ``card["uncertainty"]``: the validation percentile (rounded to `digits`
    decimals), the percentile, its units and a sentence saying which values it was computed over."""
    value = validation_percentile(values, percentile)
    return {"region_threshold": round(value, digits), "region_threshold_percentile": float(percentile),
            "region_threshold_units": units, "region_threshold_rule": rule,
            "region_threshold_values": int(pooled_finite(values).size)}


def card_region_threshold(card: Any) -> tuple[float | None, float | None, str | None]:
    """(value, percentile, units) from a model card (a `ModelCard`, its dict, or None); Nones when absent."""
    if card is None:
        return None, None, None
    getter = card.get if hasattr(card, "get") else (lambda k, d=None: d)
    unc = getter("uncertainty", None) or {}
    if not isinstance(unc, Mapping):
        return None, None, None
    value = unc.get("region_threshold")
    if value is None or not np.isfinite(float(value)):
        return None, None, None
    return float(value), unc.get("region_threshold_percentile"), unc.get("region_threshold_units")


def region_threshold(card: Any = None, case_values=None, *, override: float | None = None, scale: float = 1.0,
                     fallback_percentile: float = DEFAULT_PERCENTILE, units: str | None = None) -> Threshold:
    """The threshold for one case (module docstring: caller > card × scale > percentile of the case's values).

    card: the model card (ModelCard or dict) or None. case_values: the case's own uncertainty values (any shape,
    the case's units), needed only for the fallback. override: the caller's threshold in the case's units.
    scale: card units → the case's units (`card_to_case_scale`). units: a label for the result (default: the
    card's units when scale is 1, else None)."""
    if override is not None:
        return Threshold(float(override), "caller", None, units)
    value, pct, card_units = card_region_threshold(card)
    if value is not None:
        if units is None and scale == 1.0:
            units = card_units
        return Threshold(value * float(scale), "model card", None if pct is None else float(pct), units)
    if case_values is None:
        raise ValueError("the model card has no uncertainty.region_threshold: give case_values (fallback) or override")
    return Threshold(validation_percentile(case_values, fallback_percentile), "case percentile",
                     float(fallback_percentile), units)
