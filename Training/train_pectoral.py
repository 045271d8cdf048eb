"""Train the pectoral-boundary heatmap model (Zech et al., MIDL 2026) on ../shared/data/mammo_ddsm.

    python Training/train_pectoral.py --data ../shared/data/mammo_ddsm --out runs/pectoral_nllL_l10 \
        --loss nll_laplace --js-weight 10 --epochs 60

Fixed validation split (every 5th image in sorted order, see datasets/ddsm_pectoral.py). AdamW (weight decay 1e-2),
ReduceLROnPlateau on the training loss; the final-epoch weights are kept (the validation split is never used to pick a
checkpoint, so its numbers are held-out numbers). Writes weights.safetensors, config.json, metrics.json, log.csv.
Metrics on the 256×256 grid within muscle rows: MAE, RMSE (grid columns), LL (mean Laplace log-likelihood of the
true boundary under the predicted (μ, σ²)), mean σ.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))

from datasets.ddsm_pectoral import list_cases, load_tensors, split  # noqa: E402
from pectoral_augment import random_affine, random_intensity  # noqa: E402
from uqseg.mammo import boundary_grid as bg  # noqa: E402
from uqseg.mammo.heatmap import row_moments, row_softmax  # noqa: E402
from uqseg.mammo.losses import heatmap_loss  # noqa: E402
from uqseg.mammo.pectoral_model import VAR_FLOOR, PectoralHeatmapNet  # noqa: E402


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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/mammo_ddsm")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--loss", default="nll_laplace", choices=["nll_laplace", "nll_gaussian", "mae", "mse"])
    ap.add_argument("--js-weight", type=float, default=10.0)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N training images (smoke tests)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--init", type=Path, default=None, help="start from these weights (a second training stage)")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    train_names, val_names = split(list_cases(args.data))
    if args.limit:
        train_names, val_names = train_names[: args.limit], val_names[: max(1, args.limit // 2)]
    tr_img, tr_msk = load_tensors(args.data, train_names)
    va_img, va_msk = load_tensors(args.data, val_names)
    model = PectoralHeatmapNet(width=args.width)
    if args.init:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(args.init)))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=8)
    args.out.mkdir(parents=True, exist_ok=True)
    log = open(args.out / "log.csv", "w")
    log.write("epoch,seconds,lr,train_loss,train_data,train_js,val_mae,val_rmse,val_ll,val_mean_sigma\n")
    t0 = time.time()
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(train_names), generator=gen)
        sums = np.zeros(3)
        for i in range(0, len(order), args.batch):
            idx = order[i : i + args.batch]
            img, msk = random_affine(tr_img[idx], tr_msk[idx], gen)
            img = random_intensity(img, gen)
            target, valid, _ = targets_for(msk)
            prob = row_softmax(model(bg.to_grid(img))[:, 0])
            mean, var = row_moments(prob, VAR_FLOOR)
            loss, data, js = heatmap_loss(prob, mean, var, target, valid, args.loss, args.js_weight)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sums += [loss.item() * len(idx), data.item() * len(idx), js.item() * len(idx)]
        sums /= len(train_names)
        sched.step(sums[0])
        row = [epoch, round(time.time() - t0, 1), opt.param_groups[0]["lr"], *np.round(sums, 4)]
        if epoch % 5 == 0 or epoch == args.epochs:
            m = evaluate(model, va_img, va_msk)
            row += [round(m[k], 4) for k in ("mae", "rmse", "ll", "mean_sigma")]
        else:
            row += [""] * 4
        log.write(",".join(map(str, row)) + "\n")
        log.flush()
        print(*row, flush=True)

    final = evaluate(model, va_img, va_msk)
    config = {"width": args.width, "loss": args.loss, "js_weight": args.js_weight, "epochs": args.epochs,
              "batch": args.batch, "lr": args.lr, "seed": args.seed,
              "init": str(args.init) if args.init else None, "train_cases": train_names,
              "val_cases": val_names, "train_seconds": round(time.time() - t0, 1)}
    save_file(model.state_dict(), str(args.out / "weights.safetensors"))
    (args.out / "config.json").write_text(json.dumps(config, indent=2))
    (args.out / "metrics.json").write_text(json.dumps(final, indent=2))
    print("final validation:", json.dumps(final))


if __name__ == "__main__":
    main()
