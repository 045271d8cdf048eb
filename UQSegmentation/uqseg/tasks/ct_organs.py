"""Task `ct-organs`: organ segmentation of a CT volume by a Stochastic Segmentation Network with a Mixture-of-Bases
logit covariance (Kampen, Aspe et al., NLDL 2026), with the voxel predictive variance Var[σ(η)].

Input: a CT volume — a DICOM series folder, or NIfTI / NRRD / MHA — checked by `uqseg.io.ct.require_ct` (a 2-D
image, a thin or non-CT volume, a mask or label map are refused with the reason).

Files written per case (the contract: docs/cli-contract.md), all on the input's own grid (same size, spacing, origin and
direction as the input volume):
- segmentation.seg.nrrd — one segment per organ of the model (label c = organs[c − 1]), names and colours;
- probability.nrrd — float32, the MC estimate of Eq. (14) that the voxel belongs to an organ, 1 − p̄_background
  (for a one-organ model: p̄ of that organ);
- variance.nrrd — float32, the predictive variance Σ_{c ≥ 1} Var[p_c] over the organ classes, probability²
  (for a one-organ model: Var[p] of that organ; at most 0.25 per class);
- entropy.nrrd — float32, entropy of p̄ in nats;
- sample_<i>.seg.nrrd — the label maps of the first `keep` samples (default 3), for "accept the alternative";
- ood.nrrd — float32, the out-of-distribution score (uqseg.ct.ood: k-NN distance of each cell's intensity-context
  descriptor to the training patients', Sun et al. 2022; dimensionless), written when the model
  ships an `ood.safetensors` (card section `ood`); above the card's `ood.threshold` a voxel is unlike the training
  patients' tissue;
- preview.png — the axial working-grid slice with the most variance in the organs: outlines + variance overlay;
- summary.json — `image_uncertainty` = the mean of variance.nrrd over the voxels labelled as any organ, computed
  on the working grid (isotropic model spacing, so independent of the input resolution), probability²; per organ:
  volume (ml), mean variance and mean entropy inside it and, with an OOD map, `ood_fraction` (share of its voxels
  above the OOD threshold) and `ood` (that share > 0.5: the organ lies mostly in tissue unlike the training data);
  `fragments` (uqseg.ct.fragments: the organ's detached fragments ≥ 1 ml — connected pieces that do not touch its
  largest piece — largest first, with volume, LPS centroid and working-grid slices) and `fragments_ml`;
  `ood_map` (threshold, units, share of body voxels (HU > −500) above it, their 95th percentile); `ood` = any
  predicted organ `ood`, or image_uncertainty above the card's `uncertainty.ood_threshold` (when it gives one);
  `variance_display_threshold` (the card's, used by the preview
  and by Slicer to start colouring the overlay); `active_fraction` = share of the noise tiles that were sampled (for moments
  outside the closed form, or for the kept sample labels; uqseg.ct.mc_estimate). The flag `detached_fragments`
  (in `flags`, with the organs and volumes in `flag_details`) is raised when any organ has a detached fragment: a
  piece of an organ apart from its main body is most often a confident false positive, which neither the variance
  nor the OOD map shows; it does not set `ood` (the image is not unlike the training data for it).

Options: `samples` (k, default 30; 0 or `fast` = one deterministic pass: softmax(μ), zero variance), `seed`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uqseg.ct.fragments import organ_fragments
from uqseg.ct.inference import DEFAULT_SAMPLES, CtPrediction, predict_ct
from uqseg.ct.network import StochasticSegNet3d, load_weights
from uqseg.ct.ood import BODY_HU, ContextKnn, organ_ood_fractions
from uqseg.ct.preview import render_ct_preview
from uqseg.io.ct import require_ct
from uqseg.io.geometry import volume_geometry
from uqseg.io.image import Image
from uqseg.io.input_checks import CT, DETACHED_FRAGMENTS, CheckedInput, check_input, finish_summary
from uqseg.io.write import write_segmentation_nrrd, write_volume_nrrd
from uqseg.metrics.information import entropy
from uqseg.models.registry import ModelCard, ModelError, checked_file, load_network
from uqseg.tasks.base import CaseResult, RunOptions
from uqseg.tasks.table import task_identity

#: segment colours (0..1), after Slicer's GenericAnatomyColors
ORGAN_COLOURS = {"liver": (0.87, 0.51, 0.40), "spleen": (0.62, 0.42, 0.64), "stomach": (0.85, 0.72, 0.35),
                 "aorta": (0.88, 0.38, 0.30), "pancreas": (0.98, 0.71, 0.44), "heart": (0.81, 0.43, 0.33),
                 "pulmonary_artery": (0.0, 0.59, 0.81)}
DEFAULT_KEEP = 3
VARIANCE_QUANTUM = 1.0 / 2**16
OOD_QUANTUM = 1.0 / 2**10
#: an organ is out of distribution when more than this share of its voxels is (the issue's "mostly")
ORGAN_OOD_SHARE = 0.5


def build_model(card: ModelCard) -> StochasticSegNet3d:
    a = card["architecture"]
    return StochasticSegNet3d(classes=int(a["classes"]), form=a["form"], rank=int(a["rank"]), bases=int(a["bases"]),
                              block=int(a["block"]), filters=tuple(a["filters"]), strides=a.get("strides"),
                              log_var_min=float(a["log_var_range"][0]), log_var_max=float(a["log_var_range"][1]))


def load_ood(card: ModelCard) -> ContextKnn | None:
    """The card's OOD statistics (`ood.file` beside the weights: the training patients' context descriptors, checked
    like the weights by `checked_file` against `ood.sha256`) with the card's `ood.threshold`; None when the card has
    no `ood` section."""
    spec = card.card.get("ood") or {}
    if not spec.get("file"):
        return None
    path = card.folder / spec["file"]
    checked_file(card, path, spec.get("sha256"), "OOD statistics", "ood.sha256")
    try:
        knn = ContextKnn.load(path)
    except Exception as e:  # a truncated or foreign file: the model folder's fault, said as such
        raise ModelError(f"{path}: cannot be read as OOD statistics ({e})") from None
    if spec.get("threshold") is not None:
        knn.threshold = float(spec["threshold"])
    return knn


def predict_organs(image: Image, model, card: ModelCard, device, samples=None, seed: int = 0, fast: bool = False,
                   keep: int = DEFAULT_KEEP) -> CtPrediction:
    """The model's prediction for a CT volume (`uqseg.ct.inference.predict_ct` with the card's working spacing, HU
    window and organs); `samples` k (default DEFAULT_SAMPLES; 0 or `fast`: one deterministic pass, no samples kept).
    The OOD map comes with it (from the working-grid HU, fast included) when the loaded model carries OOD statistics
    (`model.ood_statistics`, set by CtOrgansTask.load)."""
    require_ct(image, image.meta.get("path"))
    samples = DEFAULT_SAMPLES if samples is None else int(samples)
    if fast or samples <= 0:
        samples, keep = 0, 0
    prep = card["preprocessing"]
    return predict_ct(image, model, float(prep["spacing_mm"]), tuple(prep["hu_window"]), list(card["organs"]),
                      device, samples=samples, seed=seed, keep=keep, ood=getattr(model, "ood_statistics", None))


class CtOrgansTask:
    id, ndim, description = task_identity("ct-organs")

    def load(self, card: ModelCard, device):
        net = load_network(card, lambda arch: build_model(card), device, apply=load_weights)
        net.ood_statistics = load_ood(card)
        return net

    def predict(self, image: Image, model, options: RunOptions) -> CaseResult:
        checked = check_input(image, CT)  # refuses what the model cannot see; fills NaN voxels with air (flagged)
        prediction = predict_organs(checked.image, model, options.card, options.device, options.samples,
                                    options.seed or 0, bool(options.fast))
        return CaseResult(checked.image, prediction, checked, options)

    def write(self, result: CaseResult, case_dir: Path) -> dict:
        return write_outputs(result.image, result.prediction, result.options.card, Path(case_dir),
                             result.options.seed or 0, checks=result.checks)

    def summarise(self, result: CaseResult) -> dict:
        return summarise(result.prediction, result.options.card, result.options.seed or 0, checks=result.checks)


def segments_for(organs: list[str]) -> list[dict]:
    return [{"name": o, "label": i, "color": ORGAN_COLOURS.get(o, (0.9, 0.8, 0.2))}
            for i, o in enumerate(organs, start=1)]


def summary_numbers(pred: CtPrediction, threshold: float | None = None) -> dict:
    """image_uncertainty, the per-organ numbers and the OOD summary (with the OOD map's `threshold`), on the working
    grid (module docstring)."""
    var = pred.work_variance[1:].sum(0)
    ent = entropy(pred.work_probability, axis=0)
    organ = pred.work_label > 0
    voxel_ml = float(np.prod(pred.grid.spacing)) / 1000.0
    per_organ = {}
    for i, name in enumerate(pred.organs, start=1):
        m = pred.work_label == i
        per_organ[name] = {"volume_ml": round(float(m.sum()) * voxel_ml, 2),
                           "mean_variance": round(float(var[m].mean()), 6) if m.any() else None,
                           "mean_entropy_nats": round(float(ent[m].mean()), 5) if m.any() else None}
    for name, parts in organ_fragments(pred.work_label, pred.organs, pred.grid.spacing, pred.grid.origin).items():
        per_organ[name]["fragments"] = parts["fragments"]
        per_organ[name]["fragments_ml"] = parts["fragments_ml"]
    score = float(var[organ].mean()) if organ.any() else None
    out = {"image_uncertainty": score, "organs": per_organ, "ood_map": None}
    if pred.work_ood is not None and threshold is not None:
        fractions = organ_ood_fractions(pred.work_ood, pred.work_label, pred.organs, threshold)
        for name, f in fractions.items():
            per_organ[name]["ood_fraction"] = f
            per_organ[name]["ood"] = bool(f is not None and f > ORGAN_OOD_SHARE)
        body = pred.work_hu > BODY_HU
        vals = pred.work_ood[body] if body.any() else pred.work_ood.ravel()
        out["ood_map"] = {"threshold": round(float(threshold), 4),
                          "units": "k-NN distance of the intensity-context descriptor to the training patients' "
                                   "(dimensionless)",
                          "body_fraction_above": round(float((vals > threshold).mean()), 4),
                          "body_p95": round(float(np.percentile(vals, 95)), 3),
                          "organs_ood": [n for n in fractions if per_organ[n]["ood"]]}
    return out


def summarise(pred: CtPrediction, card: ModelCard, seed: int = 0, checks: CheckedInput | None = None) -> dict:
    """summary.json without `files` (module docstring): image_uncertainty, the per-organ numbers and the flags."""
    ood_spec = card.get("ood") or {}
    numbers = summary_numbers(pred, ood_spec.get("threshold"))
    unc = card.get("uncertainty", {})
    threshold = unc.get("ood_threshold")
    score = numbers["image_uncertainty"]
    fast = pred.samples == 0
    summary = {
        "task": "ct-organs",
        "image_uncertainty": score,
        "image_uncertainty_units": "probability^2 (mean predictive variance over the voxels predicted as an organ, "
                                   "on the model's working grid)",
        "variance_units": "probability^2",
        "method": ("fast: one deterministic pass, softmax of the mean logits, no sampling" if fast else
                   f"{card['architecture']['form']} logit covariance; {pred.samples} samples in logit space from one "
                   "network pass per window (Eq. 13-14)"),
        "samples": pred.samples,
        "seed": seed,
        "multimodal": False,
        "ood": bool((not fast and threshold is not None and score is not None and score > threshold)
                    or (numbers["ood_map"] is not None and numbers["ood_map"]["organs_ood"])),
        "ood_threshold": threshold,
        "ood_map": numbers["ood_map"],
        "variance_display_threshold": unc.get("display_threshold"),
        "organs": numbers["organs"],
        "working_grid": {"shape_zyx": list(pred.grid.shape), "spacing_mm": list(pred.grid.spacing),
                         "origin_lps_mm": list(pred.grid.origin), "direction": "identity (axis-aligned LPS)"},
        "windows": pred.windows,
        "active_fraction": pred.active_fraction,
        "inference_ms": pred.timings_ms,
    }
    # flags / flag_details; the input findings join ood, the fragments do not
    return finish_summary(summary, checks, fragment_finding(numbers["organs"]))


def fragment_finding(organs: dict) -> dict:
    """{DETACHED_FRAGMENTS: "liver: 2 detached fragments (15.9 ml), ..."} when any organ has one, else {}."""
    parts = [f"{name}: {len(row['fragments'])} detached fragment{'s' if len(row['fragments']) > 1 else ''} "
             f"({row['fragments_ml']:g} ml)" for name, row in organs.items() if row.get("fragments")]
    if not parts:
        return {}
    return {DETACHED_FRAGMENTS: "; ".join(parts) + " apart from the organ's main body (check them: most often false "
                                                   "positives the variance does not show)"}


def write_outputs(image: Image, pred: CtPrediction, card: ModelCard, out: Path, seed: int = 0,
                  checks: CheckedInput | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    geom = volume_geometry(image)
    segments = segments_for(pred.organs)
    files = {}
    write_segmentation_nrrd(out / "segmentation.seg.nrrd", pred.label, segments, **geom)
    files["segmentation"] = "segmentation.seg.nrrd"
    q = VARIANCE_QUANTUM
    write_volume_nrrd(out / "probability.nrrd", (np.round(pred.organ_probability / q) * q).astype(np.float32), **geom)
    files["probability"] = "probability.nrrd"
    write_volume_nrrd(out / "variance.nrrd", (np.round(pred.variance / q**2) * q**2).astype(np.float32), **geom)
    files["variance"] = "variance.nrrd"
    write_volume_nrrd(out / "entropy.nrrd", (np.round(pred.entropy / q) * q).astype(np.float32), **geom)
    files["entropy"] = "entropy.nrrd"
    if pred.ood is not None:
        write_volume_nrrd(out / "ood.nrrd", (np.round(pred.ood / OOD_QUANTUM) * OOD_QUANTUM).astype(np.float32),
                          **geom)
        files["ood"] = "ood.nrrd"
    if pred.kept_labels is not None:
        files["samples"] = []
        for i, lab in enumerate(pred.kept_labels):
            name = f"sample_{i}.seg.nrrd"
            write_segmentation_nrrd(out / name, lab, segments, **geom)
            files["samples"].append(name)
    summary = summarise(pred, card, seed, checks)
    score, fast = summary["image_uncertainty"], pred.samples == 0
    source = Path(image.meta.get("path") or "")
    flags = (["ood"] if summary["ood"] else []) + (checks.ood_flags if checks else []) + \
        [f for f in summary["flags"] if f == DETACHED_FRAGMENTS]
    caption = (f"{source.name}  {card.id} v{card.version}  "
               f"{'fast' if fast else f'k={pred.samples}'}  mean organ variance "
               f"{score if score is not None else float('nan'):.4f}  flags: {', '.join(flags) or 'none'}")
    colours = [ORGAN_COLOURS.get(o, (0.9, 0.8, 0.2)) for o in pred.organs]
    render_ct_preview(pred.work_hu, pred.work_label, pred.work_variance[1:].sum(0), pred.organs, colours,
                      float(pred.grid.spacing[0]), out / "preview.png", title=caption,
                      threshold=summary["variance_display_threshold"])
    files["preview"] = "preview.png"
    summary["files"] = files
    return summary
