"""Task `mammo-pectoral`: pectoral-muscle boundary with a ±σ band on MLO mammograms (Zech et al., MIDL 2026).

Files written per case (the contract: docs/cli-contract.md):
- boundary.csv — `row, mean_col, std_col, multimodal`, one line per input row holding muscle; input pixel indices
  (pixel centres), std in input pixels (columns).
- pectoral.seg.nrrd — segment `pectoral_muscle` on the input's pixel grid and geometry.
- boundary.mrk.json — open curve along the mean boundary (LPS mm); control points every k-th muscle row (at most
  ~60 points, first and last row always included) with the per-point σ in mm (column spacing) as measurement `std`.
- preview.png — image, band, mean boundary, multimodal rows.
- summary.json — `image_uncertainty` = mean σ over muscle rows in input pixels; `multimodal`; `ood` = the
  resolution-independent `image_uncertainty_grid` (grid columns) above the card's validation-derived threshold;
  `pectoral_agreement` = agreement with the mammo-breast segmentation's pectoral muscle on the same image (its fast
  deterministic pass; mean row-wise boundary distance, Dice, `disagree` flag — `uqseg.mammo.pectoral_agreement`),
  or `compared: false` with the reason when no mammo-breast model is installed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uqseg.io.geometry import index_to_lps, volume_geometry
from uqseg.io.image import Image
from uqseg.io.input_checks import MAMMOGRAM, CheckedInput, check_input, finish_summary
from uqseg.io.write import write_csv, write_curve_markups_json, write_segmentation_nrrd
from uqseg.mammo.cross_check import agreement_with_boundary_result
from uqseg.mammo.pectoral import PectoralResult, predict_pectoral
from uqseg.mammo.pectoral_model import pectoral_net_for
from uqseg.mammo.pectoral_preview import render_pectoral_preview
from uqseg.models.registry import ModelCard, load_network
from uqseg.tasks.base import CaseResult, RunOptions
from uqseg.tasks.table import task_identity

MAX_CURVE_POINTS = 60
PECTORAL_COLOR = (0.85, 0.45, 0.35)


class MammoPectoralTask:
    id, ndim, description = task_identity("mammo-pectoral")

    def load(self, card: ModelCard, device):
        return load_network(card, pectoral_net_for, device)

    def predict(self, image: Image, model, options: RunOptions) -> CaseResult:
        checked = check_input(image, MAMMOGRAM)  # refuses what the model cannot see; fills NaN pixels (flagged)
        result = predict_pectoral(checked.image, model, options.device)
        agreement = agreement_with_boundary_result(checked.image, result, options.device)
        return CaseResult(checked.image, result, checked, options, extra={"pectoral_agreement": agreement})

    def write(self, result: CaseResult, case_dir: Path) -> dict:
        summary = write_outputs(result.image, result.prediction, result.options.card, Path(case_dir),
                                checks=result.checks)
        summary.update(result.extra)
        return summary

    def summarise(self, result: CaseResult) -> dict:
        return {**summarise(result.prediction, result.options.card, checks=result.checks), **result.extra}


def curve_point_indices(n: int, max_points: int = MAX_CURVE_POINTS) -> np.ndarray:
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, max_points)).astype(int))


BOUNDARY_COLUMNS = ["row", "mean_col", "std_col", "multimodal"]


def boundary_rows(result: PectoralResult) -> list[tuple]:
    """The rows of boundary.csv (`BOUNDARY_COLUMNS`): one per muscle row, input pixels to 3 decimals."""
    return [(int(r), round(float(m), 3), round(float(s), 3), int(bool(f)))
            for r, m, s, f in zip(result.rows, result.mean_col, result.std_col, result.multimodal)]


def summarise(result: PectoralResult, card: ModelCard, checks: CheckedInput | None = None) -> dict:
    """summary.json without `files` and `pectoral_agreement` (module docstring): image_uncertainty and the flags."""
    threshold = card.get("uncertainty", {}).get("ood_threshold_grid")
    ood = bool(threshold is not None and np.isfinite(result.image_uncertainty_grid)
               and result.image_uncertainty_grid > threshold)
    summary = {
        "task": "mammo-pectoral",
        "image_uncertainty": _finite_or_none(result.image_uncertainty),
        "image_uncertainty_units": "input pixels (mean boundary σ over muscle rows)",
        "image_uncertainty_grid": _finite_or_none(result.image_uncertainty_grid),
        "ood_threshold_grid": threshold,
        "multimodal": result.is_multimodal,
        "ood": ood,
        "muscle_found": bool(result.rows.size > 0),
        "muscle_rows": int(result.rows.size),
        "multimodal_rows": int(result.multimodal.sum()),
        "orientation": {"flipped_for_model": result.flipped, "decided_by": result.orientation_source},
    }
    return finish_summary(summary, checks)  # flags / flag_details; the input findings join ood


def write_outputs(image: Image, result: PectoralResult, card: ModelCard, out: Path,
                  checks: CheckedInput | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    write_csv(out / "boundary.csv", BOUNDARY_COLUMNS, boundary_rows(result))
    files["boundary"] = "boundary.csv"
    geom = volume_geometry(image)
    write_segmentation_nrrd(out / "pectoral.seg.nrrd", result.muscle_mask(),
                            [{"name": "pectoral_muscle", "label": 1, "color": PECTORAL_COLOR}], **geom)
    files["segmentation"] = "pectoral.seg.nrrd"
    if result.rows.size >= 2:
        k = curve_point_indices(result.rows.size)
        pts = index_to_lps(image, result.mean_col[k], result.rows[k])
        std_mm = result.std_col[k] * float(image.spacing[0])
        write_curve_markups_json(out / "boundary.mrk.json", pts, name="pectoral boundary", closed=False,
                                 point_values=std_mm, value_name="std", value_unit="mm",
                                 description="per-point standard deviation of the pectoral boundary (mm)")
        files["curve"] = "boundary.mrk.json"
    summary = summarise(result, card, checks)
    flags = [name for name in ("multimodal", "ood") if summary[name]] + (checks.ood_flags if checks else [])
    if not summary["muscle_found"]:
        flags.append("no muscle found")
    source = Path(image.meta.get("path") or "")
    caption = (f"{source.parent.name}/{source.name}\nmean sigma {summary['image_uncertainty'] or float('nan'):.1f} px"
               f"   flags: {', '.join(flags) or 'none'}")
    render_pectoral_preview(image.array, result, out / "preview.png", caption=caption)
    files["preview"] = "preview.png"
    summary["files"] = files
    return summary


def _finite_or_none(x: float):
    return float(x) if x is not None and np.isfinite(x) else None
