"""Ship a trained cxr-landmarks run as a model: Resources/Models/<id>/{model.json, weights.safetensors, plots}.

    python Training/export_cxr.py --run runs/cxr_skip256 --eval runs/cxr_skip256/eval --id cxr-hybridgnet-vae

The card records the architecture, the preprocessing, the training recipe and data split, the measured validation
numbers of this run (from evaluate_cxr.py: landmark error, Dice, the checks of the uncertainty), the targets and
whether they were reached, and the validation-derived `ood_threshold_ref` with its rule.
"""

from __future__ import annotations

import json
from pathlib import Path

from common import export_parser, model_card, write_model
PLOTS = ("occlusion.png", "noise.png", "std_vs_error.png", "ood.png", "occlusion_example_clean.png",
         "occlusion_example_occluded.png")
TARGETS = {"dice_lungs": 0.95, "dice_heart": 0.90}


def r(x, n=4):
    return round(float(x), n)


def main(argv=None):
    ap = export_parser(__doc__, id="cxr-hybridgnet-vae", version="1.0.0")
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--eval", type=Path, required=True)
    ap.add_argument("--note", default="", help="free text added to the card's validation section")
    args = ap.parse_args(argv)

    config = json.loads((args.run / "config.json").read_text())
    ev = json.loads((args.eval / "evaluation.json").read_text())
    dest = args.models / args.id
    arch = config["architecture"]
    reached = {k: bool(ev[k] >= v) for k, v in TARGETS.items()}
    card = model_card(
        id=args.id, version=args.version, task="cxr-landmarks",
        title="Lungs and heart landmark rings, variational HybridGNet with per-node uncertainty",
        citation="M. Cosarinsky, N. Gaggion, R. Echeveste, E. Ferrante, CheXmask-U: Quantifying uncertainty in "
                    "landmark-based anatomical segmentation for X-ray images, MIDL 2026; N. Gaggion et al., "
                    "Improving anatomical plausibility in medical image segmentation via hybrid graph neural "
                 "networks: applications to chest X-ray analysis, IEEE TMI 2023",
        architecture={
            "name": "HybridGNet" + (" with 2 image-to-graph skip connections" if arch["skip"] else ""), **arch,
            "encoder": "3x3 stem + 6 stride-2 residual blocks (BN, ReLU), flatten -> mu, log sigma^2",
            "decoder": "linear z -> 60 coarse nodes; ChebConv K=6 (symmetric normalised Laplacian, lambda_max=2) x2; "
                       "unpool (ring interpolation) -> 120 nodes; ChebConv x2; ChebConv -> (x, y) + template",
            "nodes": {"right_lung": 44, "left_lung": 50, "heart": 26},
        },
        preprocessing={
            "intensity": "per-image (x - p0.5) / (p99.5 - p0.5) clipped to 0..1 (after the DICOM Modality/VOI LUT "
                         "and MONOCHROME1 inversion of the loader)",
            "square": "zero-pad to a centred square of side max(H, W)",
            "resize": f"square -> {arch['input_size']}x{arch['input_size']}, antialiased bilinear",
            "input_size_choice": f"{arch['input_size']} (the shared images are 512): chosen so that training fits "
                                 "in about half an hour on 2 CPU cores; the network predicts continuous coordinates, "
                                 "so its outputs are not quantised to the 2-pixel grid of the input",
            "coordinates": "outputs u = (x + 1/2 + pad_left) / S in [0, 1]; mapped back to the input's pixel-centre "
                           "indices; std scaled by S",
        },
        training={
            "data": "../shared/data/cxr_jsrt (JSRT 512x512 PNG, HybridGNet landmarks, SCR masks)",
            "split": "the `split` field of the landmark files: 174 train, 21 val",
            "val_cases": config["val_cases"],
            "recipe": "Training/train_cxr.py",
            "loss": "MSE on normalised coordinates" + (" + ds_weight x deep supervision (p1 vs P y, p2 vs y)"
                                                       if arch["skip"] else "") + " + beta x mean KL",
            "ds_weight": config["ds_weight"], "beta_start": config["beta_start"], "beta_end": config["beta_end"],
            "beta_anneal": f"log-linear over the first {config['anneal']:.0%} of the epochs, then constant",
            "epochs": config["epochs"], "batch": config["batch"],
            "optimizer": f"Adam lr {config['lr']:g}, weight decay 1e-5, cosine decay to 5%; final-epoch weights",
            "augmentation": "rotation +-8 deg, scale 0.9-1.1, shift +-5%, gamma 0.6-1.6, contrast 0.8-1.2, "
                            "brightness +-0.1, Gaussian noise sigma U(0, 0.05)",
            "train_seconds_cpu": config["train_seconds"], "threads": config.get("threads"),
        },
        validation={
            "protocol": "Training/evaluate_cxr.py: full inference (N=50 latent samples, mean contour) on the 21 val "
                        "images at 512x512; Dice of the filled mean rings (heart painted last) vs the SCR masks",
            "landmark_error_px": r(ev["landmark_error_px"], 3),
            "landmark_error_px_per_organ": {k: r(v, 3) for k, v in ev["landmark_error_px_per_organ"].items()},
            "dice_right_lung": r(ev["dice_right_lung"]), "dice_left_lung": r(ev["dice_left_lung"]),
            "dice_lungs": r(ev["dice_lungs"]), "dice_heart": r(ev["dice_heart"]),
            "targets": TARGETS, "targets_reached": reached,
            "mean_node_std_px": r(ev["mean_node_std_px"]), "latent_sigma": r(ev["latent_sigma"]),
            "images": ev["images"],
            "note": args.note,
        },
        uncertainty_checks={
            "occlusion": {k: ev["occlusion"][k] for k in ("frac", "median_under_over_others",
                                                          "share_under_above_others", "median_occluded_over_clean")},
            "noise": [{k: x[k] for k in ("level", "mean_node_std_ref", "latent_sigma", "landmark_error_px")}
                      for x in ev["noise"]],
            "noise_monotonic": ev["noise_monotonic"],
            "noise_monotonic_within_2pct": ev.get("noise_monotonic_within_2pct"),
            "std_vs_error": ev["std_vs_error"],
            "ood_non_chest": ev["ood"]["non_chest"], "ood_non_chest_flagged": ev["ood"]["non_chest_flagged"],
            "ood_noise_flagged_share": ev["ood"]["noise_flagged_share"],
        },
        uncertainty={
            "samples_default": 50,
            "node_std": "1/2 (std_x + std_y) of the N decoded samples (population std), input px",
            "image_uncertainty": "mean node std over the 120 nodes, input px",
            "image_uncertainty_ref": "the same in px of a 512-pixel square (resolution independent)",
            "val_image_uncertainty_ref": ev["ood"]["val_image_uncertainty_ref"],
            "ood_threshold_ref": r(ev["ood"]["threshold_ref"]),
            "ood_rule": ev["ood"]["rule"],
        },
        license="Apache-2.0 code; weights trained on JSRT/SCR with HybridGNet landmarks (GPL-3.0 annotations, "
                "research use)",
    )
    plots = [args.eval / p for p in PLOTS if (args.eval / p).is_file()]
    write_model(dest, card, args.run / "weights.safetensors", plots)
    print(f"wrote {dest}  (targets reached: {reached})")


if __name__ == "__main__":
    main()
