"""Evaluate a cxr-landmarks model on the JSRT val split through the full inference pipeline (N latent samples,
encode once), and check that its uncertainty means something (Cosarinsky et al., "CheXmask-U", MIDL 2026):

- accuracy: mean landmark error (px of the 512 × 512 images, Euclidean, mean over nodes and images; per organ) and
  Dice of the filled mean rings (heart painted last, as exported) vs the SCR masks;
- (a) occlusion (Fig. 2): a black square of side 0.2 × the image centred on the most lateral true node of the right
  lung, then of the left lung → ratio of the std of the nodes under the square to the others, and to the same nodes
  on the clean image → occlusion.png;
- (b) Gaussian noise of rising strength (σ = level × the image's p0.5–p99.5 range) → mean node std, latent σ and
  landmark error per level → noise.png;
- (c) node-level binned std vs error, 8 equal-count bins over all val nodes (clean images) → std_vs_error.png;
- (d) out-of-distribution: the ood threshold = OOD_FACTOR × the largest `image_uncertainty_ref` of the clean val
  images; non-chest images (DDSM mammograms, CT slices of the shared data) must exceed it → ood.png.
Writes evaluation.json and the plots (plus example previews) to --out.

    python Training/evaluate_cxr.py --run runs/cxr_skip256 --out runs/cxr_skip256/eval
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from datasets.jsrt_landmarks import list_cases, load_case
from uqseg.cxr import checks
from uqseg.cxr.graph import organ_slices
from uqseg.cxr.preview import render_landmark_preview
from uqseg.cxr.rasterise import LABELS, labelmap
from uqseg.io.load import load_image
from uqseg.metrics import dice, spearman
from uqseg.tasks.cxr_landmarks import build_model

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
NOISE_LEVELS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)
OOD_FACTOR = 1.5
OCCLUSION_FRAC = 0.2


def accuracy(results, truths, masks) -> dict:
    err = np.stack([np.linalg.norm(r.mean - t, axis=1) for r, t in zip(results, truths)])  # (images, 120)
    out = {"landmark_error_px": float(err.mean()),
           "landmark_error_px_per_organ": {o: float(err[:, sl].mean()) for o, sl in organ_slices().items()}}
    d = {o: [] for o in LABELS}
    for r, m in zip(results, masks):
        lm = labelmap(r.mean, m.shape)
        for o, k in LABELS.items():
            d[o].append(dice(lm == k, m == k))
    out.update({f"dice_{o}": float(np.mean(v)) for o, v in d.items()})
    out["dice_lungs"] = float(np.mean(d["right_lung"] + d["left_lung"]))
    out["dice_per_image"] = {o: [round(x, 4) for x in v] for o, v in d.items()}
    return out, err


def occlusion_study(model, images, truths, results, samples):
    rows, example = [], None
    for i, (img, truth, clean) in enumerate(zip(images, truths, results)):
        for organ, pick in (("right_lung", np.argmin), ("left_lung", np.argmax)):
            sl = organ_slices()[organ]
            centre = truth[sl][pick(truth[sl][:, 0])]
            occ_img, box = checks.occlude(img, centre, OCCLUSION_FRAC)
            occ = checks.predict_array(occ_img, model, samples)
            eff = checks.occlusion_effect(clean, occ, truth, box)
            rows.append({"image": i, "organ": organ, **eff})
            if example is None and organ == "right_lung":
                example = (occ_img, occ, box, img, clean)
    return rows, example


def noise_study(model, images, truths, samples, seed=0):
    rng = np.random.default_rng(seed)
    table = []
    for level in NOISE_LEVELS:
        stds, sig, errs = [], [], []
        for img, truth in zip(images, truths):
            r = checks.predict_array(checks.add_noise(img, level, rng) if level else img, model, samples)
            stds.append(r.image_uncertainty_ref)
            sig.append(r.latent_sigma_mean)
            errs.append(float(np.linalg.norm(r.mean - truth, axis=1).mean()))
        table.append({"level": level, "mean_node_std_ref": float(np.mean(stds)), "sd_node_std_ref": float(np.std(stds)),
                      "latent_sigma": float(np.mean(sig)), "landmark_error_px": float(np.mean(errs)),
                      "per_image_std_ref": [round(s, 4) for s in stds]})
    return table


def non_chest_images(limit: int = 3):
    out = []
    for p in sorted((SHARED / "mammo_ddsm" / "images").glob("*.png"))[:limit]:
        out.append(("mammogram " + p.stem, load_image(p).array))
    ct = sorted((SHARED / "ct_totalseg" / "example_ct_dicom").glob("*.dcm"))
    for p in ct[:: max(1, len(ct) // 2)][:2]:
        out.append(("CT slice " + p.stem[-6:], load_image(p).array))
    return out


def plots(out: Path, ev: dict, example, err, std_nodes):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # (a) occlusion
    occ_img, occ, box, img, clean = example
    render_landmark_preview(img, clean.mean, clean.node_std, out / "occlusion_example_clean.png",
                            title="clean", vmax=float(occ.node_std.max()))
    render_landmark_preview(occ_img, occ.mean, occ.node_std, out / "occlusion_example_occluded.png",
                            title=f"occluded square {box}", vmax=float(occ.node_std.max()))
    rows = [r for r in ev["occlusion"]["cases"] if np.isfinite(r["under_over_others"])]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for k, organ in enumerate(("right_lung", "left_lung")):
        sel = [r for r in rows if r["organ"] == organ]
        groups = [[r["std_under_clean"] for r in sel], [r["std_under"] for r in sel], [r["std_others"] for r in sel]]
        ax[0].boxplot(groups,
                      positions=[k * 4 + 1, k * 4 + 2, k * 4 + 3], widths=0.7)
    ax[0].set_xticks([1, 2, 3, 5, 6, 7], ["R under\nclean", "R under\noccl.", "R others\noccl.",
                                          "L under\nclean", "L under\noccl.", "L others\noccl."], fontsize=7)
    ax[0].set_ylabel("node std (px @512)")
    ax[0].set_title("occlusion: std of the nodes under the square")
    ax[1].hist([r["under_over_others"] for r in rows], bins=15, color="tab:orange")
    ax[1].axvline(1.0, color="k", ls="--")
    ax[1].set_xlabel("std under square / std of the other nodes (occluded image)")
    ax[1].set_title(f"median ratio {ev['occlusion']['median_under_over_others']:.2f}")
    fig.tight_layout()
    fig.savefig(out / "occlusion.png", dpi=100)
    plt.close(fig)

    # (b) noise
    t = ev["noise"]
    lv = [r["level"] for r in t]
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.6))
    ax[0].errorbar(lv, [r["mean_node_std_ref"] for r in t], yerr=[r["sd_node_std_ref"] for r in t], marker="o",
                   capsize=3)
    ax[0].set_ylabel("mean node std (px @512)")
    ax[1].plot(lv, [r["latent_sigma"] for r in t], marker="o", color="tab:green")
    ax[1].set_ylabel("mean latent σ")
    ax[2].plot(lv, [r["landmark_error_px"] for r in t], marker="o", color="tab:red")
    ax[2].set_ylabel("landmark error (px @512)")
    for a in ax:
        a.set_xlabel("noise σ / image range")
    fig.suptitle("Gaussian noise of rising strength (val images)")
    fig.tight_layout()
    fig.savefig(out / "noise.png", dpi=100)
    plt.close(fig)

    # (c) binned std vs error
    b = ev["std_vs_error"]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(std_nodes, err.reshape(-1), s=3, alpha=0.15, color="grey", label="nodes")
    ax.plot(b["bin_std"], b["bin_error"], "o-", color="tab:blue", label="8 equal-count bins")
    ax.set_xlabel("node std ½(σx+σy) (px)")
    ax.set_ylabel("node error |mean − truth| (px)")
    ax.set_title(f"std vs error, Spearman ρ bins {b['spearman_bins']:.2f}, nodes {b['spearman_nodes']:.2f}",
                 fontsize=9)
    ax.set_ylim(0, np.percentile(err, 99.5) * 1.1)
    ax.set_xlim(0, np.percentile(std_nodes, 99.5) * 1.1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "std_vs_error.png", dpi=100)
    plt.close(fig)

    # (d) ood
    o = ev["ood"]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.scatter(np.zeros(len(o["val_image_uncertainty_ref"])), o["val_image_uncertainty_ref"], label="val chest X-rays")
    for k, r in enumerate(t[1:], start=1):
        ax.scatter(np.full(len(r["per_image_std_ref"]), k), r["per_image_std_ref"], s=10, color="tab:purple",
                   label="val + Gaussian noise" if k == 1 else None)
    names = [n.replace("mammogram ", "MG ").replace(".RIGHT_MLO", "").replace(".LEFT_MLO", "") for n, _ in
             o["non_chest"]]
    ax.scatter(np.arange(len(names)) + len(t) + 1, [v for _, v in o["non_chest"]], color="tab:red",
               label="non-chest images")
    ax.axhline(o["threshold_ref"], color="k", ls="--", label=f"ood threshold {o['threshold_ref']:.2f}")
    ax.set_xticks(range(len(t) + 1 + len(names)), ["val"] + [f"noise {r['level']}" for r in t[1:]] + [""] + names,
                  rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 1.15 * max([o["threshold_ref"]] + [v for _, v in o["non_chest"]]))
    ax.set_ylabel("image_uncertainty_ref (px @512)")
    ax.set_title("image-level uncertainty: mean node std", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(out / "ood.png", dpi=100)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="training run folder (config.json, weights.safetensors)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=SHARED / "cxr_jsrt")
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = json.loads((args.run / "config.json").read_text())
    model = build_model(config["architecture"])
    model.load_state_dict(load_file(str(args.run / "weights.safetensors")))
    model.eval()
    names = list_cases(args.data)["val"][: args.limit or None]
    cases = [load_case(args.data, n) for n in names]
    images, truths, masks = [c[0] for c in cases], [c[1] for c in cases], [c[2] for c in cases]
    results = [checks.predict_array(img, model, args.samples) for img in images]
    acc, err = accuracy(results, truths, masks)
    std_nodes = np.stack([r.node_std for r in results]).reshape(-1)
    bin_std, bin_err = checks.binned_std_vs_error(std_nodes, err.reshape(-1), bins=8)
    bin5_std, bin5_err = checks.binned_std_vs_error(std_nodes, err.reshape(-1), bins=5)
    val_u = [r.image_uncertainty_ref for r in results]
    threshold = OOD_FACTOR * max(val_u)
    occ_rows, example = occlusion_study(model, images, truths, results, args.samples)
    ratios = [r["under_over_others"] for r in occ_rows if np.isfinite(r["under_over_others"])]
    inc = [r["occluded_over_clean"] for r in occ_rows if np.isfinite(r["occluded_over_clean"])]
    noise = noise_study(model, images, truths, args.samples)
    non_chest = [(name, checks.predict_array(a, model, args.samples).image_uncertainty_ref)
                 for name, a in non_chest_images()]
    ev = {
        "images": len(names), "samples": args.samples, "val_cases": names, **acc,
        "mean_node_std_px": float(std_nodes.mean()),
        "latent_sigma": float(np.mean([r.latent_sigma_mean for r in results])),
        "occlusion": {"frac": OCCLUSION_FRAC, "cases": occ_rows, "median_under_over_others": float(np.median(ratios)),
                      "share_under_above_others": float(np.mean(np.array(ratios) > 1.0)),
                      "median_occluded_over_clean": float(np.median(inc))},
        "noise": noise,
        "noise_monotonic": checks.is_increasing([r["mean_node_std_ref"] for r in noise]),
        "noise_monotonic_within_2pct": checks.is_increasing([r["mean_node_std_ref"] for r in noise], 0.02),
        "std_vs_error": {"bin_std": bin_std.round(4).tolist(), "bin_error": bin_err.round(4).tolist(),
                         "increasing": checks.is_increasing(bin_err), "spearman_bins": spearman(bin_std, bin_err),
                         "bins5_std": bin5_std.round(4).tolist(), "bins5_error": bin5_err.round(4).tolist(),
                         "bins5_increasing": checks.is_increasing(bin5_err),
                         "spearman_nodes": spearman(std_nodes, err.reshape(-1))},
        "ood": {"rule": f"image_uncertainty_ref > {OOD_FACTOR} x the largest value over the clean val images",
                "threshold_ref": threshold, "val_image_uncertainty_ref": [round(v, 4) for v in val_u],
                "non_chest": [(n, round(v, 4)) for n, v in non_chest],
                "non_chest_flagged": [bool(v > threshold) for _, v in non_chest],
                "noise_flagged_share": {str(r["level"]): float(np.mean(np.array(r["per_image_std_ref"]) > threshold))
                                        for r in noise}},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    plots(args.out, ev, example, err, std_nodes)
    (args.out / "evaluation.json").write_text(json.dumps(ev, indent=2))
    brief = {k: ev[k] for k in ("landmark_error_px", "dice_lungs", "dice_heart", "mean_node_std_px", "latent_sigma",
                                "noise_monotonic")}
    print(json.dumps(brief, indent=2), json.dumps(ev["occlusion"]["median_under_over_others"]),
          json.dumps(ev["std_vs_error"]["bin_error"]), json.dumps(ev["ood"]["non_chest"]), threshold)


if __name__ == "__main__":
    main()
