"""`uqseg finetune`: fine-tune a task's model on a folder of corrected cases and write it as a new model.

    run_finetune(task, corrections, models_dir, model_id=None, epochs=5, lr=None, batch=4, device="auto", seed=0)

1. the base model: `--model` or the task's default on the registry's search path (weights integrity-checked);
2. the corrected cases of the folder (`uqseg.finetune.cases`): a case whose record does not verify, or that is for
   another task, or whose label cannot train the model (`CaseSkipped`), is skipped and reported with the reason;
3. every used case's input image is loaded (`uqseg.io.load_image`) and preprocessed as inference does (the task's
   recipe); a missing or unreadable input image stops the run with an error naming it (FinetuneError) — no model
   is written;
4. the training loss of every case before (model in eval mode, the exact inference input);
5. `epochs` passes of the task's training loss with light augmentation (`uqseg.finetune.loop.fit`), learning rate
   `lr` (default: the recipe's `default_lr`, about the learning rate the training recipe ended with), from the
   shipped weights;
6. the loss of every case after, as in 4;
7. the new model folder MODELS_DIR/<id>-ft<N>/ (weights + card with provenance), written atomically
   (`uqseg.finetune.model_folder`); `UQSEG_MODELS=MODELS_DIR uqseg predict --model <id>-ft<N>` then uses it.
Progress goes to `report(fraction, message)`; skipped cases to `note(message)`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import torch

from uqseg.errors import InputError
from uqseg.finetune.breast import BreastRecipe
from uqseg.finetune.cases import collect_cases
from uqseg.finetune.cxr import CxrRecipe
from uqseg.finetune.errors import CaseSkipped, FinetuneError
from uqseg.finetune.loop import case_losses, fit, mean_losses
from uqseg.finetune.model_folder import base_files, fine_tuned_card, next_name, write_model_folder
from uqseg.finetune.pectoral import PectoralRecipe

RECIPES = {r.task: r for r in (PectoralRecipe, CxrRecipe, BreastRecipe)}
DEFAULT_EPOCHS = 5
DEFAULT_BATCH = 4


def _quiet(*_args) -> None:
    pass


def run_finetune(task: str, corrections: str | os.PathLike, models_dir: str | os.PathLike, *,
                 model_id: str | None = None, epochs: int = DEFAULT_EPOCHS, lr: float | None = None,
                 batch: int = DEFAULT_BATCH, device: str = "auto", seed: int = 0,
                 report: Callable[[float, str], None] = _quiet, note: Callable[[str], None] = _quiet) -> dict:
    """Steps 1–7 of the module docstring. Returns {"id", "version", "folder", "card", "skipped"}."""
    from uqseg.device import resolve_device
    from uqseg.io.load import load_image
    from uqseg.models.registry import find_model

    if task not in RECIPES:
        raise FinetuneError(f"fine-tuning is available for {sorted(RECIPES)}, not {task!r}")
    if epochs < 1 or batch < 1 or not (lr is None or lr > 0):
        raise FinetuneError(f"--epochs and --batch must be at least 1 and --lr positive (got {epochs}, {batch}, {lr})")
    corrections, models_dir = Path(corrections), Path(models_dir)
    if not (corrections / "corrections").is_dir():
        raise FinetuneError(f"{corrections}: not a corrections folder (no corrections/ records in it)")
    t0 = time.perf_counter()
    dev = resolve_device(device)
    base = find_model(task, model_id)
    recipe = RECIPES[task](base)
    lr = recipe.default_lr if lr is None else float(lr)
    new_id, new_version, n = next_name(base, models_dir)  # before the training: a broken search path fails fast
    report(0.0, f"base model {base.id} {base.version} -> {new_id}")
    model = recipe.load_model(base, dev)

    cases, skipped = collect_cases(corrections, task, recipe.role)
    skipped = [{"case": s.name, "reason": s.reason} for s in skipped]
    examples, used = [], []
    for i, case in enumerate(cases):
        report(0.1 * i / max(1, len(cases)), f"reading {case.name}")
        try:
            image = load_image(case.input_path, ndim=2)
        except InputError as e:
            raise FinetuneError(f"{e} (the input image of corrected case {case.name})") from None
        try:
            examples.append(recipe.example(case, image, model))
        except CaseSkipped as e:
            skipped.append({"case": case.name, "reason": str(e)})
            continue
        except InputError as e:
            raise FinetuneError(f"{e} (the input image of corrected case {case.name})") from None
        used.append({"case": case.name, "record_sha256": case.record_sha256, "input": str(case.input_path),
                     "corrected_by_model": case.record.get("model"), "review": case.record.get("review")})
    for s in sorted(skipped, key=lambda s: s["case"]):
        note(f"skipped {s['case']}: {s['reason']}")
    if not examples:
        raise FinetuneError(f"{corrections}: no usable corrected case for {task} "
                            f"({len(skipped)} skipped{': ' + skipped[0]['reason'] if skipped else ''})")

    report(0.1, f"loss before on {len(examples)} cases")
    before = case_losses(recipe, model, examples, dev)
    batch = min(batch, len(examples))
    training = fit(recipe, model, examples, epochs=epochs, lr=lr, batch=batch, seed=seed, device=dev,
                   report=lambda f, m: report(0.15 + 0.75 * f, m))
    report(0.9, "loss after")
    after = case_losses(recipe, model, examples, dev)

    fine_tuning = {
        "number": n, "corrections": str(corrections.resolve()), "cases": used,
        "skipped": sorted(skipped, key=lambda s: s["case"]),
        "epochs": epochs, "lr": lr, "batch": batch, "seed": seed, "steps": training["steps"],
        "device": str(dev), "threads": torch.get_num_threads(), "seconds": round(time.perf_counter() - t0, 1),
        "optimizer": f"{training['optimizer']}, weight decay "
                     f"{recipe.weight_decay:g}, constant lr, gradient norm clip {recipe.clip_norm or 'none'}",
        "batchnorm": "running statistics frozen (eval mode); affine parameters trained",
        "augmentation": recipe.augmentation, "loss": recipe.describe_loss(),
        "loss_before": mean_losses(before), "loss_after": mean_losses(after),
        "loss_per_case": [{"case": b["case"], "before": {k: v for k, v in b.items() if k != "case"},
                           "after": {k: v for k, v in a.items() if k != "case"}} for b, a in zip(before, after)],
        "epoch_train_loss": training["epoch_loss"],
        "loss_protocol": "the training loss of each case alone, model in eval mode, the exact inference input (no "
                         "augmentation), before and after; epoch_train_loss is the augmented training loss",
    }
    report(0.95, f"writing {new_id}")
    card = fine_tuned_card(base, new_id, new_version, fine_tuning)
    folder = write_model_folder(models_dir, new_id, model.state_dict(), card, base_files(base))
    report(1.0, f"{new_id} written")
    return {"id": new_id, "version": new_version, "folder": folder, "card": card, "skipped": fine_tuning["skipped"]}
