"""Fine-tuning recipe of `mammo-breast` (U-Net with MC dropout; Verboom et al., JMI 2024).

Corrected case: labels/NAME.seg.nrrd (segments named `breast` and `pectoral` — the names `uqseg predict` writes —
any label values) or labels/NAME.nrrd (values 0 background, 1 breast, 2 pectoral), on the input's pixel grid, +
its input image. Preprocessing is that of inference (`uqseg.mammo.breast.predict_breast`): the mammogram checks,
`breast_preprocess.prepare` (spacing → 0.4 mm working grid, window / raw log transform, robust intensity, chest wall
to the left by the model's own rule) and zero padding to a multiple of 16; the label goes onto the working grid as
the training adapter does (one-hot, flipped like the image, anti-aliased resize, arg-max).

Loss: class-weighted cross-entropy (`torch.nn.functional.cross_entropy`, nats per working-grid pixel) with the
card's `training.class_weights` (shipped: background 1, breast 1, pectoral 2), over the working image (the padding
to a multiple of 16 is not scored). Dropout stays active while training (as the recipe); the reported before / after
losses are those of the deterministic pass (dropout off). Augmentation (`uqseg.finetune.augment`): one random
rotation / scale / shift of image and one-hot label (zeros outside = background), intensity jitter.
Optimiser as `Training/train_breast.py`: AdamW, weight decay 1e-4 (that recipe clips no gradients; neither does this).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from uqseg.finetune.augment import jitter_intensity, random_theta, warp
from uqseg.finetune.errors import CaseSkipped
from uqseg.io.image import Image
from uqseg.mammo.breast import check_mammogram
from uqseg.mammo.breast_model import CLASSES, PECTORAL
from uqseg.mammo.breast_preprocess import pad_to_multiple, prepare, to_working_grid

SEGMENT_CLASSES = {"breast": 1, "pectoral": PECTORAL, "pectoral_muscle": PECTORAL}


def read_label_map(path) -> np.ndarray:
    """(H, W) uint8 classes 0 background / 1 breast / 2 pectoral from a .seg.nrrd (by segment name) or a plain
    .nrrd (by value). Raises CaseSkipped with the reason when the file does not describe these classes."""
    import nrrd

    try:
        data, header = nrrd.read(str(path), index_order="C")
    except (OSError, ValueError, nrrd.NRRDError) as e:
        raise CaseSkipped(f"label {path.name} cannot be read ({e})") from None
    data = np.asarray(data)
    while data.ndim > 2 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 2:
        raise CaseSkipped(f"label {path.name} has shape {data.shape}; a 2-D label map (one layer) is needed")
    out = np.zeros(data.shape, np.uint8)
    if str(path).endswith(".seg.nrrd"):
        try:
            names = {int(header[k]): str(header.get(k.replace("_LabelValue", "_Name"), "")).strip().lower()
                     for k in header if k.startswith("Segment") and k.endswith("_LabelValue")}
        except ValueError as e:
            raise CaseSkipped(f"label {path.name} has a segment label value that is not an integer ({e})") from None
        unknown = sorted(n for n in names.values() if n not in SEGMENT_CLASSES)
        if unknown:
            raise CaseSkipped(f"label {path.name} has segments {unknown}; expected {sorted(SEGMENT_CLASSES)}")
        for value, name in names.items():
            out[data == value] = SEGMENT_CLASSES[name]
        return out
    values = set(np.unique(data).tolist())
    if not values <= {0, 1, 2}:
        raise CaseSkipped(f"label {path.name} holds values {sorted(values)[:8]}; expected 0, 1, 2")
    return data.astype(np.uint8)


class BreastRecipe:
    task = "mammo-breast"
    role = "label"
    default_lr = 3e-5  # the last training stage ended at 2e-5 (cosine to 2 % of 1e-3)
    weight_decay = 1e-4
    clip_norm = None
    augmentation = ("rotation ±5°, scale 0.95-1.05, shift ±2 % (image and one-hot label), gamma 0.8-1.25, "
                    "contrast 0.9-1.1, brightness ±0.05, Gaussian noise σ ≤ 0.02")

    def __init__(self, card):
        weights = card.get("training", {}).get("class_weights", {})
        self.class_weights = tuple(float(weights.get(c, 1.0)) for c in CLASSES)

    def load_model(self, card, device):
        from uqseg.tasks.mammo_breast import MammoBreastTask

        return MammoBreastTask().load(card, device)

    def describe_loss(self) -> dict:
        return {"function": "torch.nn.functional.cross_entropy",
                "class_weights": dict(zip(CLASSES, self.class_weights)),
                "units": "nats per pixel of the 0.4 mm working grid (class-weighted mean)"}

    def optimizer(self, params, lr: float) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, lr=lr, weight_decay=self.weight_decay)

    def example(self, case, image: Image, model) -> dict:
        check_mammogram(image)
        label = read_label_map(case.file(self.role))
        if label.shape != tuple(image.shape):
            raise CaseSkipped(f"label {case.file(self.role).name} is {label.shape[0]}x{label.shape[1]}, "
                              f"the input image {image.shape[0]}x{image.shape[1]}")
        prepared = prepare(image)
        onehot = np.stack([(label == k).astype(np.float32) for k in range(len(CLASSES))])
        work = to_working_grid(onehot, prepared)
        return {"name": case.name, "image": torch.from_numpy(prepared.array)[None, None], "onehot": work[None],
                "label": work.argmax(dim=0)}

    def loss(self, model, examples: list[dict], gen: torch.Generator | None, device) -> tuple[torch.Tensor, dict]:
        weight = torch.tensor(self.class_weights, device=device)
        losses = []
        for ex in examples:
            img, label = ex["image"], ex["label"]
            if gen is not None:
                theta = random_theta(1, gen, aspect=img.shape[-2] / img.shape[-1])
                img = jitter_intensity(warp(img, theta, "zeros"), gen)
                label = warp(ex["onehot"], theta, "zeros")[0].argmax(dim=0)  # all-zero outside → 0 = background
            x, (h, w) = pad_to_multiple(img.to(device))
            logits = model(x)[:, :, :h, :w]
            losses.append(F.cross_entropy(logits, label[None].to(device), weight=weight))
        total = torch.stack(losses).mean()
        return total, {"loss": float(total.detach())}
