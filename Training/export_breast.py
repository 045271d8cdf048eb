"""Ship a trained breast / pectoral run as a model: Resources/Models/<id>/{model.json, weights.safetensors,
uncertainty.png}.

    python Training/export_breast.py --run runs/breast_w8_s3 --eval runs/breast_w8_s3/eval --id mammo-breast-mcd \
        --version 1.0.0

The card records the architecture, the preprocessing, the training recipe and split, the measured validation
numbers of this run (evaluate_breast.py: Dice, Table-6 pectoral FN/FP, uncertainty checks), the targets
(breast Dice ≥ 0.95, pectoral ≥ 0.85 on MLO, the Table-6 counts) and whether they were reached, and the validation-derived `ood` threshold.

Without --run, the shipped weights stay and only the card's post-processing description, validation numbers and
validation-derived uncertainty fields are replaced from --eval (after a change of the engine's post-processing; the
version is kept unless --version is given; run Training/region_thresholds.py --write breast afterwards):

    python Training/export_breast.py --eval runs/breast_pp/eval_val_new --note "..."
"""

from __future__ import annotations

import json
from pathlib import Path

from common import export_parser, model_card, write_model
from run_chain import init_chain
from uqseg.mammo.breast import MIN_PECTORAL_AREA_MM2
from uqseg.mammo.breast_preprocess import DEFAULT_LONG_SIDE_MM, TARGET_SPACING_MM
from uqseg.mammo.mc_dropout import DEFAULT_SAMPLES
TARGETS = {"dice_breast": 0.95, "dice_pectoral_mlo": 0.85}
POSTPROCESSING = (
    "largest connected tissue component with holes filled; largest pectoral component at the chest wall "
    f">= {MIN_PECTORAL_AREA_MM2:g} mm^2, else no pectoral; pectoral row fill (breast pixels between the chest wall and "
    "the muscle's outer edge in a muscle row become pectoral); skin line refined from the image intensities within "
    "4 mm of the tissue edge (uqseg/mammo/breast_skin_line.py); on MLO views a cut below an inframammary-fold notch "
    "(uqseg/mammo/breast_fold.py); rules chosen on the 40 training images")


def display_threshold(bins: list[dict], error_rate: float = 0.05) -> float | None:
    """The entropy (nats) at which the validation pixel error rate reaches `error_rate`: linear interpolation
    between the mean entropies of the first decile bin at or above it and the bin before it."""
    pts = [(b["mean_entropy"], b["error_rate"]) for b in bins if b.get("error_rate") is not None]
    for (h0, e0), (h1, e1) in zip(pts, pts[1:]):
        if e1 >= error_rate > e0:
            return round(h0 + (error_rate - e0) / (e1 - e0) * (h1 - h0), 3)
    return None


def training_stages(run: Path) -> list[dict]:
    """The chain of runs that produced `run` (each `--init` from the previous one's weights), first stage first."""
    return [{"run": path.name, "epochs": c["epochs"], "lr": c["lr"], "train_seconds": c["train_seconds"],
             "init": Path(c["init"]).parent.name if c.get("init") else None} for path, c in init_chain(run)]


def targets_reached(ev: dict) -> dict:
    return {"dice_breast": ev["dice_breast"]["mean"] >= TARGETS["dice_breast"],
            "dice_pectoral_mlo": ev["dice_pectoral"]["mean"] >= TARGETS["dice_pectoral_mlo"]}


