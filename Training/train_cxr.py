"""Train the variational HybridGNet (cxr-landmarks) on ../shared/data/cxr_jsrt (its train / val split).

    python Training/train_cxr.py --out runs/cxr_hybrid256 --epochs 200 --threads 2

Loss per batch (HybridGNet / CheXmask-U):
    L = MSE(ŷ, y) [+ w_ds · (MSE(p₁, P y) + MSE(p₂, y)) with --skip] + β(t) · KL(N(μ, σ²) ‖ N(0, I))
with y the node positions normalised to the square input (u = x / S ∈ [0, 1], preprocess.py), MSE the mean over
nodes and both coordinates, KL the mean over latent dimensions and the batch (hybridgnet.kl_divergence), and β
annealed log-linearly from --beta-start 1e-5 to --beta-end 1e-2 over the first --anneal fraction of the epochs,
then held (a too small β lets σ collapse, making the sampled uncertainty meaningless).
Adam (weight decay 1e-5), learning rate with a cosine decay to 5 % over the epochs; batch 16; augmentation in
cxr_augment.py. The final-epoch weights are kept (the val split is never used to pick a checkpoint).
Validation every --eval-every epochs through z = μ: mean landmark error and Dice of the filled rings vs the SCR
masks (both at 512 × 512), mean latent σ and the mean node std of 20 latent samples (px at 512).
Writes weights.safetensors, config.json, metrics.json, log.csv to --out. --init starts from a run's weights (a second
stage, e.g. at a lower learning rate with β held at its final value: --beta-start 1e-2); --init-encoder takes only the
encoder and the μ / log σ² heads from a run (to train another decoder on a trained encoder).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cxr_augment import random_affine, random_intensity  # noqa: E402
from datasets.jsrt_landmarks import list_cases, load_case, load_tensors  # noqa: E402
from uqseg.cxr.losses import hybridgnet_loss  # noqa: E402
from uqseg.cxr.rasterise import LABELS, organ_masks  # noqa: E402
from uqseg.metrics import dice  # noqa: E402
from uqseg.tasks.cxr_landmarks import build_model  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cxr_jsrt"
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, required=True)
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
    ap.add_argument("--limit", type=int, default=0, help="use only the first N training images (smoke tests)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--init", type=Path, default=None, help="start from these weights (a second training stage)")
    ap.add_argument("--init-encoder", type=Path, default=None,
                    help="start the encoder and the μ / log σ² heads from these weights (e.g. a lighter decoder)")
    ap.add_argument("--cache", type=Path, default=Path(__file__).resolve().parents[1] / "runs" / "cache")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    split = list_cases(args.data)
    train_names, val_names = split["train"], split["val"]
    if args.limit:
        train_names, val_names = train_names[: args.limit], val_names[: max(2, args.limit // 4)]
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
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(args.init)))
    if args.init_encoder:
        from safetensors.torch import load_file

        own = model.state_dict()
        parts = ("encoder.", "mu_head.", "logvar_head.")
        taken = {k: v for k, v in load_file(str(args.init_encoder)).items()
                 if k.startswith(parts) and k in own and own[k].shape == v.shape}
        model.load_state_dict(taken, strict=False)
        print(f"encoder initialised from {args.init_encoder}: {len(taken)} tensors", flush=True)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=1e-5)
    steps_per_epoch = math.ceil(len(train_names) / args.batch)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / (args.epochs * steps_per_epoch)))))
    args.out.mkdir(parents=True, exist_ok=True)
    log = open(args.out / "log.csv", "w")
    cols = ["landmark_error_px", "dice_lungs", "dice_heart", "latent_sigma", "node_std_px"]
    log.write("epoch,seconds,lr,beta,train_loss,train_mse_px,train_kl," + ",".join("val_" + c for c in cols) + "\n")
    t0 = time.time()
    for epoch in range(1, args.epochs + 1):
        model.train()
        beta = beta_at(epoch, args.epochs, args.beta_start, args.beta_end, args.anneal)
        order = torch.randperm(len(train_names), generator=gen)
        sums = np.zeros(3)
        for i in range(0, len(order), args.batch):
            idx = order[i: i + args.batch]
            img, tgt = random_affine(tr_img[idx], tr_tgt[idx], gen)
            img = random_intensity(img, gen)
            pos, mu, logvar, inter = model(img)
            loss, mse, kl = hybridgnet_loss(model, pos, mu, logvar, inter, tgt, beta, args.ds_weight)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            sums += [loss.item() * len(idx), mse.item() * len(idx), kl.item() * len(idx)]
        sums /= len(train_names)
        row = [epoch, round(time.time() - t0, 1), f"{opt.param_groups[0]['lr']:.3g}", f"{beta:.3g}",
               f"{sums[0]:.6g}", round(math.sqrt(sums[1] * 2) * SIDE, 3), round(sums[2], 4)]
        if epoch % args.eval_every == 0 or epoch == args.epochs:
            m = evaluate(model, va_img, va_tgt, va_msk)
            row += [round(m[c], 4) for c in cols]
            save_file(model.state_dict(), str(args.out / "weights_last.safetensors"))  # survives an interruption
        else:
            row += [""] * len(cols)
        log.write(",".join(map(str, row)) + "\n")
        log.flush()
        print(*row, flush=True)

    final = evaluate(model, va_img, va_tgt, va_msk)
    config = {"architecture": architecture, "ds_weight": args.ds_weight, "epochs": args.epochs, "batch": args.batch,
              "lr": args.lr,
              "beta_start": args.beta_start, "beta_end": args.beta_end, "anneal": args.anneal, "seed": args.seed,
              "init": str(args.init) if args.init else None,
              "init_encoder": str(args.init_encoder) if args.init_encoder else None, "train_cases": train_names,
              "val_cases": val_names,
              "train_seconds": round(time.time() - t0, 1),
              "threads": torch.get_num_threads()}
    save_file(model.state_dict(), str(args.out / "weights.safetensors"))
    (args.out / "config.json").write_text(json.dumps(config, indent=2))
    (args.out / "metrics.json").write_text(json.dumps(final, indent=2))
    print("final validation:", json.dumps(final))


if __name__ == "__main__":
    main()
