"""The one optimisation loop of the project: fine-tuning (`uqseg finetune`) and every training recipe of Training/
(train_pectoral, train_cxr, train_breast, train_ct) run `fit`; what differs is the task's recipe, an object with:

    loss(model, batch, gen, device) → (scalar tensor, {"loss": float, ...parts})
                                the training loss of a batch; `gen` a torch.Generator → augmented, None → the
                                inference input exactly (how fine-tuning measures its before / after losses)
    optimizer(params, lr)       the optimiser over `params` (the trainable parameters, in model order)
    clip_norm                   gradient-norm clipping (None = none)
    freeze_batchnorm            (default True) BatchNorm layers stay in eval mode while training (below); the training
                                recipes set False (they learn the statistics)
    epoch_batches(examples, batch, gen)   optional: the batches of one epoch as (batch, size) pairs; default: the
                                examples in a random order (`torch.randperm(len(examples), generator=gen)`, drawn
                                once per epoch) cut into batches of `batch` (the last one smaller), each batch the
                                list of those examples, or the rows of a `TensorSet`; with it, `steps_per_epoch`
                                (default 1 per epoch) sizes the progress report
    start_epoch(epoch, epochs)  optional: called before each epoch (e.g. a KL weight annealed per epoch)
and fine-tuning's recipes (`uqseg.finetune.pectoral / cxr / breast`) also: task, role, load_model, example,
describe_loss, augmentation, default_lr, weight_decay (used by `uqseg.finetune.run`).

One step: train mode → the schedule sets the learning rate → loss (a non-finite loss stops with FloatingPointError)
→ zero_grad → backward → gradient-norm clip → optimiser step. After each epoch: the schedule sees the epoch's mean
training loss (`ReduceOnPlateau`), the `evaluate(model, state)` hook runs every `eval_every` epochs and after the
last one, then `on_epoch(state)` (the recipes log, print and checkpoint there) with a `FitState`.

Randomness: with `gen=None`, `fit` seeds the global torch generator and its own generator with `seed` (fine-tuning:
the latent draws of the variational model and dropout use the global one). A training recipe passes its own
`gen`, made before the network was built (as the recipes always did), and `fit` then touches no global state: the
random stream is the recipe's, in the recipe's order.

BatchNorm when frozen: a handful of corrected cases cannot re-estimate the normalisation statistics the model was
trained with (a batch of 2 would replace them with its own), so every BatchNorm layer stays in eval mode — its
running mean and variance are kept — while its affine parameters and all other weights are trained. Dropout layers
do train (the MC-dropout model is trained with dropout active).

Learning-rate schedules (`schedule=`; default constant, what fine-tuning uses for its few steps from trained weights):
`WarmupCosine(total_steps, warmup_steps, floor)` and `ReduceOnPlateau(factor, patience)`.
Time budgets: `epochs_for_minutes` fixes the number of epochs after the first from its duration (the schedule is
stretched to it); `stop_after_minutes` ends the run after the epoch in which the wall time passed (the schedule keeps
its length); `max_steps` ends it after that many steps (smoke tests).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
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


class TensorSet:
    """Examples held as aligned tensors (first dimension = example); a batch is the tuple of their rows `idx`."""

    def __init__(self, *tensors: torch.Tensor):
        if not tensors or any(t.shape[0] != tensors[0].shape[0] for t in tensors):
            raise ValueError("TensorSet needs tensors with the same first dimension")
        self.tensors = tensors

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def __getitem__(self, idx):
        return tuple(t[idx] for t in self.tensors)


# ------------------------------------------------------------------------------------------------ learning rates
class Constant:
    """The learning rate the optimiser was made with, throughout."""

    def start(self, opt) -> None:
        pass

    def before_step(self, opt, step: int) -> None:
        pass

    def after_epoch(self, opt, loss: float) -> None:
        pass


class WarmupCosine(Constant):
    """lr = base · factor(step) for the 0-based optimisation step, every parameter group from its own base lr:
    a linear warm-up (step + 1) / warmup_steps over the first `warmup_steps`, then a cosine from 1 down to `floor`:
    floor + (1 − floor) · ½ (1 + cos(π · min(1, (step − warmup_steps) / (total_steps − warmup_steps))))."""

    def __init__(self, total_steps: int, warmup_steps: int = 0, floor: float = 0.0):
        self.total_steps, self.warmup_steps, self.floor = int(total_steps), int(warmup_steps), float(floor)
        self.base: list[float] = []

    def set_total(self, total_steps: int) -> None:
        self.total_steps = int(total_steps)

    def factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        t = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        return self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * t))

    def start(self, opt) -> None:
        self.base = [g["lr"] for g in opt.param_groups]

    def before_step(self, opt, step: int) -> None:
        f = self.factor(step)
        for g, base in zip(opt.param_groups, self.base):
            g["lr"] = base * f


class ReduceOnPlateau(Constant):
    """torch's ReduceLROnPlateau(factor, patience) on the epoch's mean training loss."""

    def __init__(self, factor: float = 0.5, patience: int = 8):
        self.factor, self.patience, self.scheduler = factor, patience, None

    def start(self, opt) -> None:
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=self.factor, patience=self.patience)

    def after_epoch(self, opt, loss: float) -> None:
        self.scheduler.step(loss)


# ---------------------------------------------------------------------------------------------------- the loop
@dataclass
class FitState:
    """What the hooks see after an epoch."""

    epochs: int  # the planned number of epochs (`epochs_for_minutes` may change it after the first)
    epoch: int = 0  # the epoch just finished, 1-based
    step: int = 0  # optimisation steps done
    seconds: float = 0.0  # since fit began
    lr: float = 0.0  # learning rate of the last step (first parameter group)
    train: dict = field(default_factory=dict)  # the epoch's mean of every loss part (weighted by batch size)
    val: dict | None = None  # what `evaluate` returned after this epoch, None when it did not run
    stop: str | None = None  # set (to a reason) to end the run after this epoch


def _default_batches(examples, batch: int, gen: torch.Generator):
    order = torch.randperm(len(examples), generator=gen)
    for i in range(0, len(order), batch):
        idx = order[i:i + batch]
        chunk = examples[idx] if isinstance(examples, TensorSet) else [examples[j] for j in idx.tolist()]
        yield chunk, len(idx)


def fit(recipe, model: nn.Module, examples, *, epochs: int, lr: float, batch: int, seed: int = 0, device="cpu",
        gen: torch.Generator | None = None, schedule=None,
        evaluate: Callable[[nn.Module, FitState], dict] | None = None, eval_every: int = 1,
        on_epoch: Callable[[FitState], None] | None = None, report: Callable[[float, str], None] | None = None,
        max_steps: int = 0, epochs_for_minutes: float = 0.0, stop_after_minutes: float = 0.0) -> dict:
    """Train `model` in place (module docstring): `epochs` passes of `recipe.loss` over `examples`, batches of
    `batch`. Returns {"steps", "epochs", "seconds", "epoch_loss": [mean training loss per epoch], "epoch_parts":
    [mean of every loss part per epoch], "optimizer": its class name, "stopped": why it ended early, or None}."""
    if epochs < 1 or batch < 1 or not lr > 0:
        raise ValueError(f"epochs and batch must be >= 1 and lr > 0 (got {epochs}, {batch}, {lr})")
    if gen is None:
        torch.manual_seed(seed)  # the latent draws of the variational model use the global generator
        gen = torch.Generator().manual_seed(seed)
    schedule = schedule or Constant()
    freeze = getattr(recipe, "freeze_batchnorm", True)
    batches = getattr(recipe, "epoch_batches", None) or _default_batches
    start_epoch = getattr(recipe, "start_epoch", None)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = recipe.optimizer(params, lr)
    schedule.start(opt)
    steps_per_epoch = (getattr(recipe, "steps_per_epoch", None) or 1) if getattr(recipe, "epoch_batches", None) \
        else -(-len(examples) // batch)
    state = FitState(epochs=epochs)
    epoch_loss, epoch_parts = [], []
    t0 = time.perf_counter()
    while state.epoch < state.epochs:
        epoch = state.epoch + 1
        if start_epoch:
            start_epoch(epoch, state.epochs)
        sums, counts = {}, {}
        for chunk, n in batches(examples, batch, gen):
            train_mode(model) if freeze else model.train()
            schedule.before_step(opt, state.step)
            loss, parts = recipe.loss(model, chunk, gen, device)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"the training loss became {float(loss)} at step {state.step + 1}")
            opt.zero_grad()
            loss.backward()
            if recipe.clip_norm:
                torch.nn.utils.clip_grad_norm_(params, recipe.clip_norm)
            opt.step()
            state.step += 1
            for k, v in parts.items():
                if v is not None:
                    sums[k] = sums.get(k, 0.0) + v * n
                    counts[k] = counts.get(k, 0) + n
            if report:
                total = state.epochs * steps_per_epoch
                report(min(1.0, state.step / total),
                       f"epoch {epoch}/{state.epochs} step {state.step}/{total} loss {parts['loss']:.4f}")
            if max_steps and state.step >= max_steps:
                state.stop = f"max_steps {max_steps} reached"
                break
        state.epoch = epoch
        state.train = {k: sums[k] / counts[k] for k in sums}
        epoch_loss.append(float(state.train["loss"]))
        epoch_parts.append(dict(state.train))
        schedule.after_epoch(opt, state.train["loss"])
        state.seconds = time.perf_counter() - t0
        if epoch == 1 and epochs_for_minutes:
            state.epochs = max(2, int(epochs_for_minutes * 60 / state.seconds))
            if hasattr(schedule, "set_total"):
                schedule.set_total(state.epochs * state.step)
        state.lr = opt.param_groups[0]["lr"]
        state.val = None
        if evaluate and (epoch % eval_every == 0 or epoch == state.epochs or state.stop):
            model.eval()
            state.val = evaluate(model, state)
        if on_epoch:
            on_epoch(state)
        if stop_after_minutes and not state.stop and (time.perf_counter() - t0) / 60 > stop_after_minutes:
            state.stop = f"stop_after_minutes {stop_after_minutes:g} reached"
        if state.stop:
            break
    model.eval()
    return {"steps": state.step, "epochs": state.epoch, "seconds": round(time.perf_counter() - t0, 2),
            "epoch_loss": epoch_loss, "epoch_parts": epoch_parts, "optimizer": type(opt).__name__,
            "stopped": state.stop}


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
