"""Train the pectoral-boundary heatmap model (Zech et al., MIDL 2026) on ../shared/data/mammo_ddsm.

    python Training/train_pectoral.py --data ../shared/data/mammo_ddsm --out runs/pectoral_nllL_l10 \
        --loss nll_laplace --js-weight 10 --epochs 60

Fixed validation split (every 5th image in sorted order, see datasets/ddsm_pectoral.py). For choosing settings
without looking at it, `--folds K --fold i` trains on the 40 training images minus every K-th one from the i-th
(sorted order) and evaluates on those held out instead (cross-validation: the validation split is not loaded):

    python Training/train_pectoral.py --out runs/pcv/strong_f0 --augment strong --folds 4 --fold 0 --threads 1

AdamW (weight decay 1e-2), gradient norm clipped at 5, ReduceLROnPlateau(0.5, patience 8) on the epoch's mean training
loss; the final-epoch weights are kept (the validation split is never used to pick a checkpoint, so its numbers are
held-out numbers). Augmentation: pectoral_augment.py. The loop is `uqseg.finetune.loop.fit`; the run folder
(Training/common.py) gets weights.safetensors, config.json, metrics.json, log.csv (validation every 5 epochs) and
checkpoint.safetensors.
Metrics on the 256×256 grid within muscle rows: MAE, RMSE (grid columns), LL (mean Laplace log-likelihood of the
true boundary under the predicted (μ, σ²)), mean σ.
"""

from __future__ import annotations

import json
import time

import numpy as np
import torch
from safetensors.torch import load_file

from common import DATA, RunFolder, add_cv_flags, recipe_parser, split_for, start
from datasets.ddsm_pectoral import list_cases, load_tensors, split
from pectoral_augment import SETTINGS, STANDARD, random_affine, random_intensity
from uqseg.finetune.loop import ReduceOnPlateau, TensorSet, fit
from uqseg.mammo import boundary_grid as bg
from uqseg.mammo.heatmap import row_moments, row_softmax
from uqseg.mammo.losses import heatmap_loss
from uqseg.mammo.pectoral_model import VAR_FLOOR, PectoralHeatmapNet

COLUMNS = ["epoch", "seconds", "lr", "train_loss", "train_data", "train_js", "val_mae", "val_rmse", "val_ll",
           "val_mean_sigma"]
VAL = ("mae", "rmse", "ll", "mean_sigma")


def targets_for(masks: torch.Tensor):
    t, v, p = zip(*(bg.grid_targets(m[0].numpy()) for m in masks))
    return (torch.from_numpy(np.stack(t)), torch.from_numpy(np.stack(v)), torch.from_numpy(np.stack(p)))


@torch.no_grad()
def evaluate(model, images, masks) -> dict:
    model.eval()
    target, valid, present = targets_for(masks)
    mean, var, _ = model.decode(bg.to_grid(images))
    err = (mean - target)[present]
    sig = var.sqrt()[present]
    b = torch.sqrt(var[present] / 2)
    ll = -(torch.log(2 * b) + err.abs() / b)
    return {
        "mae": err.abs().mean().item(),
        "rmse": err.pow(2).mean().sqrt().item(),
        "ll": ll.mean().item(),
        "mean_sigma": sig.mean().item(),
        "rows": int(present.sum()),
    }


class PectoralTraining:
    """The recipe for `fit`: a batch is (images, masks) rows of the training TensorSet."""

    freeze_batchnorm = False
    clip_norm = 5.0
    weight_decay = 1e-2

    def __init__(self, loss: str, js_weight: float, ranges=STANDARD):
        self.loss_name, self.js_weight, self.ranges = loss, js_weight, ranges

    def optimizer(self, params, lr: float):
        return torch.optim.AdamW(params, lr=lr, weight_decay=self.weight_decay)

    def loss(self, model, batch, gen, device):
        img, msk = random_affine(*batch, gen, self.ranges)
        img = random_intensity(img, gen, self.ranges)
        target, valid, _ = targets_for(msk)
        prob = row_softmax(model(bg.to_grid(img))[:, 0])
        mean, var = row_moments(prob, VAR_FLOOR)
        loss, data, js = heatmap_loss(prob, mean, var, target, valid, self.loss_name, self.js_weight)
        return loss, {"loss": loss.item(), "data": data.item(), "js": js.item()}


def main(argv=None):
    ap = recipe_parser(__doc__, DATA / "mammo_ddsm")
    ap.add_argument("--loss", default="nll_laplace", choices=["nll_laplace", "nll_gaussian", "mae", "mse"])
    ap.add_argument("--js-weight", type=float, default=10.0)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--augment", default="standard", choices=sorted(SETTINGS),
                    help="augmentation ranges of pectoral_augment.py (default: %(default)s)")
    add_cv_flags(ap)
    args = ap.parse_args(argv)

    gen = start(args)
    train_names, val_names = split_for(args, ap, *split(list_cases(args.data)))
    train = TensorSet(*load_tensors(args.data, train_names))
    va_img, va_msk = load_tensors(args.data, val_names)
    model = PectoralHeatmapNet(width=args.width)
    if args.init:
        model.load_state_dict(load_file(str(args.init)))
    run = RunFolder(args.out, COLUMNS)

    def on_epoch(s):
        row = {"epoch": s.epoch, "seconds": round(s.seconds, 1), "lr": s.lr,
               **{f"train_{k}": round(s.train[k], 4) for k in ("loss", "data", "js")}}
        if s.val:
            row.update({f"val_{k}": round(s.val[k], 4) for k in VAL})
            run.checkpoint(model.state_dict())
        run.log(row)
        print(*(row.get(c, "") for c in COLUMNS), flush=True)

    t0 = time.time()
    fit(PectoralTraining(args.loss, args.js_weight, SETTINGS[args.augment]), model, train, epochs=args.epochs,
        lr=args.lr, batch=args.batch,
        gen=gen, schedule=ReduceOnPlateau(factor=0.5, patience=8),
        evaluate=lambda m, s: evaluate(m, va_img, va_msk), eval_every=args.eval_every, on_epoch=on_epoch)
    final = evaluate(model, va_img, va_msk)
    config = {"width": args.width, "loss": args.loss, "js_weight": args.js_weight, "epochs": args.epochs,
              "batch": args.batch, "lr": args.lr, "seed": args.seed, "init": args.init, "augment": args.augment,
              "cv": {"folds": args.folds, "fold": args.fold} if args.folds else None,
              "train_cases": train_names, "val_cases": val_names, "train_seconds": round(time.time() - t0, 1),
              "threads": torch.get_num_threads()}
    run.save_weights(model.state_dict())
    run.write_json("config.json", config)
    run.write_json("metrics.json", final)
    print("final validation:", json.dumps(final))


if __name__ == "__main__":
    main()
