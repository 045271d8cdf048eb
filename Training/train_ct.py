"""Train the ct-organs stochastic segmentation network (Kampen, Aspe et al., NLDL 2026) — two-stage schedule.

    # stage 1: the deterministic backbone (μ head only), CE + soft Dice
    python Training/train_ct.py --form deterministic --out runs/ct_det --steps 1500 --lr 1e-3
    # stage 2: the stochastic heads on top of it, one run per covariance form (Eq. 11-12 loss, AdamW 1e-4)
    python Training/train_ct.py --form mixture_of_bases --init runs/ct_det/weights.safetensors --out runs/ct_mob \
        --steps 600 --lr 1e-4
    # (likewise --form diagonal / lowrank / single_basis for the comparison of Training/evaluate_ct.py)

Data: by default the shared sample (../shared/data/ct_totalseg: the 20-slice abdominal DICOM series and its
TotalSegmentator v2 label map, aligned by physical position; datasets/totalseg.py); `--totalseg ROOT` adds every
case of a TotalSegmentator-layout folder (<case>/ct.nii.gz + <case>/segmentations/<organ>.nii.gz), every 5th case
(sorted) held out. The shared volume is split along z: its `--val-slices` most cranial working-grid slices are the
validation slab (never sampled for training), the rest trains — a demonstration split of ONE patient.
Preprocessing (uqseg.ct.preprocess, recorded in config.json for the model card): resampling to an axis-aligned
`--spacing` mm isotropic grid, HU window `--hu` → [−1, 1]. Patches `--patch` (z, y, x) with foreground
oversampling (ct_augment.py) and heavy augmentation (rotation, scaling, elastic, gamma, noise, blur).
Optimiser AdamW (weight decay 1e-4); stage 2 gives the covariance heads `--head-lr-factor` × the learning rate
(they start from scratch, the backbone from stage 1); cosine decay to 5 % after a 5 % linear warm-up.
Writes weights.safetensors (the final step's; validation never picks a checkpoint), config.json, log.jsonl, and
checkpoint.safetensors at every evaluation (to continue an interrupted run with --init).
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ct_augment import augment, build_augmentation, sample_patch  # noqa: E402
from datasets.totalseg import (list_totalseg_cases, label_on_working_grid, load_shared_abdomen,  # noqa: E402
                               load_totalseg_case)
from safetensors.torch import load_file, save_file  # noqa: E402
from uqseg.ct.losses import LossWeights, ssn_loss  # noqa: E402
from uqseg.ct.network import StochasticSegNet3d, load_weights, weights_to_save  # noqa: E402
from uqseg.ct.preprocess import normalise_hu, pad_to_multiple, to_working_grid, working_grid  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ORGANS = ["liver", "spleen", "stomach", "aorta"]
DEFAULT_STRIDES = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]]


def prepare(case, spacing: float, hu: tuple[float, float]):
    grid = working_grid(case.image, spacing)
    vol = normalise_hu(to_working_grid(case.image, grid), hu)
    lab = label_on_working_grid(case, grid)
    return vol, lab


def class_rows_by_organ(tensors: dict, init_config: Path, organs: list[str]) -> dict:
    """When the --init run segmented other organs, keep the rows of its class head (mean_head: background, then its
    organs) that belong to this run's organs, by name — e.g. a liver-only run from a four-organ run keeps the
    background and liver rows. Rows of organs the init run did not have are left to a fresh start."""
    if not init_config.is_file():
        return tensors
    old = json.loads(init_config.read_text()).get("organs", [])
    if old == organs or not all(o in old for o in organs):
        return tensors
    rows = [0] + [old.index(o) + 1 for o in organs]
    out = dict(tensors)
    for name in ("mean_head.weight", "mean_head.bias"):
        if name in out:
            out[name] = out[name][rows].contiguous()
    print(f"class head rows {rows} of the init run's {['background'] + old} kept for {['background'] + organs}")
    return out


def dice_per_organ(pred: np.ndarray, truth: np.ndarray, organs: list[str]) -> dict:
    out = {}
    for i, organ in enumerate(organs, start=1):
        p, t = pred == i, truth == i
        s = p.sum() + t.sum()
        out[organ] = None if s == 0 else round(float(2 * (p & t).sum() / s), 4)
    return out


@torch.no_grad()
def evaluate(model, vol: np.ndarray, lab: np.ndarray, z_slab: tuple[int, int], organs: list[str], samples: int = 10):
    """Dice per organ on slices z_slab of one working-grid volume: μ arg-max, and (stochastic forms) E[softmax(η)]."""
    model.eval()
    padded, shape = pad_to_multiple(vol, model.size_multiple)
    dist = model(torch.from_numpy(padded)[None, None])
    z0, z1 = z_slab
    crop = (slice(None), slice(z0, z1), slice(0, shape[1]), slice(0, shape[2]))
    mean_label = dist.mean[0].argmax(0)[crop[1:]].numpy()
    out = {"dice_mu": dice_per_organ(mean_label, lab[z0:z1], organs)}
    if dist.form != "deterministic":
        prob = sum(dist.sample(1, generator=torch.Generator().manual_seed(s))[0, 0].softmax(0)
                   for s in range(samples)) / samples
        out["dice_mc"] = dice_per_organ(prob[crop].argmax(0).numpy(), lab[z0:z1], organs)
    model.train()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "ct_totalseg"))
    ap.add_argument("--totalseg", default=None, help="a TotalSegmentator-layout folder to add")
    ap.add_argument("--organs", default=",".join(DEFAULT_ORGANS))
    ap.add_argument("--form", default="mixture_of_bases",
                    choices=["deterministic", "diagonal", "lowrank", "single_basis", "mixture_of_bases"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--init", default=None, help="weights to start from (stage 2: the stage-1 run's)")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--minutes", type=float, default=None, help="stop after this wall time (the schedule keeps --steps)")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--head-lr-factor", type=float, default=10.0)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--patch", type=int, nargs=3, default=[12, 96, 96])
    ap.add_argument("--spacing", type=float, default=2.0)
    ap.add_argument("--hu", type=float, nargs=2, default=[-250.0, 350.0])
    ap.add_argument("--val-slices", type=int, default=6)
    ap.add_argument("--filters", type=int, nargs="+", default=[16, 32, 64, 128])
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--bases", type=int, default=3)
    ap.add_argument("--block", type=int, default=4)
    ap.add_argument("--train-samples", type=int, default=10)
    ap.add_argument("--lambda-kl", type=float, default=1e-3)
    ap.add_argument("--lambda-orth", type=float, default=1e-2)
    ap.add_argument("--lambda-w", type=float, default=1e-3)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    organs = [o for o in args.organs.split(",") if o]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # ---- data ----
    train, val = [], []  # (volume, label, z_range)
    shared = load_shared_abdomen(Path(args.data), organs)
    vol, lab = prepare(shared, args.spacing, tuple(args.hu))
    zc = vol.shape[0] - args.val_slices
    train.append((vol, lab, (0, zc)))
    val.append((shared.name, vol, lab, (zc, vol.shape[0])))
    split = {"shared": {"case": shared.name, "train_slices": [0, zc], "val_slices": [zc, int(vol.shape[0])],
                        "working_shape": list(vol.shape)}}
    if args.totalseg:
        cases = list_totalseg_cases(Path(args.totalseg))
        held = set(cases[4::5])
        for c in cases:
            v, lb = prepare(load_totalseg_case(c, organs), args.spacing, tuple(args.hu))
            (val.append((c.name, v, lb, (0, v.shape[0]))) if c in held else train.append((v, lb, (0, v.shape[0]))))
        split["totalseg"] = {"root": args.totalseg, "train": [c.name for c in cases if c not in held],
                             "val": [c.name for c in sorted(held)]}
    print(f"organs {organs}; train volumes {len(train)}, val {len(val)}; shared working grid {vol.shape}", flush=True)

    # ---- model ----
    model = StochasticSegNet3d(classes=len(organs) + 1, form=args.form, rank=args.rank, bases=args.bases,
                               block=args.block, filters=tuple(args.filters), strides=DEFAULT_STRIDES)
    if args.init:
        tensors = class_rows_by_organ(load_file(args.init), Path(args.init).parent / "config.json", organs)
        own = model.state_dict()
        reshaped = sorted(k for k, v in tensors.items() if k in own and own[k].shape != v.shape)
        new = load_weights(model, {k: v for k, v in tensors.items() if k not in reshaped}, strict=False)
        print(f"init from {args.init}: {len(new)} tensors start fresh (new heads; {len(reshaped)} of another "
              f"shape, e.g. the class head of a different organ list: {reshaped})", flush=True)
    patch = tuple(args.patch)
    if any(p % m for p, m in zip(patch, model.size_multiple)):
        raise SystemExit(f"--patch {patch} must be a multiple of {model.size_multiple}")
    head_ids = {id(p) for p in model.stochastic_parameters()}
    groups = [{"params": [p for p in model.parameters() if id(p) not in head_ids], "lr": args.lr}]
    if head_ids:
        groups.append({"params": model.stochastic_parameters(), "lr": args.lr * args.head_lr_factor})
    opt = torch.optim.AdamW(groups, weight_decay=1e-4)
    base_lrs = [g["lr"] for g in opt.param_groups]
    weights = LossWeights(args.train_samples, args.lambda_kl, args.lambda_orth, args.lambda_w)
    transform = build_augmentation(patch)
    config = {"form": args.form, "organs": organs, "architecture": model.architecture(),
              "preprocessing": {"spacing_mm": args.spacing, "hu_window": list(args.hu), "grid": "axis-aligned LPS"},
              "training": {k: v for k, v in vars(args).items() if k not in ("out",)}, "split": split,
              "loss_weights": vars(weights)}
    (out / "config.json").write_text(json.dumps(config, indent=2))

    log = (out / "log.jsonl").open("w")
    t0 = time.time()
    warm = max(1, args.steps // 20)
    step = 0
    for step in range(1, args.steps + 1):
        frac = step / warm if step <= warm else 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (step - warm) /
                                                                                   max(1, args.steps - warm)))
        for g, lr in zip(opt.param_groups, base_lrs):
            g["lr"] = lr * min(1.0, frac)
        xs, ys = [], []
        for _ in range(args.batch):
            v, lb, zr = train[rng.integers(len(train))]
            img, lab = sample_patch(v, lb, patch, rng, z_range=zr)
            x, y = augment(transform, img, lab, int(rng.integers(2**31)))
            xs.append(x)
            ys.append(y)
        x, y = torch.stack(xs), torch.stack(ys)
        loss, terms = ssn_loss(model(x), y, weights)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 12.0)
        opt.step()
        rec = {"step": step, "loss": round(float(loss), 4), **{k: round(v, 4) for k, v in terms.items()},
               "minutes": round((time.time() - t0) / 60, 2)}
        if step % args.eval_every == 0 or step == args.steps:
            rec["val"] = {name: evaluate(model, v, lb, zr, organs) for name, v, lb, zr in val}
            print(json.dumps(rec), flush=True)
            save_file(weights_to_save(model), str(out / "checkpoint.safetensors"))  # resumable with --init
        elif step % 10 == 0:
            print(json.dumps(rec), flush=True)
        log.write(json.dumps(rec) + "\n")
        log.flush()
        if args.minutes and (time.time() - t0) / 60 > args.minutes:
            print(f"stopping after {step} steps: --minutes {args.minutes} reached", flush=True)
            break
    save_file(weights_to_save(model), str(out / "weights.safetensors"))
    config["training"]["steps_done"] = step
    config["training"]["minutes"] = round((time.time() - t0) / 60, 1)
    config["final_val"] = {name: evaluate(model, v, lb, zr, organs) for name, v, lb, zr in val}
    (out / "config.json").write_text(json.dumps(config, indent=2))
    print(json.dumps(config["final_val"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
