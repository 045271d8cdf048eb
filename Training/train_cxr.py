"""Train the variational HybridGNet (cxr-landmarks) on ../shared/data/cxr_jsrt (its train / val split).

    python Training/train_cxr.py --out runs/cxr_hybrid256 --epochs 200 --threads 2

Loss per batch (HybridGNet / CheXmask-U):
    L = MSE(ŷ, y) [+ w_ds · (MSE(p₁, P y) + MSE(p₂, y)) with --skip] + β(t) · KL(N(μ, σ²) ‖ N(0, I))
with y the node positions normalised to the square input (u = x / S ∈ [0, 1], preprocess.py), MSE the mean over
nodes and both coordinates, KL the mean over latent dimensions and the batch (hybridgnet.kl_divergence), and β
annealed log-linearly from --beta-start 1e-5 to --beta-end 1e-2 over the first --anneal fraction of the epochs,
then held (a too small β lets σ collapse, making the sampled uncertainty meaningless).
Adam (weight decay 1e-5), gradient norm clipped at 5, learning rate with a cosine decay to 5 % over the steps
(`WarmupCosine` without warm-up); batch 16; augmentation in cxr_augment.py; the loop is `uqseg.finetune.loop.fit`.
The final-epoch weights are kept (the val split is never used to pick a checkpoint).
Validation every --eval-every epochs through z = μ: mean landmark error and Dice of the filled rings vs the SCR
masks (both at 512 × 512), mean latent σ and the mean node std of 20 latent samples (px at 512).
Writes weights.safetensors, config.json, metrics.json, log.csv (the lr column: the last step's) and, at each
validation, checkpoint.safetensors to --out (Training/common.py). --init starts from a run's weights (a second
stage, e.g. at a lower learning rate with β held at its final value: --beta-start 1e-2); --init-encoder takes only the
encoder and the μ / log σ² heads from a run (to train another decoder on a trained encoder).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from common import DATA, REPO, RunFolder, limit_split, recipe_parser, start
from cxr_augment import random_affine, random_intensity
from datasets.jsrt_landmarks import list_cases, load_case, load_tensors
from uqseg.cxr.losses import hybridgnet_loss
from uqseg.cxr.rasterise import LABELS, organ_masks
from uqseg.metrics import dice
from uqseg.finetune.loop import TensorSet, WarmupCosine, fit
from uqseg.tasks.cxr_landmarks import build_model

SIDE = 512  # the shared images' side: errors are reported in its pixels


def beta_at(epoch: int, epochs: int, start: float, end: float, anneal: float) -> float:
    """Log-linear from start (epoch 1) to end (at anneal · epochs), then end."""
    n = max(1, round(anneal * epochs))
    f = min(1.0, (epoch - 1) / max(1, n - 1))
    return float(math.exp(math.log(start) + f * (math.log(end) - math.log(start))))


@torch.no_grad()
def evaluate(model, images, targets, masks, samples: int = 20) -> dict:
    """Val metrics through z = μ; node std from `samples` latent draws (all in pixels of the 512 image)."""
    model.eval()
    mu, logvar, feats = model.encode(images)
    pos, _ = model.decode(mu, feats)
    err = ((pos - targets) * SIDE).norm(dim=-1)  # (B, N) px
    dices = {k: [] for k in LABELS}
    for p, m in zip(pos.numpy() * SIDE - 0.5, masks):
        pred = organ_masks(p, m.shape)
        lm = np.zeros(m.shape, np.uint8)
        for organ in LABELS:  # heart painted last, as in the exported labelmap
            lm[pred[organ]] = LABELS[organ]
        for organ, label in LABELS.items():
            dices[organ].append(dice(lm == label, m == label))
    stds = []
    for i in range(len(images)):
        eps = torch.randn(samples, mu.shape[1])
        z = model.reparameterise(mu[i:i + 1].expand(samples, -1), logvar[i:i + 1].expand(samples, -1), eps)
        out, _ = model.decode(z, [f[i:i + 1] for f in feats])
        stds.append((out.std(0) * SIDE).mean().item())
    return {"landmark_error_px": err.mean().item(),
            "dice_right_lung": float(np.mean(dices["right_lung"])),
            "dice_left_lung": float(np.mean(dices["left_lung"])),
            "dice_lungs": float(np.mean(dices["right_lung"] + dices["left_lung"])),
            "dice_heart": float(np.mean(dices["heart"])), "latent_sigma": torch.exp(0.5 * logvar).mean().item(),
            "node_std_px": float(np.mean(stds)), "images": len(images)}


class CxrTraining:
    """The recipe for `fit`: a batch is (images, nodes) rows of the cached training TensorSet; β is set per epoch."""

    freeze_batchnorm = False
    clip_norm = 5.0
    weight_decay = 1e-5

    def __init__(self, beta_start: float, beta_end: float, anneal: float, ds_weight: float):
        self.beta_start, self.beta_end, self.anneal, self.ds_weight = beta_start, beta_end, anneal, ds_weight
        self.beta = beta_start

    def start_epoch(self, epoch: int, epochs: int) -> None:
        self.beta = beta_at(epoch, epochs, self.beta_start, self.beta_end, self.anneal)

    def optimizer(self, params, lr: float):
        return torch.optim.Adam(params, lr=lr, weight_decay=self.weight_decay)

    def loss(self, model, batch, gen, device):
        img, tgt = random_affine(*batch, gen)
        img = random_intensity(img, gen)
        pos, mu, logvar, inter = model(img)
        loss, mse, kl = hybridgnet_loss(model, pos, mu, logvar, inter, tgt, self.beta, self.ds_weight)
        return loss, {"loss": loss.item(), "mse": mse.item(), "kl": kl.item()}


def main(argv=None):
    ap = recipe_parser(__doc__, DATA / "cxr_jsrt")
    ap.add_argument("--size", type=int, default=256, help="network input side G (the data is 512)")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--beta-start", type=float, default=1e-5)
    ap.add_argument("--beta-end", type=float, default=1e-2)
    ap.add_argument("--anneal", type=float, default=0.6, help="fraction of the epochs over which β rises")
    ap.add_argument("--skip", action="store_true", help="image-to-graph skip connections + deep supervision")
    ap.add_argument("--ds-weight", type=float, default=0.5)
    ap.add_argument("--latent", type=int, default=64)
    ap.add_argument("--graph-channels", type=int, default=32, help="node features on the coarse graph")
    ap.add_argument("--fine-channels", type=int, default=16, help="node features on the full graph")
    ap.add_argument("--skip-channels", type=int, default=16, help="features sampled by each skip connection")
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--init-encoder", type=Path, default=None,
                    help="start the encoder and the μ / log σ² heads from these weights (e.g. a lighter decoder)")
    ap.add_argument("--cache", type=Path, default=REPO / "runs" / "cache")
    args = ap.parse_args(argv)

    gen = start(args)
    split = list_cases(args.data)
    train_names, val_names = limit_split(split["train"], split["val"], args.limit, val_div=4, val_min=2)
    tag = f"{args.size}_{len(train_names)}_{len(val_names)}"
    tr_img, tr_tgt = load_tensors(args.data, train_names, args.size, args.cache / f"jsrt_train_{tag}.npz")
    va_img, va_tgt = load_tensors(args.data, val_names, args.size, args.cache / f"jsrt_val_{tag}.npz")
    va_msk = [load_case(args.data, n)[2] for n in val_names]

    architecture = {"input_size": args.size, "latent": args.latent, "widths": [16, 32, 64, 64, 128, 128], "stem": 8,
                    "graph_channels": args.graph_channels, "fine_channels": args.fine_channels, "k": 6,
                    "skip": args.skip, "skip_stages": [2, 1], "skip_channels": args.skip_channels}
    model = build_model(architecture)
    with torch.no_grad():
        model.template.copy_(tr_tgt.mean(0))
    if args.init:
        model.load_state_dict(load_file(str(args.init)))
    if args.init_encoder:
        own = model.state_dict()
        parts = ("encoder.", "mu_head.", "logvar_head.")
        taken = {k: v for k, v in load_file(str(args.init_encoder)).items()
                 if k.startswith(parts) and k in own and own[k].shape == v.shape}
        model.load_state_dict(taken, strict=False)
        print(f"encoder initialised from {args.init_encoder}: {len(taken)} tensors", flush=True)
    recipe = CxrTraining(args.beta_start, args.beta_end, args.anneal, args.ds_weight)
    steps_per_epoch = math.ceil(len(train_names) / args.batch)
    cols = ["landmark_error_px", "dice_lungs", "dice_heart", "latent_sigma", "node_std_px"]
    run = RunFolder(args.out, ["epoch", "seconds", "lr", "beta", "train_loss", "train_mse_px", "train_kl"]
                    + ["val_" + c for c in cols])

    def on_epoch(s):
        row = {"epoch": s.epoch, "seconds": round(s.seconds, 1), "lr": f"{s.lr:.3g}", "beta": f"{recipe.beta:.3g}",
               "train_loss": f"{s.train['loss']:.6g}", "train_mse_px": round(math.sqrt(s.train["mse"] * 2) * SIDE, 3),
               "train_kl": round(s.train["kl"], 4)}
        if s.val:
            row.update({"val_" + c: round(s.val[c], 4) for c in cols})
            run.checkpoint(model.state_dict())  # survives an interruption
        run.log(row)
        print(*(row.get(c, "") for c in run.columns), flush=True)

    t0 = time.time()
    fit(recipe, model, TensorSet(tr_img, tr_tgt), epochs=args.epochs, lr=args.lr, batch=args.batch, gen=gen,
        schedule=WarmupCosine(args.epochs * steps_per_epoch, warmup_steps=0, floor=0.05),
        evaluate=lambda m, s: evaluate(m, va_img, va_tgt, va_msk), eval_every=args.eval_every, on_epoch=on_epoch)
    final = evaluate(model, va_img, va_tgt, va_msk)
    config = {"architecture": architecture, "ds_weight": args.ds_weight, "epochs": args.epochs, "batch": args.batch,
              "lr": args.lr, "beta_start": args.beta_start, "beta_end": args.beta_end, "anneal": args.anneal,
              "seed": args.seed, "init": args.init, "init_encoder": args.init_encoder, "train_cases": train_names,
              "val_cases": val_names, "train_seconds": round(time.time() - t0, 1), "threads": torch.get_num_threads()}
    run.save_weights(model.state_dict())
    run.write_json("config.json", config)
    run.write_json("metrics.json", final)
    print("final validation:", json.dumps(final))


if __name__ == "__main__":
    main()
