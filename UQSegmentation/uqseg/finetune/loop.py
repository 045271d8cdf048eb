"""The optimisation loop of fine-tuning, the same for every task; what differs is the task's recipe
(`uqseg.finetune.pectoral / cxr / breast`), an object with:

    task, role                  the task id and the record's file role it trains on
    load_model(card, device)    the network with the card's (integrity-checked) weights
    example(case, image, model) the preprocessed case (a dict; CaseSkipped when it cannot train the model)
    loss(model, examples, gen, device) → (scalar tensor, {"loss": float, ...parts})
                                the training loss of a batch; `gen` a torch.Generator → augmented, None → the
                                inference input exactly (how the before / after losses are measured)
    optimizer(params, lr), clip_norm (None = no clipping), describe_loss(), augmentation (text)

BatchNorm: a handful of corrected cases cannot re-estimate the normalisation statistics the model was trained with
(a batch of 2 would replace them with its own), so every BatchNorm layer stays in eval mode — its running mean and
variance are kept — while its affine parameters and all other weights are trained. Dropout layers do train (the
MC-dropout model is trained with dropout active). The learning rate is constant (a few steps from trained weights).
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch
from torch import nn


def train_mode(model: nn.Module) -> None:
    """model.train(), then every BatchNorm layer back to eval mode (module docstring)."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


@torch.no_grad()
def case_losses(recipe, model: nn.Module, examples: list[dict], device) -> list[dict]:
    """The loss of every case alone, model in eval mode, no augmentation: [{"case", "loss", ...parts}]."""
    model.eval()
    return [{"case": ex["name"], **recipe.loss(model, [ex], None, device)[1]} for ex in examples]


def mean_losses(per_case: list[dict]) -> dict:
    """Mean over cases of every numeric part."""
    keys = [k for k in per_case[0] if k != "case"]
    return {k: float(np.mean([c[k] for c in per_case if c[k] is not None])) if any(c[k] is not None for c in per_case)
            else None for k in keys}


def fit(recipe, model: nn.Module, examples: list[dict], *, epochs: int, lr: float, batch: int, seed: int, device,
        report: Callable[[float, str], None] | None = None) -> dict:
    """Fine-tune `model` in place: `epochs` passes over `examples` in random order (seeded), batches of `batch`,
    augmented. Returns {"steps", "seconds", "epoch_loss": [mean training loss per epoch], "optimizer": its name}."""
    if epochs < 1 or batch < 1 or not lr > 0:
        raise ValueError(f"epochs and batch must be >= 1 and lr > 0 (got {epochs}, {batch}, {lr})")
    torch.manual_seed(seed)  # the latent draws of the variational model use the global generator
    gen = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = recipe.optimizer(params, lr)
    steps_per_epoch = -(-len(examples) // batch)
    total_steps, step, t0 = epochs * steps_per_epoch, 0, time.perf_counter()
    epoch_loss = []
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(examples), generator=gen).tolist()
        sums = []
        for i in range(0, len(order), batch):
            chunk = [examples[j] for j in order[i:i + batch]]
            train_mode(model)
            loss, parts = recipe.loss(model, chunk, gen, device)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"the training loss became {float(loss)} at step {step + 1}")
            opt.zero_grad()
            loss.backward()
            if recipe.clip_norm:
                torch.nn.utils.clip_grad_norm_(params, recipe.clip_norm)
            opt.step()
            step += 1
            sums.append(parts["loss"] * len(chunk))
            if report:
                report(step / total_steps, f"epoch {epoch}/{epochs} step {step}/{total_steps} loss {parts['loss']:.4f}")
        epoch_loss.append(float(np.sum(sums) / len(examples)))
    model.eval()
    return {"steps": step, "seconds": round(time.perf_counter() - t0, 2), "epoch_loss": epoch_loss,
            "optimizer": type(opt).__name__}
