"""Task `cxr-landmarks`: lungs and heart as landmark rings with per-node uncertainty on frontal chest radiographs
(variational HybridGNet; Cosarinsky et al., "CheXmask-U", MIDL 2026; Gaggion et al., IEEE TMI 2023).

Files written per case (the contract: docs/cli-contract.md); positions are pixel-centre indices (x = column, y = row) of
the input image, stds in input pixels unless stated:
- landmarks.csv — `node, organ, mean_x, mean_y, std_x, std_y, raw_std_x, raw_std_y`, 120 lines (right_lung 0..43,
  left_lung 44..93, heart 94..119, each organ a closed ring in annotation order); mean and population std over N
  latent samples (`raw_std_*`); `std_*` = the std every other output shows: the raw std combined with the model's
  node std head, sqrt(raw² + s²) per axis (`uqseg.cxr.std_head`, cxr-hybridgnet-vae 1.2.0), and/or calibrated per
  node by the model's node calibration (`uqseg.cxr.calibration`, 1.1.0), equal to raw_std_* for a model with
  neither.
- segmentation.seg.nrrd — segments right_lung (1), left_lung (2), heart (3): the mean rings filled (pixel centres
  inside), heart painted last; the input's own grid and geometry.
- right_lung.mrk.json, left_lung.mrk.json, heart.mrk.json — closed curves through the mean nodes (LPS mm), the
  per-node (calibrated) std ½ (σ_x·spacing_x + σ_y·spacing_y) in mm as the control-point measurement `std`.
- preview.png — the image, contours, nodes coloured by their (calibrated) std with a colour bar.
- summary.json — `image_uncertainty` = mean RAW node std ½ (σ_x + σ_y) over the 120 nodes in input pixels (the MC
  std: the OOD threshold was derived on it, see uqseg.cxr.inference step 7); `organ_uncertainty` likewise raw;
  `node_calibration` = the map applied to the per-node std (file, form) or null; `node_std_head` = the head that
  added the aleatoric std (file, mean s in input px) or null;
  `image_uncertainty_ref` = the same in pixels of a 512-pixel square (resolution independent); `ood` =
  image_uncertainty_ref above the model card's `ood_threshold_ref` (derived from the validation images);
  `latent_sigma` (mean latent σ), `samples`, `seed`.
Batch export: every case also upserts its row into `<out_dir>/../chexmask_u.csv` (CheXmask-U columns, see
`uqseg.cxr.batch_csv`), so `uqseg predict` on several images leaves one CSV with all of them in DIR.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uqseg.cxr import batch_csv
from uqseg.cxr.calibration import load_calibration
from uqseg.cxr.std_head import load_std_head
from uqseg.cxr.graph import node_organs, organ_slices
from uqseg.cxr.hybridgnet import HybridGNet
from uqseg.cxr.inference import DEFAULT_SAMPLES, LandmarkResult, predict_landmarks
from uqseg.cxr.preview import render_landmark_preview
from uqseg.cxr.rasterise import LABELS, labelmap
from uqseg.errors import InputError
from uqseg.io.geometry import index_to_lps, volume_geometry
from uqseg.io.image import Image
from uqseg.io.input_checks import CHEST_RADIOGRAPH, CheckedInput, check_input, finish_summary
from uqseg.io.write import write_csv, write_curve_markups_json, write_segmentation_nrrd
from uqseg.models.registry import ModelCard, load_network
from uqseg.tasks.base import CaseResult, RunOptions
from uqseg.tasks.table import task_identity

SEGMENT_COLOURS = {"right_lung": (0.25, 0.65, 1.0), "left_lung": (0.3, 0.85, 0.4), "heart": (0.95, 0.35, 0.35)}
ARCH_KEYS = ("input_size", "latent", "widths", "stem", "graph_channels", "fine_channels", "k", "skip", "skip_stages",
             "skip_channels")


def build_model(architecture: dict) -> HybridGNet:
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in architecture.items() if k in ARCH_KEYS}
    return HybridGNet(**kwargs)


class CxrLandmarksTask:
    id, ndim, description = task_identity("cxr-landmarks")

    def load(self, card: ModelCard, device):
        net = load_network(card, build_model, device)
        # the card's node calibration, checked like the weights (None for a card without one: raw std, as before)
        net.node_calibration = load_calibration(card)
        # the card's node std head (1.2.0 on), checked like the weights; None: the std is the MC std. Set past
        # nn.Module's attribute hook so it is NOT a submodule: it has its own file and sha256, and the network's
        # state_dict (what fine-tuning saves as weights.safetensors) stays the network's tensors alone
        object.__setattr__(net, "node_std_head", load_std_head(card, net.head.c_in, device))
        return net

    def predict(self, image: Image, model, options: RunOptions) -> CaseResult:
        samples = options.samples
        if samples is not None and int(samples) < 2:  # a per-case line naming the file, like every refusal
            raise InputError(image.meta.get("path"), f"--samples {samples}: cxr-landmarks needs at least 2 samples to "
                                                     f"estimate a standard deviation (default {DEFAULT_SAMPLES})")
        checked = check_input(image, CHEST_RADIOGRAPH)  # refuses what the model cannot see; fills NaN (flagged)
        result = predict_landmarks(checked.image, model, options.device, samples=samples, seed=options.seed or 0)
        return CaseResult(checked.image, result, checked, options)

    def write(self, result: CaseResult, case_dir: Path) -> dict:
        return write_outputs(result.image, result.prediction, result.options.card, Path(case_dir),
                             seed=result.options.seed or 0, checks=result.checks)

    def summarise(self, result: CaseResult) -> dict:
        return summarise(result.prediction, result.options.card, seed=result.options.seed or 0, checks=result.checks)


def node_std_mm(image: Image, result: LandmarkResult) -> np.ndarray:
    sx, sy = float(image.spacing[0]), float(image.spacing[1])
    return 0.5 * (result.std[:, 0] * sx + result.std[:, 1] * sy)


LANDMARK_COLUMNS = ["node", "organ", "mean_x", "mean_y", "std_x", "std_y", "raw_std_x", "raw_std_y"]


def landmark_rows(result: LandmarkResult) -> list[tuple]:
    """The 120 rows of landmarks.csv (`LANDMARK_COLUMNS`): input pixels, means to 3 and stds to 4 decimals; std_* the
    std shown (calibrated when the model has a node calibration), raw_std_* the MC std of the latent samples."""
    organs = node_organs()
    return [(i, organs[i], round(float(m[0]), 3), round(float(m[1]), 3), round(float(s[0]), 4), round(float(s[1]), 4),
             round(float(r[0]), 4), round(float(r[1]), 4))
            for i, (m, s, r) in enumerate(zip(result.mean, result.std, result.mc_std))]


def _calibration_entry(result: LandmarkResult, card: ModelCard) -> dict | None:
    cal = result.calibration
    if cal is None:
        return None
    return {"file": Path(cal.file).name if cal.file else None, "form": cal.form,
            "sha256": (card.get("node_calibration") or {}).get("sha256"),
            "applies_to": "std_x, std_y of landmarks.csv, the curves' std, the preview colours, chexmask_u.csv; "
                          "raw_std_x, raw_std_y and image_uncertainty are the MC std"}


def _std_head_entry(result: LandmarkResult, card: ModelCard) -> dict | None:
    if result.aleatoric is None:
        return None
    spec = card.get("node_std_head") or {}
    return {"file": spec.get("file"), "sha256": spec.get("sha256"),
            "mean_aleatoric_std": round(float(np.mean(result.aleatoric)), 4),
            "units": "input pixels (per-axis std s of the node error, the same for x and y)",
            "applies_to": "std_x, std_y of landmarks.csv = sqrt(raw_std² + s²) per axis, the curves' std, the preview "
                          "colours, chexmask_u.csv; raw_std_x, raw_std_y and image_uncertainty are the MC std"}


def summarise(result: LandmarkResult, card: ModelCard, seed: int = 0, checks: CheckedInput | None = None) -> dict:
    """summary.json without `files` (module docstring): image_uncertainty, ood and the flags."""
    threshold = card.get("uncertainty", {}).get("ood_threshold_ref")
    ood = bool(threshold is not None and result.image_uncertainty_ref > threshold)
    summary = {
        "task": "cxr-landmarks",
        "image_uncertainty": round(result.image_uncertainty, 4),
        "image_uncertainty_units": "input pixels (mean over the 120 nodes of ½ (raw_std_x + raw_std_y), the MC std "
                                   "before the node std head and any node calibration)",
        "image_uncertainty_ref": round(result.image_uncertainty_ref, 4),
        "ood_threshold_ref": threshold,
        "ood": ood,
        "latent_sigma": round(result.latent_sigma_mean, 5),
        "samples": result.samples,
        "seed": seed,
        "organ_uncertainty": {o: round(float(result.raw_node_std[sl].mean()), 4)
                              for o, sl in organ_slices().items()},
        "node_calibration": _calibration_entry(result, card),
        "node_std_head": _std_head_entry(result, card),
        "square_frame": {"size": result.frame.size, "pad_top": result.frame.pad_top,
                         "pad_left": result.frame.pad_left},
    }
    return finish_summary(summary, checks)  # flags / flag_details; the input findings join ood


def write_outputs(image: Image, result: LandmarkResult, card: ModelCard, out: Path, seed: int = 0,
                  checks: CheckedInput | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    write_csv(out / "landmarks.csv", LANDMARK_COLUMNS, landmark_rows(result))
    files["landmarks"] = "landmarks.csv"

    write_segmentation_nrrd(out / "segmentation.seg.nrrd", labelmap(result.mean, result.shape),
                            [{"name": o, "label": LABELS[o], "color": SEGMENT_COLOURS[o]} for o in LABELS],
                            **volume_geometry(image))
    files["segmentation"] = "segmentation.seg.nrrd"

    std_mm = node_std_mm(image, result)
    unit = "mm" if image.meta.get("spacing_source") != "default" else "mm (1 mm per pixel: spacing unknown)"
    curves = {}
    for organ, sl in organ_slices().items():
        pts = index_to_lps(image, result.mean[sl, 0], result.mean[sl, 1])
        write_curve_markups_json(out / f"{organ}.mrk.json", pts, name=organ, closed=True, point_values=std_mm[sl],
                                 value_name="std", value_unit="mm",
                                 description=f"per-node std ½(σx·sx + σy·sy) of the {organ} contour, {unit}")
        curves[organ] = f"{organ}.mrk.json"
    files["curves"] = curves

    summary = summarise(result, card, seed, checks)
    ood = summary["ood"]
    why = f" ({', '.join(checks.ood_flags)})" if checks and checks.ood_flags else ""
    path = image.meta.get("path", "")
    title = (f"{Path(path).name if path else 'image'}  {result.shape[1]}x{result.shape[0]}  N={result.samples}\n"
             f"mean MC node std {result.image_uncertainty:.2f} px ({result.image_uncertainty_ref:.2f} px @512)  "
             f"latent σ {result.latent_sigma_mean:.3f}  {'OOD' + why if ood else 'in distribution'}")
    render_landmark_preview(image.array, result.mean, result.node_std, out / "preview.png", title=title)
    files["preview"] = "preview.png"
    batch_csv.upsert_row(out.parent / batch_csv.FILE_NAME,
                         batch_csv.make_row(out.name, result.shape, result.mean, result.std,
                                            result.image_uncertainty, result.latent_sigma_mean, ood))
    files["batch_csv"] = f"../{batch_csv.FILE_NAME}"
    summary["files"] = files
    return summary
