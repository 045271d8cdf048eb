"""The two mammography models check each other on MLO views: the `pectoral_agreement` block of both summaries.

`mammo-breast` segments the pectoral muscle; `mammo-pectoral` delineates its boundary. On an MLO view each task also
runs the other task's shipped model (cached per device) and `uqseg.mammo.pectoral_agreement.compare` reports the mean
row-wise distance between the two delineations (mm, along image rows), their Dice and a `disagree` flag:
- `agreement_for_breast_result(image, breast_result, device)`: for mammo-breast's summary (its MC-dropout label map
  against one pass of the pectoral-boundary model, whose uncertainty is free);
- `agreement_with_boundary_result(image, boundary_result, device)`: for mammo-pectoral's summary (the boundary against
  mammo-breast's fast deterministic pass).
When the view is not MLO, or the other model is not installed or refuses the image, the block says
``compared: false`` with the reason. Both networks are built here from their cards (`load_network`), so neither task
module imports the other.
"""

from __future__ import annotations

import numpy as np

from uqseg.errors import InputError
from uqseg.io.image import Image
from uqseg.mammo.breast import BreastResult, predict_breast
from uqseg.mammo.breast_model import PECTORAL, breast_net_for
from uqseg.mammo.orientation import CC_VIEWS, MLO_VIEWS
from uqseg.mammo.pectoral import predict_pectoral
from uqseg.mammo.pectoral_agreement import compare
from uqseg.mammo.pectoral_model import pectoral_net_for
from uqseg.models.registry import ModelError, find_model, load_network

_MODELS: dict = {}  # (task, device) -> (card, network) or None
_NETWORK_FOR = {"mammo-pectoral": pectoral_net_for, "mammo-breast": breast_net_for}


def _default_model(task: str, device):
    """(card, network) of `task`'s default model, cached per device; None when none is installed or it is refused."""
    key = (task, str(device))
    if key not in _MODELS:
        try:
            card = find_model(task)
            _MODELS[key] = (card, load_network(card, _NETWORK_FOR[task], device))
        except ModelError:
            _MODELS[key] = None
    return _MODELS[key]


def is_mlo_candidate(image: Image, result: BreastResult) -> tuple[bool, str]:
    view = (image.meta.get("view") or "").upper()
    if view in MLO_VIEWS:
        return True, f"view {view}"
    if view in CC_VIEWS:
        return False, f"not compared: cranio-caudal view ({view}); the pectoral-boundary model needs an MLO view"
    if view:
        return False, f"not compared: view {view} is neither CC nor MLO"
    if result.pectoral_found:
        return True, "view unknown, pectoral muscle found by the segmentation"
    return False, "not compared: view unknown and no pectoral muscle found by the segmentation"


def agreement_for_breast_result(image: Image, result: BreastResult, device) -> dict:
    """The `pectoral_agreement` block of summary.json (module docstring)."""
    candidate, why = is_mlo_candidate(image, result)
    if not candidate:
        return {"compared": False, "reason": why}
    loaded = _default_model("mammo-pectoral", device)
    if loaded is None:
        return {"compared": False, "reason": "no mammo-pectoral model installed"}
    card, model = loaded
    boundary = predict_pectoral(image, model, device)
    block = compare(result.label == PECTORAL, boundary.rows, boundary.mean_col, boundary.muscle_mask(),
                    chest_wall_right=result.prepared.flipped, column_spacing_mm=result.prepared.input_spacing_mm[0])
    return {"compared": True, "reason": why, "other_task": "mammo-pectoral",
            "other_model": {"id": card.id, "version": card.version},
            "other_image_uncertainty_px": None if not np.isfinite(boundary.image_uncertainty)
            else round(float(boundary.image_uncertainty), 3), **block}


def agreement_with_boundary_result(image: Image, boundary, device) -> dict:
    """The `pectoral_agreement` block for mammo-pectoral's summary: this task's model, one fast deterministic pass
    (no MC sampling: ≈ the cost of one network pass at 0.4 mm), compared with the boundary model's result
    `boundary` (a `PectoralResult`) by `uqseg.mammo.pectoral_agreement.compare`."""
    loaded = _default_model("mammo-breast", device)
    if loaded is None:
        return {"compared": False, "reason": "no mammo-breast model installed"}
    card, model = loaded
    try:
        seg = predict_breast(image, model, device, fast=True, input_maps=False)
    except InputError as error:
        return {"compared": False, "reason": f"mammo-breast refuses this image: {error.reason}"}
    block = compare(seg.label == PECTORAL, boundary.rows, boundary.mean_col, boundary.muscle_mask(),
                    chest_wall_right=seg.prepared.flipped, column_spacing_mm=seg.prepared.input_spacing_mm[0])
    return {"compared": True, "reason": "MLO view (mammo-pectoral runs on MLO views only)",
            "other_task": "mammo-breast", "other_model": {"id": card.id, "version": card.version},
            "other_method": "one deterministic pass (the mammo-breast task's own summary compares its MC-dropout "
                            "label map)", **block}
