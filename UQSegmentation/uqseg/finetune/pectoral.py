"""Fine-tuning recipe of `mammo-pectoral` (heteroscedastic heatmap regression, Zech et al., MIDL 2026).

Corrected case: labels/NAME.png (uint8, `PECTORAL_LABEL` = 3 where the muscle is, input orientation) + its input
image. Preprocessing is that of inference (`uqseg.mammo.pectoral.predict_pectoral`): MLO check, canonical
orientation by the model's own rule (`orientation.canonicalise`: PatientOrientation, else pixels), per-image robust
intensity (`robust_unit_range`), ramp padding and resize to the 256 × 256 grid (`boundary_grid.to_grid`). The
label is flipped like the image and its rows are area-resampled to 2 × 256 rows (the recipe's work height; columns
stay the input's), from which `boundary_grid.grid_targets` gives the boundary per grid row in grid columns, with the
extrapolation into the padding the model was trained with.

Loss: `uqseg.mammo.losses.heatmap_loss` with the card's `training.loss` and `training.js_weight` (the shipped model:
Laplace NLL + 10 × JS regulariser), mean over labelled rows (NLL in nats per row, grid-column units). Reported parts:
`data` (the NLL term), `js` (nats) and `mae_grid` (|μ − y| over rows where the muscle is in the image, grid columns).
Augmentation (`uqseg.finetune.augment`): one random rotation / scale / shift applied to the canonical image and
label alike (edge-replicating borders, as the recipe: the muscle keeps touching the chest wall), intensity jitter.
Optimiser as `Training/train_pectoral.py`: AdamW, weight decay 1e-2, gradient norm clipped at 5.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from uqseg.correction.save import PECTORAL_LABEL
from uqseg.finetune.augment import jitter_intensity, random_theta, warp
from uqseg.finetune.errors import CaseSkipped
from uqseg.io.image import Image
from uqseg.mammo import boundary_grid as bg
from uqseg.transforms.intensity import robust_unit_range
from uqseg.mammo.losses import heatmap_loss
from uqseg.mammo.orientation import canonicalise, require_mlo

WORK_ROWS = 2 * bg.GRID  # label rows for the targets (a multiple of the grid, as the training recipe's 512)


def read_label_png(path) -> np.ndarray:
    """The label as stored (uint8 (H, W)); CaseSkipped when it cannot be read."""
    from PIL import Image as PILImage

    try:
        with PILImage.open(path) as im:
            return np.asarray(im)
    except OSError as e:
        raise CaseSkipped(f"label {path.name} cannot be read ({e})") from None


class PectoralRecipe:
    task = "mammo-pectoral"
    role = "label"  # the record's file role trained on
    default_lr = 1e-4  # the stage-2 training ran at 5e-4, halved on plateaus
    weight_decay = 1e-2
    clip_norm = 5.0
    augmentation = ("rotation ±5°, scale 0.95-1.05, shift ±2 % (image and label, edge-replicating), gamma 0.8-1.25, "
                    "contrast 0.9-1.1, brightness ±0.05, Gaussian noise σ ≤ 0.02")

    def __init__(self, card):
        training = card.get("training", {})
        self.loss_name = str(training.get("loss", "nll_laplace"))
        self.js_weight = float(training.get("js_weight", 10.0))

    def load_model(self, card, device):
        from uqseg.tasks.mammo_pectoral import MammoPectoralTask

        return MammoPectoralTask().load(card, device)

    def describe_loss(self) -> dict:
        return {"function": "uqseg.mammo.losses.heatmap_loss", "name": self.loss_name, "js_weight": self.js_weight,
                "units": "nats per labelled grid row (NLL on grid columns) + js_weight x JS (nats)"}

    def optimizer(self, params, lr: float) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, lr=lr, weight_decay=self.weight_decay)

    def example(self, case, image: Image, model) -> dict:
        """The preprocessed case (module docstring); CaseSkipped when its label cannot train this model."""
        require_mlo(image)
        canonical, flipped, source = canonicalise(image)
        label = read_label_png(case.file(self.role))
        if label.shape != tuple(image.shape):
            raise CaseSkipped(f"label {case.file(self.role).name} is {label.shape[0]}x{label.shape[1]}, "
                              f"the input image {image.shape[0]}x{image.shape[1]}")
        muscle = (label == PECTORAL_LABEL).astype(np.float32)
        if flipped:
            muscle = np.ascontiguousarray(muscle[:, ::-1])
        cols = np.nonzero(muscle)[1]
        if cols.size == 0:
            raise CaseSkipped(f"label {case.file(self.role).name} has no pectoral muscle (value {PECTORAL_LABEL})")
        if cols.mean() > muscle.shape[1] / 2:
            raise CaseSkipped("the label's muscle lies on the side opposite the chest wall that the model's "
                              f"orientation rule finds (decided by {source})")
        img = torch.from_numpy(robust_unit_range(canonical))[None, None]
        mask = F.interpolate(torch.from_numpy(muscle)[None, None], size=(WORK_ROWS, muscle.shape[1]), mode="area")
        target, valid, present = bg.grid_targets(mask[0, 0].numpy())
        if not valid.any():
            raise CaseSkipped("the label gives no boundary row on the network grid")
        return {"name": case.name, "image": img, "mask": mask, "target": torch.from_numpy(target),
                "valid": torch.from_numpy(valid), "present": torch.from_numpy(present)}

    def loss(self, model, examples: list[dict], gen: torch.Generator | None, device) -> tuple[torch.Tensor, dict]:
        """The training loss of a batch; with `gen` augmented, without it the inference input exactly."""
        xs, ts, vs, ps = [], [], [], []
        for ex in examples:
            img, target, valid, present = ex["image"], ex["target"], ex["valid"], ex["present"]
            if gen is not None:
                theta = random_theta(1, gen, aspect=img.shape[-2] / img.shape[-1])
                img = jitter_intensity(warp(img, theta, "border"), gen)
                t, v, p = bg.grid_targets(warp(ex["mask"], theta, "border")[0, 0].numpy())
                target, valid, present = torch.from_numpy(t), torch.from_numpy(v), torch.from_numpy(p)
            xs.append(bg.to_grid(img))
            ts.append(target)
            vs.append(valid)
            ps.append(present)
        x = torch.cat(xs).to(device)
        target, valid, present = (torch.stack(a).to(device) for a in (ts, vs, ps))
        mean, var, prob = model.decode(x)
        total, data, js = heatmap_loss(prob, mean, var, target, valid, self.loss_name, self.js_weight)
        err = (mean - target).abs()[present]
        parts = {"loss": float(total.detach()), "data": float(data.detach()), "js": float(js.detach()),
                 "mae_grid": float(err.mean().detach()) if err.numel() else None}
        return total, parts
