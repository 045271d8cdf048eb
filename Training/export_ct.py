"""Ship a trained ct-organs run as a model: Resources/Models/<id>/{model.json, weights.safetensors, reliability.png}.

    python Training/export_ct.py --run runs/ct_mob --eval runs/ct_eval --id ct-organs-mob --version 1.0.0

Two-patient models (issue 18) — the run trained on the working-grid caches, its evaluate_ct_lopo.py folder (its
validation slabs, and the OOD bank fitted on its own training patients) and the leave-one-patient-out folders:

    python Training/export_ct.py --run runs/long_mixture_of_bases --lopo-eval runs/eval_final \
        --lopo runs/eval_AtoB runs/eval_BtoA --forms runs/forms --version 2.1.0

writes weights.safetensors, ood.safetensors (card section `ood`: file, sha256, threshold), comparison.md (the five
covariance forms, compare_ct_forms.py) and the card with the LOPO numbers per organ, the validation-slab numbers,
the rate at which wrong organs / components are flagged and the forms' comparison.

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
from uqseg.ct.linearised_moments import LINEARISED_MAX_STD
from uqseg.ct.mc_estimate import SETTLED_MARGIN, SETTLED_Z
from uqseg.ct.ood import CELL, HU_EDGES, SCALES, descriptor_size
from uqseg.models.registry import sha256_of


#: how the predictive moments are computed (uqseg.ct.mc_estimate; docs/ct-sampling.md)
CT_MOMENTS_METHOD = ("k samples of Eq. 13 in logit space from one network pass per sliding window (MONAI, Gaussian "
                     "weights), position-keyed noise so overlapping windows draw the same samples, antithetic pairs "
                     "(sample s + k/2 mirrors sample s: eta' = 2 mu - eta, each exactly N(mu, Sigma)); p = mean "
                     "softmax (Eq. 14), variance = E[p^2] - E[p]^2 — where samples are needed: the closed form or "
                     "softmax(mu) elsewhere (closed_form_voxels, settled_voxels)")
CLOSED_FORM_RULE = (f"voxels whose class logits all have a std <= {LINEARISED_MAX_STD} nats take the closed-form "
                    "moments (delta method on the log-probabilities, log-normal moments; uqseg.ct.linearised_moments"
                    "), more accurate there than 30 samples (docs/ct-sampling.md); the kept sample label maps still "
                    "come from samples wherever a sample could change the label")


#: the card's `validation.flags.rule` (Training/evaluate_ct_lopo.py)
FLAG_RULE = ("an organ (or connected component, >= 1 ml) is wrong when its Dice (share inside the reference organ) is "
             "< 0.5; an organ is flagged when its mean variance exceeds the variance threshold or more than half of it "
             "is above the OOD threshold (thresholds from the run's own training patients); a component is flagged "
             "by the same two rules or as a detached fragment (it does not touch the organ's largest component in "
             "the whole predicted volume, uqseg.ct.fragments: the task's `detached_fragments` flag)")


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
    ap.add_argument("--eval", type=Path, default=None)
    ap.add_argument("--lopo-eval", type=Path, default=None, help="evaluate_ct_lopo.py folder of --run (two patients)")
    ap.add_argument("--lopo", type=Path, nargs="*", default=[], help="evaluate_ct_lopo.py folders of the LOPO runs")
    ap.add_argument("--forms", type=Path, default=None, help="compare_ct_forms.py folder (two patients)")
    ap.add_argument("--recipe", default="Training/gpu/issue18_cpu_runs.sh, then Training/gpu/issue18_cpu_continue.sh")
    ap.add_argument("--hardware", default=None)
    ap.add_argument("--note", default="")
    args = ap.parse_args(argv)
    if args.lopo_eval:
        return export_two_patients(args)
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
            "method": CT_MOMENTS_METHOD,
            "closed_form_voxels": CLOSED_FORM_RULE,
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


def flag_summary(results: list[dict]) -> dict:
    """Wrong organs (predicted >= 1 ml, Dice < 0.5) and wrong components over the tests of `results`, and how many
    of them the variance or the OOD map flags."""
    out = {"wrong_organs": 0, "wrong_organs_flagged": 0, "wrong_components": 0, "wrong_components_flagged": 0,
           "by_ood": 0, "by_variance": 0, "by_fragment": 0, "wrong_components_flagged_without_fragments": 0,
           "right_components": 0, "right_components_flagged_as_fragments": 0}
    for r in results:
        for t in r["tests"].values():
            out["wrong_organs"] += t["wrong_organs"]
            out["wrong_organs_flagged"] += t["wrong_organs_flagged"]
            out["wrong_components"] += t["wrong_components"]
            out["wrong_components_flagged"] += t["wrong_components_flagged"]
            for c in t["components"]:
                fragment = bool(c.get("flag_fragment"))
                if c["wrong"]:
                    out["by_ood"] += int(c["flag_ood"])
                    out["by_variance"] += int(c["flag_variance"])
                    out["by_fragment"] += int(fragment)
                    out["wrong_components_flagged_without_fragments"] += int(c["flag_ood"] or c["flag_variance"])
                else:
                    out["right_components"] += 1
                    out["right_components_flagged_as_fragments"] += int(fragment)
    for k in ("organs", "components"):
        n = out[f"wrong_{k}"]
        out[f"{k}_flag_rate"] = round(out[f"wrong_{k}_flagged"] / n, 3) if n else None
    n = out["wrong_components"]
    out["components_flag_rate_without_fragments"] = (
        round(out["wrong_components_flagged_without_fragments"] / n, 3) if n else None)
    return out


def lopo_table(result: dict) -> dict:
    """Per test: Dice per organ, the organ flags and the pelvis check of one evaluate_ct_lopo.py result."""
    tests = {}
    for name, t in result["tests"].items():
        tests[name] = {"dice": {o: t["organs"][o]["dice"] for o in result["organs"]},
                       "organs": {o: {k: v for k, v in t["organs"][o].items()} for o in result["organs"]},
                       "wrong_organs": t["wrong_organs"], "wrong_organs_flagged": t["wrong_organs_flagged"],
                       "wrong_components": t["wrong_components"],
                       "wrong_components_flagged": t["wrong_components_flagged"],
                       "pelvis": t["pelvis"], "body_ood": t["body_ood"], "z_slab": t["z_slab"]}
    return {"train_cases": result["train_cases"], "form": result["form"], "samples": result["samples"],
            "ood_threshold": result["ood_threshold"], "variance_threshold": result["variance_threshold"],
            "tests": tests}


def export_two_patients(args) -> int:
    cfg = json.loads((args.run / "config.json").read_text())
    own = json.loads((args.lopo_eval / "result.json").read_text())
    lopo = {Path(d).name: json.loads((Path(d) / "result.json").read_text()) for d in args.lopo}
    dest = args.models / args.id
    organs = cfg["organs"]
    ood_file = args.lopo_eval / "ood.safetensors"
    card = model_card(
        id=args.id, version=args.version, task="ct-organs",
        description=("Stochastic segmentation network with a Mixture-of-Bases logit covariance (Kampen, Aspe et al., "
                     "NLDL 2026) for liver, spleen, kidneys and pancreas on CT, with an out-of-distribution map "
                     "(k-NN distance of intensity-context descriptors to the training patients', Sun et al. 2022). "
                     "DEMONSTRATION MODEL: trained on TWO patients (the TotalSegmentator example series in "
                     "../shared/data, whose labels are TotalSegmentator outputs); the leave-one-patient-out numbers "
                     "of the card are the honest estimate on a new patient; not for clinical use."),
        citation="P. J. T. Kampen, Aspe et al., Structured Covariance Modeling Using Learned Mixture-of-Bases for "
                 "Uncertainty in 3D Segmentation, NLDL 2026 (PMLR 307:191-200); M. Monteiro et al., Stochastic "
                 "Segmentation Networks, NeurIPS 2020; Y. Sun et al., Out-of-Distribution Detection with Deep "
                 "Nearest Neighbors, ICML 2022; A. Criminisi et al., Regression forests for efficient anatomy "
                 "detection and localization in computed tomography scans, Medical Image Analysis 2013",
        organs=organs,
        architecture=cfg["architecture"],
        preprocessing={
            "spacing_mm": cfg["preprocessing"]["spacing_mm"], "hu_window": cfg["preprocessing"]["hu_window"],
            "grid": "resampled (trilinear) onto an axis-aligned LPS grid of isotropic spacing covering the input's "
                    "bounding box, -1024 HU outside; HU clipped to hu_window and mapped linearly onto [-1, 1]; "
                    "results resampled back onto the input grid (trilinear probabilities, label = their arg-max)"},
        inference={
            "samples": DEFAULT_SAMPLES,
            "method": CT_MOMENTS_METHOD + "; the OOD map once per volume from the working-grid HU (uqseg.ct.ood)",
            "closed_form_voxels": CLOSED_FORM_RULE,
            "settled_voxels": f"voxels whose top-class margin exceeds {SETTLED_MARGIN} + {SETTLED_Z} x the "
                              "logit std are not sampled (error bound < 2e-4 in probability)"},
        training={
            "data": {"cases": {
                "A": "../shared/data/ct_totalseg/example_ct_dicom (20 slices 512 x 512, 0.98 x 0.98 x 2 mm, upper "
                     "abdomen) with example_seg_dicom.nii.gz (TotalSegmentator v2 MODEL OUTPUT); no kidneys in it, "
                     "pancreas 311 voxels on the 2 mm grid",
                "B": "../shared/data/ct_totalseg/totalseg_layout/example_abdomen_pelvis (3 mm, abdomen to pelvis, "
                     "TotalSegmentator-layout masks, MODEL OUTPUTS)"},
                "cache": "Training/cache_ct_cases.py (both resampled once onto the 2 mm working grid)",
                "split": cfg["split"], "license": "Apache-2.0 (TotalSegmentator test data)"},
            "recipe": "Training/train_ct.py --cache (two stages: deterministic backbone, then the stochastic heads), "
                      "augmentation Training/ct_augment.py with --scanner-aug (coarser acquisition 0.5-1.0, "
                      "+-15 % / +-45 HU intensity, scanner noise sigma <= 30 HU); random crops anywhere in the "
                      "volume (patient B: pelvis and lung bases included) besides the foreground-centred ones; "
                      f"commands: {args.recipe}",
            "stages": stages(args.run),
            "loss_weights": cfg["loss_weights"],
            **({"hardware": args.hardware} if args.hardware else {})},
        validation={
            "data": "the held-out working-grid slabs of both patients (A: slices 14-19, 12 mm; B: slices 126-140, "
                    "30 mm through liver, spleen, kidneys and pancreas), never sampled for training; "
                    "Training/evaluate_ct_lopo.py (predict_ct's sliding windows and k = 30 samples on the 2 mm "
                    "working grid; Dice on that grid)",
            "this_model": lopo_table(own),
            "leave_one_patient_out": {k: lopo_table(v) for k, v in lopo.items()},
            "flags": {"rule": FLAG_RULE,
                      "leave_one_patient_out": flag_summary(list(lopo.values())),
                      "this_model_validation_slabs": flag_summary([own])},
            **forms_section(args.forms)},
        uncertainty={
            "image_uncertainty": "mean predictive variance (sum over organ classes of Var[p_c]) over the voxels "
                                 "predicted as an organ, on the working grid; probability^2",
            "display_threshold": own["variance_threshold"],
            "display_threshold_rule": "90th percentile of the variance over the training patients' voxels within "
                                      "10 mm of an organ (Training/evaluate_ct_lopo.py)",
            "region_threshold": own["variance_threshold"], "region_threshold_percentile": 90,
            "region_threshold_units": "probability^2",
            "region_threshold_rule": "as display_threshold", "ood_threshold": None,
            "ood_note": "the image-level variance rule is not used; `ood` comes from the OOD map (section ood)"},
        ood={"file": "ood.safetensors", "sha256": sha256_of(ood_file), "threshold": own["ood_threshold"],
             "threshold_percentile": own["ood_percentile"],
             "threshold_rule": f"{own['ood_percentile']:g}th percentile of the cross-fitted k-NN distances of the "
                               "training patients' cells holding body (validation slabs excluded): each cell scored "
                               "against the bank without its own patient's cells within 1 z-cell (the cells that "
                               "share its context)",
             "method": "distance to the k-th (k = 10) nearest training descriptor (Sun et al. 2022 Eq. 2); "
                       f"descriptor of each {' x '.join(map(str, CELL))}-voxel working-grid cell: the fractions of "
                       f"its voxels in {len(HU_EDGES) + 1} HU bins, box-averaged over "
                       f"{', '.join('x'.join(map(str, sc)) for sc in SCALES)} cells, square-rooted "
                       f"({descriptor_size()} numbers; Criminisi et al. 2013 context features); trilinear to the "
                       "voxels (uqseg.ct.ood)",
             "cells": own["ood_cells"], "units": "k-NN distance between square-rooted tissue histograms "
                                                 "(dimensionless)",
             "organ_rule": "an organ is ood when more than half of its predicted voxels are above the threshold; the "
                           "image is ood when any predicted organ is"},
        notes=args.note,
        license="Apache-2.0 (weights trained on the TotalSegmentator test data, Apache-2.0)",
    )
    write_model(dest, card, args.run / "weights.safetensors", [ood_file])
    if args.forms:
        (dest / "comparison.md").write_text(forms_markdown(args.forms, args.version))
    print(f"wrote {dest}")
    return 0


def forms_section(forms: Path | None) -> dict:
    """The card's `comparison` of the five covariance forms (compare_ct_forms.py), or a note that there is none."""
    if forms is None:
        return {"comparison_note": "the five covariance forms were not compared for this version"}
    meta = json.loads((forms / "comparison.json").read_text())
    keep = ("form", "run", "steps", "samples", "dice", "mean_dice", "nll_organ_region", "ece_organ_region",
            "mce_organ_region", "ece_slab", "variance_auroc", "minus_mixture_of_bases_95ci", "within_noise")
    out = {"comparison": {"tool": "Training/compare_ct_forms.py", "slabs": meta["slabs"], "boot": meta["boot"],
                          "forms": [{k: r[k] for k in keep if k in r} for r in meta["forms"]]}}
    seed = forms / "seed_noise.json"
    if seed.is_file():
        out["comparison"]["training_noise"] = json.loads(seed.read_text())
    return out


def forms_markdown(forms: Path, version: str) -> str:
    text = (forms / "comparison.md").read_text()
    head = (f"Five covariance forms of **version {version}** (two patients; the same backbone, the same stage-2 "
            "steps and settings; validation slabs of both patients; Training/compare_ct_forms.py, k = 30).\n\n")
    seed = forms / "seed_noise.md"
    return head + text + ("\n" + seed.read_text() if seed.is_file() else "")


if __name__ == "__main__":
    raise SystemExit(main())
