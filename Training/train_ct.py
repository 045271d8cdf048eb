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
`--cache DIR` trains instead on the working-grid caches of Training/cache_ct_cases.py (<name>.npz: HU and labels
already on the working grid, so no SimpleITK is needed — the GPU machine): `--train-cases A,B` trains on those
patients, `--val-cases B` validates on whole held-out patients (leave-one-patient-out), `--val-slab A:14:20` holds
out a z slab of a training patient (never sampled) and validates on it. `--device cuda` trains there (and
`--aug-device cuda` runs the spatial augmentation there too); `--scanner-aug` adds the scanner / spacing
augmentation of ct_augment.py (issue 18).
Preprocessing (uqseg.ct.preprocess, recorded in config.json for the model card): resampling to an axis-aligned
`--spacing` mm isotropic grid, HU window `--hu` → [−1, 1]. Patches `--patch` (z, y, x) with foreground
oversampling (ct_augment.py) and heavy augmentation (rotation, scaling, elastic, gamma, noise, blur).
Optimiser AdamW (weight decay 1e-4), gradient norm clipped at 12; stage 2 gives the covariance heads
`--head-lr-factor` × the learning rate (they start from scratch, the backbone from stage 1); cosine decay to 5 % after
a 5 % linear warm-up (`WarmupCosine`). The loop is `uqseg.finetune.loop.fit`; one of its epochs is one step here
(patches are sampled at random, there is no pass over a data set), so --eval-every counts steps.
Writes (Training/common.py) weights.safetensors (the final step's; validation never picks a checkpoint), config.json,
log.csv and log.jsonl (one row / record per step; the record nests the validation Dice), and checkpoint.safetensors
at every evaluation (to continue an interrupted run with --init).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from common import DATA, RunFolder, recipe_parser, start
from ct_augment import augment, build_augmentation, sample_patch
from uqseg.ct.losses import LossWeights, ssn_loss
from uqseg.ct.network import StochasticSegNet3d, load_weights, weights_to_save
from uqseg.ct.preprocess import normalise_hu, pad_to_multiple
from uqseg.finetune.loop import WarmupCosine, fit
from uqseg.metrics import dice_per_class

DEFAULT_ORGANS = ["liver", "spleen", "stomach", "aorta"]
DEFAULT_STRIDES = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]]


def prepare(case, spacing: float, hu: tuple[float, float]):
    from datasets.totalseg import label_on_working_grid
    from uqseg.ct.preprocess import to_working_grid, working_grid

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
    """Dice per organ (label i = organs[i - 1]), 4 decimals; None for an organ absent from both."""
    scores = dice_per_class(pred, truth, range(1, len(organs) + 1))
    return {organ: None if not ((pred == i).any() or (truth == i).any()) else round(scores[i], 4)
            for i, organ in enumerate(organs, start=1)}


def load_cache(path: Path, organs: list[str], hu: tuple[float, float]):
    """(normalised volume, label) of a cache_ct_cases.py .npz, whose organ list must be `organs`."""
    d = np.load(path)
    if [str(o) for o in d["organs"]] != organs:
        raise SystemExit(f"{path}: cached organs {list(d['organs'])} are not --organs {organs}")
    return normalise_hu(d["hu"].astype(np.float32), hu), d["label"]


@torch.no_grad()
def evaluate(model, vol: np.ndarray, lab: np.ndarray, z_slab: tuple[int, int], organs: list[str], samples: int = 10):
    """Dice per organ on slices z_slab of one working-grid volume: μ arg-max, and (stochastic forms) E[softmax(η)]."""
    model.eval()
    device = next(model.parameters()).device
    padded, shape = pad_to_multiple(vol, model.size_multiple)
    dist = model(torch.from_numpy(padded)[None, None].to(device))
    z0, z1 = z_slab
    crop = (slice(None), slice(z0, z1), slice(0, shape[1]), slice(0, shape[2]))
    mean_label = dist.mean[0].argmax(0)[crop[1:]].cpu().numpy()
    out = {"dice_mu": dice_per_organ(mean_label, lab[z0:z1], organs)}
    if dist.form != "deterministic":
        prob = sum(dist.sample(1, generator=torch.Generator(device=device).manual_seed(s))[0, 0].softmax(0)
                   for s in range(samples)) / samples
        out["dice_mc"] = dice_per_organ(prob[crop].argmax(0).cpu().numpy(), lab[z0:z1], organs)
    model.train()
    return out


