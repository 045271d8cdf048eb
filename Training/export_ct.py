"""Ship a trained ct-organs run as a model: Resources/Models/<id>/{model.json, weights.safetensors, reliability.png}.

    python Training/export_ct.py --run runs/ct_mob --eval runs/ct_eval --id ct-organs-mob --version 1.0.0

The card records the architecture (form, rank, bases, block, filters, strides), the preprocessing (working-grid
spacing, HU window), the organs, the training data and recipe with the two stages, the measured validation numbers
of every parameterisation from evaluate_ct.py (comparison.json), the display / region thresholds derived from the
validation slab, and states that it is a DEMONSTRATION model trained on one patient.
"""

from __future__ import annotations

import json
from pathlib import Path

from common import export_parser, model_card, write_model
from datasets.totalseg import TOTALSEG_V2_LABELS
from run_chain import init_chain
from uqseg.ct.inference import DEFAULT_SAMPLES
from uqseg.ct.mc_estimate import SETTLED_MARGIN, SETTLED_Z


def stages(run: Path) -> list[dict]:
    """The chain of runs that produced `run` (each --init from the previous run's weights), first stage first."""
    out = []
    for path, c in init_chain(run, lambda config: config["training"].get("init")):
        t = c["training"]
        out.append({"run": path.name, "form": c["form"], "steps": t.get("steps_done", t["steps"]), "lr": t["lr"],
                    "head_lr_factor": t.get("head_lr_factor"), "batch": t["batch"], "patch_zyx": t["patch"],
                    "train_samples": t.get("train_samples"), "minutes": t.get("minutes"),
                    "init": Path(t["init"]).parent.name if t.get("init") else None})
    return out


def main(argv=None) -> int:
    ap = export_parser(__doc__, id="ct-organs-mob", version="1.0.0")
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--eval", type=Path, required=True)
    ap.add_argument("--note", default="")
    args = ap.parse_args(argv)
    cfg = json.loads((args.run / "config.json").read_text())
    comparison = json.loads((args.eval / "comparison.json").read_text())
    shipped = next(r for r in comparison if Path(r["run"]).name == args.run.name)
    dest = args.models / args.id
    split = cfg["split"]["shared"]
    card = model_card(
        id=args.id, version=args.version, task="ct-organs",
        description=("Stochastic segmentation network with a Mixture-of-Bases logit covariance (Kampen, Aspe et "
                        "al., NLDL 2026) for abdominal organs on CT. DEMONSTRATION MODEL: trained on 14 slices of "
                        "ONE patient (the TotalSegmentator test series shipped in ../shared/data) and validated on "
                        "the other 6 slices of the same patient; not for clinical use, not a general organ "
                     "segmenter."),
        citation="P. J. T. Kampen, Aspe et al., Structured Covariance Modeling Using Learned Mixture-of-Bases for "
                 "Uncertainty in 3D Segmentation, NLDL 2026 (PMLR 307:191-200); M. Monteiro et al., Stochastic "
                 "Segmentation Networks, NeurIPS 2020",
        organs=cfg["organs"],
        architecture=cfg["architecture"],
        preprocessing={
            "spacing_mm": cfg["preprocessing"]["spacing_mm"],
            "hu_window": cfg["preprocessing"]["hu_window"],
            "grid": "resampled (trilinear) onto an axis-aligned LPS grid of isotropic spacing covering the input's "
                    "bounding box, -1024 HU outside; HU clipped to hu_window and mapped linearly onto [-1, 1]; "
                    "results resampled back onto the input grid (trilinear probabilities, label = their arg-max)",
        },
        inference={
            "samples": DEFAULT_SAMPLES,
            "method": "k samples of Eq. 13 in logit space from one network pass per sliding window (MONAI, "
                      "Gaussian weights), position-keyed noise so overlapping windows draw the same samples; "
                      "antithetic pairs (sample s + k/2 mirrors sample s: eta' = 2 mu - eta, each exactly "
                      "N(mu, Sigma)); p = mean softmax (Eq. 14), variance = E[p^2] - E[p]^2",
            "settled_voxels": f"voxels whose top-class margin exceeds {SETTLED_MARGIN} + {SETTLED_Z} x the "
                              "logit std (of the logit difference for one organ; else the sum of the two classes' "
                              "marginal stds) are not sampled (error bound < 2e-4 in probability)",
        },
        training={
            "data": {"source": "../shared/data/ct_totalseg: example_ct_dicom (20 slices 512 x 512, 0.98 x 0.98 x 2 "
                               "mm, JPEG 2000) with example_seg_dicom.nii.gz (TotalSegmentator v2 117-class MODEL "
                               "OUTPUT, not manual), aligned by physical position",
                     "license": "Apache-2.0 (TotalSegmentator test data)",
                     "labels_totalseg_v2_id": {o: TOTALSEG_V2_LABELS[o] for o in cfg["organs"]},
                     "train_slices": split["train_slices"], "val_slices": split["val_slices"],
                     "working_shape_zyx": split["working_shape"]},
            "recipe": "Training/train_ct.py (two stages: deterministic backbone, then the stochastic heads), "
                      "augmentation in Training/ct_augment.py",
            "stages": stages(args.run),
            "loss_weights": cfg["loss_weights"],
        },
        validation={
            "data": f"slices {split['val_slices'][0]}-{split['val_slices'][1] - 1} (the 6 most cranial, 12 mm) of the "
                    "same series, never sampled for training; full inference pipeline (Training/evaluate_ct.py)",
            "this_model": {k: v for k, v in shipped.items() if k not in ("error_vs_variance", "run")},
            "comparison": [{k: v for k, v in r.items() if k not in ("error_vs_variance",)} for r in comparison],
            "comparison_note": "every stochastic form fine-tuned from the same stage-1 backbone with the same budget",
        },
        uncertainty={
            "image_uncertainty": "mean predictive variance (sum over organ classes of Var[p_c]) over the voxels "
                                 "predicted as an organ, on the working grid; probability^2",
            "display_threshold": shipped.get("display_threshold"),
            "display_threshold_rule": "the lower edge of the first of 20 equal-count variance bins (voxels within "
                                      "10 mm of an organ, validation slab) whose label error rate exceeds 5 %",
            "region_threshold": shipped.get("region_threshold_p90"),
            "region_threshold_percentile": 90,
            "region_threshold_units": "probability^2",
            "region_threshold_rule": "90th percentile of the variance over the validation voxels within 10 mm of "
                                     "an organ",
            "ood_threshold": None,
            "ood_note": "not calibrated: a single validation volume cannot give a threshold",
        },
        notes=args.note,
        license="Apache-2.0 (weights trained on the TotalSegmentator test data, Apache-2.0)",
    )
    write_model(dest, card, args.run / "weights.safetensors",
                [args.eval / "reliability.png", args.eval / "comparison.md"])
    print(f"wrote {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
