"""Train the breast / pectoral segmentation model (mammo-breast; after Verboom et al., JMI 2024) on
../shared/data/mammo_ddsm.

    # the shipped model (mammo-breast-mcd 1.0.0): three stages, each from the previous one's final weights
    python Training/train_breast.py --out runs/breast_w8 --width 8 --epochs 15 --threads 2
    python Training/train_breast.py --out runs/breast_w8_s2 --init runs/breast_w8/weights.safetensors \
        --epochs 30 --lr 1.5e-3 --threads 2
    python Training/train_breast.py --out runs/breast_w8_s3 --init runs/breast_w8_s2/weights.safetensors \
        --epochs 30 --lr 1e-3 --threads 2

Data: datasets/ddsm_breast.py (inference preprocessing → 0.4 mm working images 600 × 300, canonical side from the
label; split: every 5th sorted name is validation, 10 of 50). Augmentation: breast_augment.py (crop with padding to
512 × 320, scale, ±5° rotation, elastic, flips, pseudo-CC crops, window/LUT jitter, gamma 0.5–1.5, noise).
Loss: class-weighted cross-entropy, weights (background 1, breast 1, pectoral α = 2); with --boundary-weight β the
pixels near a reference boundary weigh up to 1 + β (breast_boundary_loss.py; a fine-tuning option, not used by the
shipped model). Dropout 0.5 is active during
training (as in the paper). AdamW (lr --lr, weight decay 1e-4), one linear warm-up epoch then cosine decay to 2 % over
the run; the number of epochs is --epochs, or — with --minutes — as many as fit in that wall time, fixed after the
first epoch from its duration (config.json records the number, so `--epochs N` repeats the run's schedule). The
final-epoch weights are kept (validation never picks a checkpoint). Every --eval-every epochs the validation Dice
(deterministic pass on the working grid) is logged. Writes weights.safetensors, config.json, metrics.json, log.csv.
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
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))

from breast_augment import PATCH, augment_batch  # noqa: E402
from breast_boundary_loss import boundary_weighted_ce  # noqa: E402
from datasets.ddsm_breast import list_cases, load_cases, split, stack  # noqa: E402
from uqseg.mammo.breast_model import BreastSegNet  # noqa: E402
from uqseg.mammo.breast_preprocess import TARGET_SPACING_MM, pad_to_multiple  # noqa: E402

CLASS_WEIGHTS = (1.0, 1.0, 2.0)  # background, breast, pectoral (α_pectoral = 2)


def dice(pred: torch.Tensor, truth: torch.Tensor, k: int) -> float | None:
    p, t = pred == k, truth == k
    s = p.sum() + t.sum()
    return None if s == 0 else float(2 * (p & t).sum() / s)


@torch.no_grad()
def evaluate(model: BreastSegNet, images: torch.Tensor, labels: torch.Tensor) -> dict:
    """Mean per-image Dice of breast (class 1), pectoral (2) and tissue (1 ∪ 2) on the working grid, dropout off."""
    model.eval()
    out = {"breast": [], "pectoral": [], "tissue": []}
    for img, lab in zip(images, labels):
        x, (h, w) = pad_to_multiple(img[None])
        pred = model(x)[0, :, :h, :w].argmax(0)
        for name, k in (("breast", 1), ("pectoral", 2)):
            d = dice(pred, lab, k)
            if d is not None:
                out[name].append(d)
        out["tissue"].append(dice((pred > 0).long(), (lab > 0).long(), 1))
    return {k: float(np.mean(v)) if v else None for k, v in out.items()}


def save_weights(model: BreastSegNet, path: Path) -> None:
    """safetensors needs contiguous tensors (the channels-last conv weights are not)."""
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))


def lr_at(step: int, steps_per_epoch: int, total_epochs: int, base: float) -> float:
    warm = steps_per_epoch
    if step < warm:
        return base * (step + 1) / warm
    t = (step - warm) / max(1, (total_epochs - 1) * steps_per_epoch)
    return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/mammo_ddsm")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--minutes", type=float, default=0.0, help="wall-time budget: sets the epochs after epoch 1")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--patch", type=int, nargs=2, default=list(PATCH))
    ap.add_argument("--limit", type=int, default=0, help="use only the first N training images (smoke tests)")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (smoke tests)")
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--init", type=Path, default=None, help="start from these weights (a second, lower-lr stage)")
    ap.add_argument("--boundary-weight", type=float, default=0.0,
                    help="β of the boundary-weighted loss (breast_boundary_loss.py); 0: plain class-weighted CE")
    ap.add_argument("--boundary-sigma-mm", type=float, default=2.0, help="σ of the boundary weight, mm")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    train_names, val_names = split(list_cases(args.data))
    if args.limit:
        train_names, val_names = train_names[: args.limit], val_names[: max(1, args.limit // 2)]
    t_load = time.time()
    tr_img, tr_lab = stack(load_cases(args.data, train_names))
    va_img, va_lab = stack(load_cases(args.data, val_names))
    print(f"loaded {len(train_names)} train / {len(val_names)} val working images {tuple(tr_img.shape[-2:])} "
          f"in {time.time() - t_load:.1f} s", flush=True)
    model = BreastSegNet(width=args.width, dropout=0.5)
    if args.init:
        model.load_state_dict(load_file(str(args.init)))
        print(f"initialised from {args.init}", flush=True)
    model = model.to(memory_format=torch.channels_last)  # ≈ 25 % faster on CPU
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    weights = torch.tensor(CLASS_WEIGHTS)
    args.out.mkdir(parents=True, exist_ok=True)
    log = open(args.out / "log.csv", "w")
    log.write("epoch,seconds,lr,train_loss,val_dice_breast,val_dice_pectoral,val_dice_tissue\n")
    steps_per_epoch = math.ceil(len(train_names) / args.batch)
    epochs = args.epochs
    step = 0
    t0 = time.time()
    epoch = 0
    while epoch < epochs:
        epoch += 1
        model.train()
        order = torch.randperm(len(train_names), generator=gen)
        losses = []
        for i in range(0, len(order), args.batch):
            idx = order[i : i + args.batch]
            img, lab = augment_batch(tr_img[idx], tr_lab[idx], gen, tuple(args.patch))
            for g in opt.param_groups:
                g["lr"] = lr_at(step, steps_per_epoch, epochs, args.lr)
            logits = model(img.contiguous(memory_format=torch.channels_last))
            if args.boundary_weight:
                loss = boundary_weighted_ce(logits, lab, weights, args.boundary_weight,
                                            args.boundary_sigma_mm / TARGET_SPACING_MM)
            else:
                loss = F.cross_entropy(logits, lab, weight=weights)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
            if args.max_steps and step >= args.max_steps:
                break
        if epoch == 1 and args.minutes:
            per_epoch = time.time() - t0
            epochs = max(2, int(args.minutes * 60 / per_epoch))
            print(f"epoch 1 took {per_epoch:.1f} s: {epochs} epochs fit in {args.minutes:g} min", flush=True)
        row = [epoch, round(time.time() - t0, 1), round(opt.param_groups[0]["lr"], 6), round(float(np.mean(losses)), 4)]
        if epoch % args.eval_every == 0 or epoch == epochs or args.max_steps:
            m = evaluate(model, va_img, va_lab)
            row += [None if m[k] is None else round(m[k], 4) for k in ("breast", "pectoral", "tissue")]
            save_weights(model, args.out / "weights.safetensors")
        else:
            row += [""] * 3
        log.write(",".join("" if v is None else str(v) for v in row) + "\n")
        log.flush()
        print(*row, flush=True)
        if args.max_steps and step >= args.max_steps:
            break

    final = evaluate(model, va_img, va_lab)
    config = {"width": args.width, "dropout": 0.5, "epochs": epoch, "batch": args.batch, "lr": args.lr,
              "patch": list(args.patch), "class_weights": list(CLASS_WEIGHTS), "seed": args.seed,
              "minutes_budget": args.minutes, "boundary_weight": args.boundary_weight,
              "boundary_sigma_mm": args.boundary_sigma_mm,
              "init": str(args.init) if args.init else None, "threads": args.threads or torch.get_num_threads(),
              "train_cases": train_names, "val_cases": val_names, "train_seconds": round(time.time() - t0, 1),
              "work_shape": list(tr_img.shape[-2:])}
    save_weights(model, args.out / "weights.safetensors")
    (args.out / "config.json").write_text(json.dumps(config, indent=2))
    (args.out / "metrics.json").write_text(json.dumps(final, indent=2))
    print("final validation (working grid, deterministic):", json.dumps(final), flush=True)


if __name__ == "__main__":
    main()
