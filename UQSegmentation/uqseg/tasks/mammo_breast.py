"""Task `mammo-breast`: background / breast / pectoral-muscle segmentation of CC and MLO mammograms, raw or processed,
with MC-dropout uncertainty (after Verboom et al., "Deep learning-based breast region segmentation in raw and
processed digital mammograms", JMI 2024 — "maseg").

Files written per case (the contract: docs/cli-contract.md), all on the input's own pixel grid and geometry:
- segmentation.seg.nrrd — segments `breast` (label 1) and `pectoral` (label 2); background is 0.
- uncertainty.nrrd — per-pixel predictive entropy of the mean softmax over the MC-dropout samples, in nats
  (0 … ln 3 = 1.0986), stored as float32 rounded to 1/4096 nats (so that it compresses).
- variance.nrrd — per-pixel variance, over the samples, of the probability of the class the pixel is labelled with
  (one of the per-class variances; all three are summarised in summary.json). Not written with `fast`.
- preview.png — outlines (breast cyan, pectoral orange) over the entropy overlay with a colour bar.
- summary.json — `image_uncertainty` = mean predictive entropy over the pixels labelled breast or pectoral (nats,
  on the 0.4 mm working grid, so independent of the input resolution); `ood` = image_uncertainty above the card's
  validation-derived `ood_threshold`; `pectoral_found`, areas (mm², on the spacing basis reported in
  `preprocessing`), the mean per-class variances and mutual information over the tissue, the preprocessing that was
  applied, and `pectoral_agreement` (below).

Consistency with `mammo-pectoral` (`uqseg.mammo.cross_check`): on MLO views — a DICOM view code MLO/ML/..., or no view code
and a pectoral muscle found by this model — the shipped pectoral-boundary model also runs (one pass, its uncertainty
is free) and `pectoral_agreement` reports the mean row-wise distance between the two delineations, their Dice and a
`disagree` flag (`uqseg.mammo.pectoral_agreement`). On CC views it is null with the reason. `mammo-pectoral`'s own
summary carries the same block (it runs this model's fast pass).

Options (from `uqseg predict`): `samples` (default 20), `seed`, `fast` (one deterministic pass, no MC sampling:
the maps are the softmax entropy of that pass and no variance.nrrd is written; `--samples 0` means the same).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uqseg.io.geometry import volume_geometry
from uqseg.io.image import Image
from uqseg.io.input_checks import MAMMOGRAM, CheckedInput, check_input, finish_summary
from uqseg.io.write import write_segmentation_nrrd, write_volume_nrrd
from uqseg.mammo.breast import BreastResult, predict_breast
from uqseg.mammo.breast_model import breast_net_for
from uqseg.mammo.breast_preprocess import intensity_transform
from uqseg.mammo.breast_preview import render_breast_preview
from uqseg.mammo.cross_check import agreement_for_breast_result
from uqseg.mammo.mc_dropout import DEFAULT_SAMPLES
from uqseg.models.registry import ModelCard, load_network
from uqseg.tasks.base import CaseResult, RunOptions
from uqseg.tasks.table import task_identity

BREAST_COLOUR = (0.95, 0.75, 0.65)
PECTORAL_COLOUR = (0.85, 0.45, 0.35)
SEGMENTS = [{"name": "breast", "label": 1, "color": BREAST_COLOUR},
            {"name": "pectoral", "label": 2, "color": PECTORAL_COLOUR}]
ENTROPY_QUANTUM = 1.0 / 4096


class MammoBreastTask:
    id, ndim, description = task_identity("mammo-breast")

    def load(self, card: ModelCard, device):
        return load_network(card, breast_net_for, device)

    def predict(self, image: Image, model, options: RunOptions) -> CaseResult:
        checked = check_input(image, MAMMOGRAM)  # refuses what the model cannot see; fills NaN pixels (flagged)
        samples = DEFAULT_SAMPLES if options.samples is None else int(options.samples)
        fast = options.fast or samples <= 0
        result = predict_breast(checked.image, model, options.device, samples=max(1, samples),
                                seed=options.seed or 0, fast=fast)
        agreement = agreement_for_breast_result(checked.image, result, options.device)
        return CaseResult(checked.image, result, checked, options, extra={"pectoral_agreement": agreement})

    def write(self, result: CaseResult, case_dir: Path) -> dict:
        return write_outputs(result.image, result.prediction, result.options.card, Path(case_dir),
                             seed=result.options.seed or 0, agreement=result.extra["pectoral_agreement"],
                             checks=result.checks)

    def summarise(self, result: CaseResult) -> dict:
        return summarise(result.prediction, result.options.card, seed=result.options.seed or 0,
                         agreement=result.extra["pectoral_agreement"], checks=result.checks)


def _finite_or_none(x):
    return float(x) if x is not None and np.isfinite(x) else None


def summarise(result: BreastResult, card: ModelCard, seed: int = 0, agreement: dict | None = None,
              checks: CheckedInput | None = None) -> dict:
    """summary.json without `files` (module docstring): image_uncertainty, areas, class variances and the flags."""
    threshold = card.get("uncertainty", {}).get("ood_threshold")
    score = _finite_or_none(result.image_uncertainty)
    fast = result.samples == 0
    ood = bool(not fast and threshold is not None and score is not None and score > threshold)
    tissue = result.work_label != 0
    mi = (float(result.work_mutual_information[tissue].mean())
          if result.work_mutual_information is not None and tissue.any() else None)
    summary = {
        "task": "mammo-breast",
        "image_uncertainty": score,
        "image_uncertainty_units": "nats (mean predictive entropy over the breast and pectoral pixels)",
        "uncertainty_units": "nats",
        "variance_units": "probability^2",
        "method": ("fast: one deterministic pass (dropout off); softmax entropy, no MC sampling" if fast
                   else f"MC dropout: {result.samples} samples (dropout 0.5 active, BatchNorm in eval mode)"),
        "samples": result.samples,
        "seed": seed,
        "multimodal": False,
        "ood": ood,
        "ood_threshold": threshold,
        # where an uncertainty overlay should start colouring (the model's validation pixel error rate reaches 5 %
        # there; below it the MC-dropout entropy of this small model is a near-uniform floor, see the card)
        "uncertainty_display_threshold": card.get("uncertainty", {}).get("display_threshold"),
        "pectoral_found": result.pectoral_found,
        "pectoral_area_mm2": round(result.pectoral_area_mm2, 1),
        "breast_area_mm2": round(result.breast_area_mm2, 1),
        "mean_class_variance": result.class_variance_means(),
        "mean_mutual_information": mi,
        "preprocessing": result.prepared.describe(),
        "pectoral_agreement": agreement,
        "inference_ms": result.timings_ms,
    }
    return finish_summary(summary, checks)  # flags / flag_details; the input findings join ood


def write_outputs(image: Image, result: BreastResult, card: ModelCard, out: Path, seed: int = 0,
                  agreement: dict | None = None, checks: CheckedInput | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    geom = volume_geometry(image)
    files = {}
    write_segmentation_nrrd(out / "segmentation.seg.nrrd", result.label, SEGMENTS, **geom)
    files["segmentation"] = "segmentation.seg.nrrd"
    ent = (np.round(result.entropy / ENTROPY_QUANTUM) * ENTROPY_QUANTUM).astype(np.float32)
    write_volume_nrrd(out / "uncertainty.nrrd", ent, **geom)
    files["uncertainty"] = "uncertainty.nrrd"
    if result.variance is not None:
        var = (np.round(result.variance / ENTROPY_QUANTUM**2) * ENTROPY_QUANTUM**2).astype(np.float32)
        write_volume_nrrd(out / "variance.nrrd", var, **geom)
        files["variance"] = "variance.nrrd"
    summary = summarise(result, card, seed, agreement, checks)
    score, fast = summary["image_uncertainty"], result.samples == 0
    flags = [name for name in ("ood",) if summary[name]] + (checks.ood_flags if checks else [])
    if agreement and agreement.get("disagree"):
        flags.append("pectoral models disagree")
    source = Path(image.meta.get("path") or "")
    view = "/".join(v for v in (image.meta.get("laterality"), image.meta.get("view")) if v)
    agree = ""
    if agreement and agreement.get("compared") and agreement.get("mean_row_distance_mm") is not None:
        agree = f"   vs pectoral model {agreement['mean_row_distance_mm']:.1f} mm"
    caption = (f"{source.parent.name}/{source.name} {view}\n"
               f"mean entropy {score if score is not None else float('nan'):.3f} nats "
               f"({'fast' if fast else f'N={result.samples}'}){agree}   flags: {', '.join(flags) or 'none'}")
    shown, _ = intensity_transform(image)  # what the model saw (raw images log-transformed), before normalisation
    render_breast_preview(shown, result.label, result.entropy, out / "preview.png", title=caption,
                          threshold=summary["uncertainty_display_threshold"])
    files["preview"] = "preview.png"
    summary["files"] = files
    return summary