def validation_section(ev: dict, note: str) -> dict:
    """The card's `validation` block from evaluate_breast.py's evaluation.json (validation split)."""
    if ev.get("split", "val") != "val":
        raise SystemExit(f"the card takes validation numbers; this evaluation is of the {ev['split']} split")
    return {
        "protocol": "Training/evaluate_breast.py: full inference pipeline (N = %d MC samples) on the 10 "
                    "validation images at their 960x480 input resolution" % ev["samples"],
        "dice_breast": ev["dice_breast"], "dice_pectoral_mlo": ev["dice_pectoral"],
        "dice_tissue": ev["dice_tissue"],
        "dice_breast_fast": ev["dice_breast_fast"], "dice_pectoral_fast": ev["dice_pectoral_fast"],
        "table6_pectoral": {
            "definition": "per image: FN = pectoral muscle in the reference, none segmented; FP = segmented, "
                          "none in the reference",
            "mlo_validation": {"images": ev["images"], "with_muscle": ev["pectoral_reference_images"],
                               "fn": ev["pectoral_fn"], "fp": ev["pectoral_fp"]},
            "cc_real": ({"images": ev["cc_views"]["images"], "fp": ev["cc_views"]["pectoral_fp"],
                         "note": ev["cc_views"]["note"]} if "cc_views" in ev else None),
        },
        "targets": TARGETS, "targets_reached": targets_reached(ev), "note": note,
        "entropy_error_auroc": ev["entropy_error_auroc"], "pixel_error_rate": ev["pixel_error_rate"],
        "entropy_error_bins": ev["entropy_error_bins"],
        "image_uncertainty_vs_1_minus_dice_spearman": ev["image_uncertainty_vs_1_minus_dice_spearman"],
        "agreement_with_pectoral_model": ev.get("agreement_with_pectoral_model"),
        "per_image": [{k: r[k] for k in ("name", "dice_breast", "dice_pectoral", "image_uncertainty")}
                      for r in ev["per_image"]],
    }


def uncertainty_section(ev: dict, width: int) -> dict:
    """The card's validation-derived `uncertainty` fields (the region threshold comes from region_thresholds.py)."""
    floor = next((b for b in ev["entropy_error_bins"] if b["pixels"] and b["entropy_range"][0] > 0), None)
    return {
        "image_uncertainty": "mean predictive entropy (nats) over the pixels labelled breast or pectoral, on the "
                             "0.4 mm working grid",
        "per_image_validation": ev["image_uncertainty"],
        "ood_threshold": ev["ood_threshold"],
        "ood_rule": "image_uncertainty > 1.5 x the largest validation image's value",
        "display_threshold": display_threshold(ev["entropy_error_bins"]),
        "display_threshold_rule": "entropy (nats) at which the validation pixel error rate reaches 5 % "
                                  "(entropy deciles, linear between their means); viewers colour the entropy "
                                  f"overlay from there (dropout 0.5 on {width} feature channels"
                                  + (f"; the lowest validation entropy decile starts at {floor['entropy_range'][0]} "
                                     "nats" if floor else "") + ").",
    }


def update_card(args) -> None:
    """Keep the shipped weights; replace the post-processing description, validation and uncertainty fields."""
    ev = json.loads((args.eval / "evaluation.json").read_text())
    dest = args.models / args.id
    card = json.loads((dest / "model.json").read_text())
    if args.version:
        card["version"] = args.version
    card["inference"]["postprocessing"] = POSTPROCESSING
    card["validation"] = validation_section(ev, args.note)
    card["uncertainty"].update(uncertainty_section(ev, card["architecture"]["width"]))
    write_model(dest, card, None, [args.eval / "uncertainty.png"])  # weights kept: they must match the card
    print(f"updated {dest / 'model.json'} (weights kept); targets reached: {targets_reached(ev)}")