class CtTraining:
    """The recipe for `fit`: each epoch is ONE step of `batch` patches sampled (numpy generator `rng`, as before the
    loop existed) from the training volumes and augmented (ct_augment.py); the loss is Eq. 11-12 (uqseg.ct.losses)."""

    freeze_batchnorm = False
    clip_norm = 12.0
    steps_per_epoch = 1
    weight_decay = 1e-4

    def __init__(self, model, train: list, patch, rng: np.random.Generator, weights: LossWeights,
                 head_lr_factor: float, scanner: bool = False, device=None, aug_device=None):
        self.model, self.train, self.patch, self.rng, self.weights = model, train, tuple(patch), rng, weights
        self.head_lr_factor = head_lr_factor
        self.device, self.aug_device = device, aug_device
        self.transform = build_augmentation(self.patch, scanner=scanner, device=aug_device)

    def optimizer(self, params, lr: float):
        """The backbone at lr, the stochastic heads (if any) at head_lr_factor × lr."""
        head_ids = {id(p) for p in self.model.stochastic_parameters()}
        groups = [{"params": [p for p in params if id(p) not in head_ids], "lr": lr}]
        if head_ids:
            groups.append({"params": self.model.stochastic_parameters(), "lr": lr * self.head_lr_factor})
        return torch.optim.AdamW(groups, weight_decay=self.weight_decay)

    def epoch_batches(self, examples, batch: int, gen):
        xs, ys = [], []
        for _ in range(batch):
            v, lb, zr = self.train[self.rng.integers(len(self.train))]
            img, lab = sample_patch(v, lb, self.patch, self.rng, z_range=zr)
            x, y = augment(self.transform, img, lab, int(self.rng.integers(2**31)), device=self.aug_device)
            xs.append(x)
            ys.append(y)
        x, y = torch.stack(xs), torch.stack(ys)
        if self.device is not None:
            x, y = x.to(self.device), y.to(self.device)
        yield (x, y), batch

    def loss(self, model, batch, gen, device):
        x, y = batch
        loss, terms = ssn_loss(model(x), y, self.weights)
        return loss, {"loss": float(loss.detach()), **terms}


TERMS = ["ce", "dice", "kl", "orth", "weight_entropy"]


