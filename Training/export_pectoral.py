"""Ship a trained pectoral-boundary run as a model: Resources/Models/<id>/{model.json, weights.safetensors, plots}.

    python Training/export_pectoral.py --run runs/pectoral_nll_laplace_l10 --eval runs/pectoral_nll_laplace_l10/eval \
        --compare runs/pectoral_* --id mammo-pectoral-hhr --version 1.0.0

The card records the architecture, the preprocessing, the training recipe and data split, the measured validation
numbers of this run (from evaluate_pectoral.py), the comparison table of all runs given with --compare (their
metrics.json: Table 1 form; without runs the table of the card being replaced is kept, labelled), and the
validation-derived `ood` threshold. A run that replaces shipped weights (issue 19) must first pass
pectoral_ood_check.py (issue 19's strong candidate did not, and was never shipped); then:

    python Training/export_pectoral.py --run runs/pectoral_X_s2 --eval runs/pectoral_X_s2/eval \
        --cv runs/pcv/summary.json --previous-eval runs/pectoral_shipped/eval --version 2.0.0 --note "..."
    python Training/region_thresholds.py --write pectoral

`--cv` records the cross-validation that chose the run's setting (pectoral_cv_summary.py), `--previous-eval` the
replaced model's validation numbers under the same definitions (evaluate_pectoral.py on its weights), and the
issue's targets (MAE over every muscle row ≤ 4.5 input px, ≥ 90 % of rows within 2σ) with whether they are met and
by how much they are missed; `--note` (repeatable) replaces the notes.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from common import export_parser, model_card, write_model


def comparison_row(run: Path, epoch: int) -> dict | None:
    """Validation metrics of a training run at `epoch`, from its log.csv (Table 1 form), or None."""
    if not (run / "log.csv").is_file() or not (run / "config.json").is_file():
        return None
    c = json.loads((run / "config.json").read_text())
    with open(run / "log.csv", newline="") as f:
        for line in csv.DictReader(f):
            if int(line["epoch"]) == epoch and line["val_mae"]:
                return {"run": run.name, "loss": c["loss"], "js_weight": c["js_weight"], "epoch": epoch,
                        "init": c.get("init"), "mae": float(line["val_mae"]), "rmse": float(line["val_rmse"]),
                        "ll": float(line["val_ll"]), "mean_sigma": float(line["val_mean_sigma"])}
    return None


AUGMENTATION = {
    "standard": "rotation ±10°, scale 0.9-1.1, shift ±4%, gamma 0.6-1.6, sigmoid window (p 0.3), contrast, "
                "blur/unsharp, Gaussian noise, film-edge stripes",
    "strong": "rotation ±15°, scale 0.8-1.25 (up-scaling crops), shift ±8%, gamma 0.5-2.0, sigmoid window (p 0.5), "
              "film-vs-digital characteristic curve (p 0.4: log1p or expm1 curve, k 2-30), contrast ×0.7-1.3, "
              "blur/unsharp, Gaussian blur σ 0.5-2 px (p 0.25), Gaussian noise σ ≤ 0.06, film-edge stripes",
}
TARGETS = {"mae_input_px_all_rows": 4.5, "within_2sigma_share": 0.90}  # issue 19, point 3


def issue_targets(ev: dict) -> dict:
    """The issue-19 targets on this evaluation: reached, and by how much each is missed (0 when reached)."""
    mae, share = ev["mae_input_px_all_rows"], ev["within_2sigma_share"]
    return {"targets": TARGETS,
            "targets_reached": {"mae_input_px_all_rows": mae <= TARGETS["mae_input_px_all_rows"],
                                "within_2sigma_share": share >= TARGETS["within_2sigma_share"]},
            "missed_by": {"mae_input_px_all_rows": round(max(0.0, mae - TARGETS["mae_input_px_all_rows"]), 3),
                          "within_2sigma_share": round(max(0.0, TARGETS["within_2sigma_share"] - share), 4)}}


def cross_validation(summary: dict) -> dict:
    """The card's training.cross_validation block from pectoral_cv_summary.py's summary."""
    return {"protocol": "Training/pectoral_cv.sh: 4 folds of the 40 training images (every 4th in sorted order from "
                        "the fold's index is held out), the two-stage recipe per fold on 30 images, the full "
                        "inference pipeline on the 10 held out; numbers pooled over the 40 held-out images "
                        "(Training/pectoral_cv_summary.py); the validation split is not used",
            **summary}


def issue_validation(ev: dict) -> dict:
    """The issue-19 validation fields of an evaluate_pectoral.py evaluation (all rows, within 2σ, targets)."""
    return {"mae_input_px_all_rows": round(ev["mae_input_px_all_rows"], 3),
            "within_2sigma_share": round(ev["within_2sigma_share"], 4),
            "all_rows": ev["all_rows"],
            "definition_all_rows": "issue 19: every row holding muscle in the manual mask, boundary in pixel-centre "
                                   "input columns on the chest-wall side, a row the model misses counted at the image "
                                   "edge (column -0.5) and outside 2σ",
            "mae_input_px_all_rows_per_image": {k: round(v, 3) for k, v in
                                                ev["mae_input_px_all_rows_per_image"].items()},
            "mae_input_px_all_rows_by_third": [round(v, 3) for v in ev["all_rows_by_third"]["mae_input_px"]],
            **issue_targets(ev)}


def main(argv=None):
    ap = export_parser(__doc__, id="mammo-pectoral-hhr", version="1.0.0")
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--eval", type=Path, required=True)
    ap.add_argument("--compare", type=Path, nargs="*", default=[])
    ap.add_argument("--compare-epoch", type=int, default=30,
                    help="compare the runs at this epoch (their log.csv has validation metrics every 5 epochs)")
    ap.add_argument("--cv", type=Path, help="pectoral_cv_summary.py's summary.json (the setting's choice)")
    ap.add_argument("--previous-eval", type=Path, help="evaluate_pectoral.py's folder for the replaced model")
    ap.add_argument("--note", action="append", default=[], help="a note for the card (repeatable; replaces the notes)")
    args = ap.parse_args(argv)

    config = json.loads((args.run / "config.json").read_text())
    ev = json.loads((args.eval / "evaluation.json").read_text())
    dest = args.models / args.id
    previous = json.loads((dest / "model.json").read_text()) if (dest / "model.json").is_file() else None
    table = [row for run in sorted(args.compare) if (row := comparison_row(run, args.compare_epoch))]
    table_note = None
    if not table and previous and previous.get("validation", {}).get("comparison_table_1"):
        table = previous["validation"]["comparison_table_1"]
        table_note = f"the runs of version {previous['version']} (kept from its card)"
    augment = config.get("augment", "standard")
    extra_training, extra_validation, sections = {}, {}, {}
    stage1 = Path(config["init"]).parent / "config.json" if config.get("init") else None
    if stage1 is not None and stage1.is_file():
        c1 = json.loads(stage1.read_text())
        extra_training["stages"] = [
            {"epochs": c1["epochs"], "lr": c1["lr"], "init": c1.get("init"), "augment": c1.get("augment", "standard"),
             "train_seconds_cpu": c1["train_seconds"]},
            {"epochs": config["epochs"], "lr": config["lr"], "init": "stage 1's final weights", "augment": augment,
             "train_seconds_cpu": config["train_seconds"]}]
    if args.cv:
        extra_training["cross_validation"] = cross_validation(json.loads(args.cv.read_text()))
    if "mae_input_px_all_rows" in ev:
        extra_validation = issue_validation(ev)
    if args.previous_eval and previous:
        pe = json.loads((args.previous_eval / "evaluation.json").read_text())
        sections["superseded"] = {previous["version"]: {
            "weights_sha256": previous["weights"]["sha256"], "augmentation": previous["training"]["augmentation"],
            "validation_same_protocol": {k: round(pe[k], 4) for k in
                                         ("mae", "mae_input_px", "mae_input_px_all_rows", "within_2sigma_share")}}}
    card = model_card(
        id=args.id, version=args.version, task="mammo-pectoral",
        title="Pectoral-muscle boundary, heteroscedastic heatmap regression",
        citation="Zech et al., Heteroscedastic Heatmap Regression for Reliable Pectoral Muscle Segmentation in "
                 "Mammography, MIDL 2026",
        architecture={"name": "PectoralHeatmapNet", "backbone": "UNet2d (4 down-sampling stages, BN+ReLU)",
                      "width": config["width"], "grid": 256, "output": "one logit map; row-wise softmax"},
        preprocessing={
            "orientation": "chest wall flipped to the left (PatientOrientation, else pixel intensities)",
            "intensity": "per-image robust range: (x - p0.5) / (p99.5 - p0.5), clipped to 0..1",
            "padding": "left edge-pad by round(W/4) columns with a linear ramp to zero",
            "resize": "padded image -> 256x256, anti-aliased bilinear",
        },
        training={
            "data": "../shared/data/mammo_ddsm (DDSM screen-film MLO, 50 images 960x480, manual pectoral labels)",
            "split": "validation = every 5th image in sorted file-name order (10 images); 40 train",
            "train_cases": config["train_cases"], "val_cases": config["val_cases"],
            "recipe": "Training/train_pectoral.py",
            "loss": config["loss"], "js_weight": config["js_weight"], "epochs": config["epochs"],
            "batch": config["batch"], "optimizer": "AdamW lr %g, weight decay 1e-2, ReduceLROnPlateau(0.5, 8) on "
            "the training loss; final-epoch weights" % config["lr"],
            "augment_setting": augment, "augmentation": AUGMENTATION[augment],
            "train_seconds_cpu": config["train_seconds"], "threads": config.get("threads"),
            **extra_training,
        },
        validation={
            "protocol": "Training/evaluate_pectoral.py through the full inference pipeline on the 10 validation "
                        "images at 960x480; metrics on the 256-column grid (incl. padding) within muscle rows",
            "mae_grid": round(ev["mae"], 3), "rmse_grid": round(ev["rmse"], 3), "ll_laplace": round(ev["ll"], 3),
            "mean_sigma_grid": round(ev["mean_sigma"], 3), "mae_input_px": round(ev["mae_input_px"], 3),
            "rows": ev["rows"], "images": ev["images"],
            **extra_validation,
            "multimodal_share": ev["multimodal_share"],
            "binned_sigma_vs_error": ev["binned_sigma_vs_error"],
            "dose_reduction": ev["dose"],
            "comparison_table_1": table,
            **({"comparison_table_1_note": table_note} if table_note else {}),
            "comparison_protocol": "Training/train_pectoral.py's own evaluation (work resolution 512x256 -> grid) on "
                                   "the validation split after the same number of epochs (--compare-epoch) from "
                                   "scratch; runs with `init` set are second stages and are listed for reference",
        },
        uncertainty={
            "image_uncertainty": "mean boundary σ over muscle rows (input pixels; grid columns for the ood flag)",
            "per_image_uncertainty_grid": ev["per_image_uncertainty_grid"],
            "ood_threshold_grid": round(ev["ood_threshold_grid"], 3),
            "ood_rule": "image_uncertainty_grid > 1.5 x the largest validation image's value",
            "row_sigma_threshold_grid_p90": round(ev["per_image_uncertainty_grid"]["p90_row_sigma"], 3),
            "multimodality_rule": "uqseg/mammo/heatmap.py: >= 2 modes of >= 25% of the top peak, >= 5 columns apart, "
                                  "valley < 0.5 x the smaller peak (3-tap smoothed row)",
        },
        **sections,
        notes=args.note or [
            "Targets of the issue on the validation split: MAE <= 4 and RMSE <= 6 grid columns, mean sigma within a "
            "factor 2 of MAE. Reached: MAE and the sigma/MAE ratio; RMSE is slightly above 6 because of a few rows "
            "with large errors where the muscle edge fades (the top decile of sigma holds rows with MAE ~13.5 grid "
            "columns, and the model marks them with sigma ~19: see calibration.png).",
            "Ten validation images is a small set: the numbers carry roughly +-0.5 grid columns of split noise.",
            "The stage-1 lambda=10 run was trained before a sub-pixel label fix (partial mask pixels counted by "
            "their fraction; effect <= 0.4 grid columns, ~0.1 on average); the other comparison runs and stage 2 "
            "used the fixed labels.",
        ],
        license="Apache-2.0 (weights trained on DDSM via the Mammogram-segmentation project labels)",
    )
    write_model(dest, card, args.run / "weights.safetensors", [args.eval / p for p in ("calibration.png", "dose.png")])
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
