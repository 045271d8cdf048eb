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
shipped model). Dropout 0.5 is active during training (as in the paper). AdamW (lr --lr, weight decay 1e-4), one
linear warm-up epoch then cosine decay to 2 % over the run (`WarmupCosine`); the number of epochs is --epochs, or —
with --minutes — as many as fit in that wall time, fixed after the first epoch from its duration (config.json
records the number, so `--epochs N` repeats the run's schedule). The loop is `uqseg.finetune.loop.fit`. The
final-epoch weights are kept (validation never picks a checkpoint). Every --eval-every epochs the validation Dice
(deterministic pass on the working grid) is logged and checkpoint.safetensors written. The run folder
(Training/common.py) gets weights.safetensors, config.json, metrics.json, log.csv.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from breast_augment import PATCH, augment_batch
from breast_boundary_loss import boundary_weighted_ce
from common import DATA, RunFolder, add_cv_flags, recipe_parser, split_for, start
from datasets.ddsm_breast import list_cases, load_cases, split, stack
from uqseg.finetune.loop import TensorSet, WarmupCosine, fit
from uqseg.mammo.breast_model import BreastSegNet
from uqseg.mammo.breast_preprocess import TARGET_SPACING_MM, pad_to_multiple
from uqseg import metrics

CLASS_WEIGHTS = (1.0, 1.0, 2.0)  # background, breast, pectoral (α_pectoral = 2)
COLUMNS = ["epoch", "seconds", "lr", "train_loss", "val_dice_breast", "val_dice_pectoral", "val_dice_tissue"]


def dice(pred: torch.Tensor, truth: torch.Tensor, k: int) -> float | None:
    """`uqseg.metrics.dice` of class k, None when class k is in neither (left out of the mean)."""
    p, t = (pred == k).cpu().numpy(), (truth == k).cpu().numpy()
    return None if not (p.any() or t.any()) else metrics.dice(p, t)


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


class BreastTraining:
    """The recipe for `fit`: a batch is (images, labels) rows of the working-grid TensorSet, cropped and augmented
    to `patch` (breast_augment.py)."""

    freeze_batchnorm = False
    clip_norm = None
    weight_decay = 1e-4

    def __init__(self, patch, boundary_weight: float = 0.0, boundary_sigma_px: float = 0.0):
        self.patch, self.boundary_weight, self.boundary_sigma_px = tuple(patch), boundary_weight, boundary_sigma_px
        self.class_weights = torch.tensor(CLASS_WEIGHTS)

    def optimizer(self, params, lr: float):
        return torch.optim.AdamW(params, lr=lr, weight_decay=self.weight_decay)

    def loss(self, model, batch, gen, device):
        img, lab = augment_batch(*batch, gen, self.patch)
        logits = model(img.contiguous(memory_format=torch.channels_last))
        if self.boundary_weight:
            loss = boundary_weighted_ce(logits, lab, self.class_weights, self.boundary_weight, self.boundary_sigma_px)
        else:
            loss = F.cross_entropy(logits, lab, weight=self.class_weights)
        return loss, {"loss": loss.item()}


def main(argv=None):
    ap = recipe_parser(__doc__, DATA / "mammo_ddsm")
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--minutes", type=float, default=0.0, help="wall-time budget: sets the epochs after epoch 1")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--patch", type=int, nargs=2, default=list(PATCH))
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (smoke tests)")
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--boundary-weight", type=float, default=0.0,
                    help="β of the boundary-weighted loss (breast_boundary_loss.py); 0: plain class-weighted CE")
    ap.add_argument("--boundary-sigma-mm", type=float, default=2.0, help="σ of the boundary weight, mm")
    add_cv_flags(ap)
    args = ap.parse_args(argv)

    gen = start(args)
    train_names, val_names = split_for(args, ap, *split(list_cases(args.data)))
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
    recipe = BreastTraining(args.patch, args.boundary_weight, args.boundary_sigma_mm / TARGET_SPACING_MM)
    steps_per_epoch = math.ceil(len(train_names) / args.batch)
    run = RunFolder(args.out, COLUMNS)

    def on_epoch(s):
        if s.epoch == 1 and args.minutes:
            print(f"epoch 1 took {s.seconds:.1f} s: {s.epochs} epochs fit in {args.minutes:g} min", flush=True)
        row = {"epoch": s.epoch, "seconds": round(s.seconds, 1), "lr": round(s.lr, 6),
               "train_loss": round(s.train["loss"], 4)}
        if s.val:
            row.update({f"val_dice_{k}": None if s.val[k] is None else round(s.val[k], 4)
                        for k in ("breast", "pectoral", "tissue")})
            run.checkpoint(model.state_dict())
        run.log(row)
        print(*(row.get(c, "") for c in COLUMNS), flush=True)

    t0 = time.time()
    result = fit(recipe, model, TensorSet(tr_img, tr_lab), epochs=args.epochs, lr=args.lr, batch=args.batch,
                 gen=gen, schedule=WarmupCosine(args.epochs * steps_per_epoch, steps_per_epoch, floor=0.02),
                 evaluate=lambda m, s: evaluate(m, va_img, va_lab), eval_every=args.eval_every, on_epoch=on_epoch,
                 max_steps=args.max_steps, epochs_for_minutes=args.minutes)
    final = evaluate(model, va_img, va_lab)
    config = {"width": args.width, "dropout": 0.5, "epochs": result["epochs"], "batch": args.batch, "lr": args.lr,
              "patch": list(args.patch), "class_weights": list(CLASS_WEIGHTS), "seed": args.seed,
              "minutes_budget": args.minutes, "boundary_weight": args.boundary_weight,
              "boundary_sigma_mm": args.boundary_sigma_mm, "init": args.init,
              "threads": args.threads or torch.get_num_threads(), "train_cases": train_names, "val_cases": val_names,
              "train_seconds": round(time.time() - t0, 1), "work_shape": list(tr_img.shape[-2:]),
              "cv": {"folds": args.folds, "fold": args.fold} if args.folds else None}
    run.save_weights(model.state_dict())
    run.write_json("config.json", config)
    run.write_json("metrics.json", final)
    print("final validation (working grid, deterministic):", json.dumps(final), flush=True)


if __name__ == "__main__":
    main()