def main(argv=None) -> int:
    ap = recipe_parser(__doc__, DATA / "ct_totalseg", threads=2, limit=False)
    ap.add_argument("--totalseg", default=None, help="a TotalSegmentator-layout folder to add")
    ap.add_argument("--organs", default=",".join(DEFAULT_ORGANS))
    ap.add_argument("--form", default="mixture_of_bases",
                    choices=["deterministic", "diagonal", "lowrank", "single_basis", "mixture_of_bases"])
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
    ap.add_argument("--cache", type=Path, default=None, help="a folder of cache_ct_cases.py .npz working-grid cases")
    ap.add_argument("--train-cases", default="A,B", help="with --cache: the patients to train on")
    ap.add_argument("--val-cases", default="", help="with --cache: whole held-out patients to validate on")
    ap.add_argument("--val-slab", action="append", default=[],
                    help="with --cache: NAME:Z0:Z1, a working-grid slab of a training patient held out for validation")
    ap.add_argument("--scanner-aug", action="store_true", help="add the scanner / spacing augmentation")
    ap.add_argument("--fit-minutes", type=float, default=None,
                    help="after 30 steps, set the number of steps (and the cosine schedule's length) so that the "
                         "run fills this wall time (at most --steps); for a fixed time budget on a shared GPU")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--aug-device", default=None)
    args = ap.parse_args(argv)
    gen = start(args)
    rng = np.random.default_rng(args.seed)
    organs = [o for o in args.organs.split(",") if o]

    # ---- data ----
    train, val = [], []  # (volume, label, z_range)
    if args.cache:
        split = {"cache": str(args.cache), "train_cases": {}, "val_cases": {}}
        slabs = {}
        for spec in args.val_slab:
            name, z0, z1 = spec.split(":")
            slabs[name] = (int(z0), int(z1))
        for name in [c for c in args.train_cases.split(",") if c]:
            v, lb = load_cache(args.cache / f"{name}.npz", organs, tuple(args.hu))
            if name in slabs:
                z0, z1 = slabs[name]
                train += [(v, lb, r) for r in ((0, z0), (z1, v.shape[0])) if r[1] - r[0] > 0]
                val.append((f"{name}_slab", v, lb, (z0, z1)))
                split["train_cases"][name] = {"train_slices": [[0, z0], [z1, int(v.shape[0])]],
                                              "val_slices": [z0, z1], "working_shape": list(v.shape)}
            else:
                train.append((v, lb, (0, v.shape[0])))
                split["train_cases"][name] = {"train_slices": [[0, int(v.shape[0])]], "working_shape": list(v.shape)}
        for name in [c for c in args.val_cases.split(",") if c]:
            v, lb = load_cache(args.cache / f"{name}.npz", organs, tuple(args.hu))
            val.append((name, v, lb, (0, v.shape[0])))
            split["val_cases"][name] = {"working_shape": list(v.shape)}
        vol = train[0][0]
    else:
        from datasets.totalseg import load_shared_abdomen

        shared = load_shared_abdomen(Path(args.data), organs)
        vol, lab = prepare(shared, args.spacing, tuple(args.hu))
        zc = vol.shape[0] - args.val_slices
        train.append((vol, lab, (0, zc)))
        val.append((shared.name, vol, lab, (zc, vol.shape[0])))
        split = {"shared": {"case": shared.name, "train_slices": [0, zc], "val_slices": [zc, int(vol.shape[0])],
                            "working_shape": list(vol.shape)}}
    if args.totalseg:
        from datasets.totalseg import list_totalseg_cases, load_totalseg_case

        cases = list_totalseg_cases(Path(args.totalseg))
        held = set(cases[4::5])
        for c in cases:
            v, lb = prepare(load_totalseg_case(c, organs), args.spacing, tuple(args.hu))
            (val.append((c.name, v, lb, (0, v.shape[0]))) if c in held else train.append((v, lb, (0, v.shape[0]))))
        split["totalseg"] = {"root": args.totalseg, "train": [c.name for c in cases if c not in held],
                             "val": [c.name for c in sorted(held)]}
    print(f"organs {organs}; train volumes {len(train)}, val {len(val)}; first working grid {vol.shape}", flush=True)

    # ---- model ----
    model = StochasticSegNet3d(classes=len(organs) + 1, form=args.form, rank=args.rank, bases=args.bases,
                               block=args.block, filters=tuple(args.filters), strides=DEFAULT_STRIDES)
    if args.init:
        tensors = class_rows_by_organ(load_file(str(args.init)), Path(args.init).parent / "config.json", organs)
        own = model.state_dict()
        reshaped = sorted(k for k, v in tensors.items() if k in own and own[k].shape != v.shape)
        new = load_weights(model, {k: v for k, v in tensors.items() if k not in reshaped}, strict=False)
        print(f"init from {args.init}: {len(new)} tensors start fresh (new heads; {len(reshaped)} of another "
              f"shape, e.g. the class head of a different organ list: {reshaped})", flush=True)
    patch = tuple(args.patch)
    if any(p % m for p, m in zip(patch, model.size_multiple)):
        raise SystemExit(f"--patch {patch} must be a multiple of {model.size_multiple}")
    weights = LossWeights(args.train_samples, args.lambda_kl, args.lambda_orth, args.lambda_w)
    device = torch.device(args.device)
    model.to(device)
    recipe = CtTraining(model, train, patch, rng, weights, args.head_lr_factor, scanner=args.scanner_aug,
                        device=device if device.type != "cpu" else None,
                        aug_device=torch.device(args.aug_device) if args.aug_device else None)
    config = {"form": args.form, "organs": organs, "architecture": model.architecture(),
              "preprocessing": {"spacing_mm": args.spacing, "hu_window": list(args.hu), "grid": "axis-aligned LPS"},
              "training": {k: v for k, v in vars(args).items() if k not in ("out",)}, "split": split,
              "loss_weights": vars(weights)}
    run = RunFolder(args.out, ["step", "minutes", "lr", "loss", *TERMS]
                    + [f"val_{name}_{kind}_{organ}" for name, *_ in val for kind in ("dice_mu", "dice_mc")
                       for organ in organs], jsonl=True)
    run.write_json("config.json", config)

    def validate(m, s):
        return {name: evaluate(m, v, lb, zr, organs) for name, v, lb, zr in val}

    def on_epoch(s):
        if args.fit_minutes and s.step == 30:
            total = max(31, min(args.steps, int(args.fit_minutes * 60 / (s.seconds / 30))))
            s.epochs = total
            schedule.set_total(total)
            print(f"--fit-minutes {args.fit_minutes}: {s.seconds / 30:.3f} s/step -> {total} steps", flush=True)
        rec = {"step": s.step, "loss": round(s.train["loss"], 4),
               **{k: round(v, 4) for k, v in s.train.items() if k != "loss"}, "minutes": round(s.seconds / 60, 2)}
        row = {**rec, "lr": f"{s.lr:.4g}"}
        if s.val:
            rec["val"] = s.val
            row.update({f"val_{name}_{kind}_{organ}": d for name, r in s.val.items() for kind, per in r.items()
                        for organ, d in per.items()})
            print(json.dumps(rec), flush=True)
            run.checkpoint(weights_to_save(model))  # resumable with --init
        elif s.step % 10 == 0:
            print(json.dumps(rec), flush=True)
        run.log(row, rec)

    warm = max(1, args.steps // 20) if not args.fit_minutes else max(1, min(args.steps // 20, 25))
    schedule = WarmupCosine(args.steps, warm, floor=0.05)
    result = fit(recipe, model, train, epochs=args.steps, lr=args.lr, batch=args.batch, gen=gen,
                 schedule=schedule, evaluate=validate, eval_every=args.eval_every,
                 on_epoch=on_epoch, stop_after_minutes=args.minutes or 0.0)
    if result["stopped"]:
        print(f"stopping after {result['steps']} steps: --minutes {args.minutes} reached", flush=True)
    model.cpu()
    run.save_weights(weights_to_save(model))
    model.to(device)
    config["training"]["steps_done"] = result["steps"]
    config["training"]["minutes"] = round(result["seconds"] / 60, 1)
    config["final_val"] = validate(model, None)
    run.write_json("config.json", config)
    print(json.dumps(config["final_val"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
