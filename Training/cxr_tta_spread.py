"""Test-time augmentation for cxr-landmarks, measured and not shipped (issue 19, point 2): does the spread of the
nodes over K augmented copies of the input point at the wrong node better than the latent MC std?

Per val image: K copies of the network input (copy 0 unchanged; the others a random affine — rotation ±deg, scale
1 ± scale, shift ± shift of the side, the model's zero padding outside — and a gamma in 0.8–1.25), each encoded
once and decoded with the task's 50 latent samples (seed 0); every decoded position mapped back to the input frame
through the inverse affine (`warp_points` of the forward map). Then, per node:
- `latent_only`: mean / std of copy 0's samples (the task's own numbers: pooled Spearman 0.188);
- `tta_all`: mean / std of all K × 50 mapped samples (latent and augmentation spread together);
- `tta_modes_spread`: the std of the K decodings of z = μ (augmentation spread alone), error of the `tta_all` mean;
- `tta_modes_spread+latent0`: sqrt(that² + copy 0's latent std²).
Scored by the pooled Spearman(node std, node error) over the 21 JSRT val images (the issue's definition), raw and
after the per-node scale of uqseg.cxr.calibration (`scale_lsq`, 7-fold CV over the val images, as 1.1.0 was).

    python Training/cxr_tta_spread.py --out runs/cxr_tta.json     # the four settings of the card, ~1 min
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from common import DATA

#: (copies K, rotation deg, scale ±, shift ±) — the settings in the card's tried_not_shipped
SETTINGS = [(8, 4.0, 0.05, 0.03), (16, 8.0, 0.10, 0.05), (16, 2.0, 0.02, 0.01), (32, 4.0, 0.05, 0.03)]


@torch.inference_mode()
def spread(net, images, truths, copies: int, deg: float, scale: float, shift: float) -> dict:
    import uqseg.cxr.calibration as cal
    from uqseg.cxr.inference import sample_latents
    from uqseg.cxr.preprocess import network_input
    from uqseg.transforms.augment import random_theta, warp

    gen = torch.Generator().manual_seed(0)
    out = {k: [] for k in ("S0", "M0", "Sall", "Mall", "Smode")}
    for img, truth in zip(images, truths):
        x, frame = network_input(img, net.input_size)
        theta = random_theta(copies, gen, max_deg=deg, scale=(1 - scale, 1 + scale), shift=shift)
        theta[0] = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        xs = warp(x.expand(copies, -1, -1, -1).contiguous(), theta, "zeros").clamp(0, 1)
        gamma = torch.exp(torch.empty(copies).uniform_(np.log(0.8), np.log(1.25), generator=gen))
        gamma[0] = 1.0
        xs = xs ** gamma.view(copies, 1, 1, 1)
        samples, modes = [], []
        for k in range(copies):
            mu, logvar, feats = net.encode(xs[k:k + 1])
            pos = net.decode(torch.cat([mu, sample_latents(mu, logvar, 50, 0)]), feats)[0].double()
            a, t = theta[k, :, :2].double(), theta[k, :, 2].double()
            back = ((2 * pos - 1) @ a.T + t + 1) / 2  # the copy's output frame → the input's normalised frame
            modes.append(back[0])
            samples.append(back[1:])
        p = torch.stack(samples).numpy()  # (K, 50, 120, 2)
        m = torch.stack(modes).numpy()
        flat = p.reshape(-1, *p.shape[2:])
        out["S0"].append(frame.std_to_pixels(p[0].std(0)))
        out["M0"].append(frame.from_normalised(p[0].mean(0)))
        out["Sall"].append(frame.std_to_pixels(flat.std(0)))
        out["Mall"].append(frame.from_normalised(flat.mean(0)))
        out["Smode"].append(frame.std_to_pixels(m.std(0)))
    z = {k: np.stack(v) for k, v in out.items()}
    truths = np.stack(truths)
    folds = cal.contiguous_folds(len(images), 7)
    result = {"copies": copies, "rotation_deg": deg, "scale": scale, "shift": shift}
    for name, s, m in (("latent_only", z["S0"], z["M0"]), ("tta_all", z["Sall"], z["Mall"]),
                       ("tta_modes_spread", z["Smode"], z["Mall"]),
                       ("tta_modes_spread+latent0", np.sqrt(z["Smode"] ** 2 + z["S0"] ** 2), z["Mall"])):
        node_std, err = s.mean(-1), np.linalg.norm(m - truths, axis=-1)
        result[name] = {"mean_error_px": round(float(err.mean()), 3),
                        "pooled_spearman": round(cal.pooled_spearman(node_std, err), 4),
                        "cv_scale_lsq": round(cal.cross_validated(cal.fit_scale_lsq, node_std, err, folds), 4)}
    return result


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA / "cxr_jsrt")
    ap.add_argument("--model", default=None, help="model id or folder (default: the task's default model)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    from datasets.jsrt_landmarks import list_cases, load_case
    from uqseg.models.registry import find_model
    from uqseg.tasks import get_task

    torch.set_num_threads(args.threads)
    card = find_model("cxr-landmarks", args.model)
    net = get_task("cxr-landmarks").load(card, "cpu").eval()
    names = list_cases(args.data)["val"]
    cases = [load_case(args.data, n) for n in names]
    results = [spread(net, [c[0] for c in cases], [c[1] for c in cases], *s) for s in SETTINGS]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": f"{card.id} {card.version}", "images": len(names),
                                    "results": results}, indent=1) + "\n")
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