def main(argv=None):
    ap = export_parser(__doc__, id="mammo-breast-mcd", version=None)
    ap.add_argument("--run", type=Path, default=None, help="the training run to ship; without it: keep the weights "
                    "and replace only the card's post-processing, validation and uncertainty fields")
    ap.add_argument("--eval", type=Path, required=True)
    ap.add_argument("--note", default="", help="what the numbers do not say (e.g. why a target was missed)")
    args = ap.parse_args(argv)
    if args.run is None:
        return update_card(args)
    args.version = args.version or "1.0.0"

    config = json.loads((args.run / "config.json").read_text())
    stages = training_stages(args.run)
    ev = json.loads((args.eval / "evaluation.json").read_text())
    dest = args.models / args.id
    from safetensors.torch import load_file

    n_params = sum(t.numel() for k, t in load_file(str(args.run / "weights.safetensors")).items()
                   if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    reached = targets_reached(ev)
    card = model_card(
        id=args.id, version=args.version, task="mammo-breast",
        title="Breast / pectoral-muscle / background segmentation with MC-dropout uncertainty",
        citation="S. D. Verboom et al., \"Deep learning-based breast "
                    "region segmentation in raw and processed digital mammograms: generalization across views and "
                 "vendors\", J. Med. Imaging 11(1), 014001 (2024), doi:10.1117/1.JMI.11.1.014001",
        architecture={
            "name": "BreastSegNet", "backbone": "UNet2d: 4 down-sampling stages, 2x(3x3 conv + BN + ReLU) per stage, "
            "bilinear up-sampling + 1x1 conv halving the channels", "width": config["width"],
            "channels": [config["width"] * 2**i for i in range(5)], "dropout": config["dropout"],
            "dropout_position": "element-wise (nn.Dropout) on the last decoder features, before the 1x1 classifier",
            "classes": ["background", "breast", "pectoral"], "parameters": n_params, "input_multiple": 16,
        },
        preprocessing={
            "spacing": f"resampled to {TARGET_SPACING_MM} mm pixels from ImagerPixelSpacing, else PixelSpacing or the "
                       f"file header; without a spacing the long side is assumed to span {DEFAULT_LONG_SIDE_MM:g} mm",
            "intensity": "processed DICOM: the DICOM window / VOI LUT (LINEAR, LINEAR_EXACT, SIGMOID) applied by the "
                         "loader; raw (FOR PROCESSING): -ln(exposure) (stored MONOCHROME1) or ln(1 + value); then "
                         "(x - p0.5) / (p99.5 - p0.5) clipped to 0..1",
            "monochrome1": "inverted by the loader (high = attenuating tissue)",
            "orientation": "chest wall flipped to the left (PatientOrientation, else pixel intensities)",
            "padding": "zeros on the right and bottom to a multiple of 16",
            "working_resolution": f"{TARGET_SPACING_MM} mm (DDSM PNGs: 600 x 300 pixels; CBIS-DDSM DICOM ~600 x 380)",
        },
        inference={
            "mc_samples_default": DEFAULT_SAMPLES,
            "mc_dropout": "dropout active, BatchNorm in eval mode; the deterministic features are computed once and "
                          "dropout + classifier are repeated per sample (identical to N full passes)",
            "outputs": "mean softmax -> label map; predictive entropy (nats); per-class variance; mutual information",
            "postprocessing": POSTPROCESSING,
            "fast": "one deterministic pass (dropout off)",
        },
        training={
            "data": "../shared/data/mammo_ddsm (DDSM screen-film MLO, 50 images 960x480; breast = fatty + "
                    "fibroglandular labels, pectoral = label 3; 10 images have the chest wall on the right and are "
                    "flipped from their label)",
            "split": "validation = every 5th image in sorted file-name order (10 images); 40 train (as mammo-pectoral)",
            "train_cases": config["train_cases"], "val_cases": config["val_cases"],
            "recipe": "Training/train_breast.py", "epochs": sum(st["epochs"] for st in stages),
            "batch": config["batch"],
            "patch": config["patch"], "loss": "class-weighted cross-entropy",
            "class_weights": dict(zip(["background", "breast", "pectoral"], config["class_weights"])),
            "optimizer": "AdamW, weight decay 1e-4; per stage 1 warm-up epoch then cosine from its lr to 2%; "
                         "each later stage starts from the previous stage's final weights; final-epoch weights",
            "augmentation": "random crop with padding (%dx%d at 0.4 mm), scale 0.8-1.25, rotation +-5 deg, elastic "
                            "deformation, left-right flip (p 0.15), pseudo-CC crops below the muscle (p 0.2, "
                            "top-bottom flip p 0.5), VOI-like window jitter (LINEAR / SIGMOID), gamma 0.5-1.5, "
                            "Gaussian noise, robust renormalisation" % tuple(config["patch"]),
            "stages": stages,
            "train_seconds_cpu": round(sum(st["train_seconds"] for st in stages), 1),
            "threads": config.get("threads"),
        },
        validation=validation_section(ev, args.note),
        uncertainty=uncertainty_section(ev, config["width"]),
        license="Apache-2.0 (weights trained on DDSM via the Mammogram-segmentation project labels)",
    )
    write_model(dest, card, args.run / "weights.safetensors", [args.eval / "uncertainty.png"])
    print(f"wrote {dest}; targets reached: {reached}")


if __name__ == "__main__":
    main()
