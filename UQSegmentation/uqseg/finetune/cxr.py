"""Fine-tuning recipe of `cxr-landmarks` (variational HybridGNet; Cosarinsky et al., MIDL 2026).

Corrected case: landmarks/NAME.json (the shared JSRT landmark format, `uqseg.cxr.landmarks_io`: 120 nodes, read
back as pixel-centre (x, y) of the input image) + its input image. Preprocessing is that of inference
(`uqseg.cxr.inference.predict_landmarks`): the input checks, NaN → 0, per-image percentile intensity, centred zero
padding to a square of side S = max(H, W), antialiased resize to the model's G × G (`preprocess.network_input`);
the targets are the nodes in the same normalised square coordinates u = (x + pad_left + ½) / S.

Loss: `uqseg.cxr.losses.hybridgnet_loss` — MSE of the normalised positions + β · KL + w_ds · deep supervision, with
β = the card's `training.beta_end` (the value the training held at its end) and w_ds = `training.ds_weight`. In
training the decoder gets a sampled z = μ + σ ε (as the recipe); the reported before / after losses decode z = μ
(the deterministic pass), so they do not depend on a draw. Reported parts: `mse` (normalised units²), `kl` (nats per
latent dimension) and `landmark_error_ref_px` (mean node distance in pixels of a 512-pixel square).
Augmentation (`uqseg.finetune.augment`): a random rotation / scale / shift of the network input (zeros outside,
like the model's black padding) moving the target nodes with it, intensity jitter.
Optimiser as `Training/train_cxr.py`: Adam, weight decay 1e-5, gradient norm clipped at 5.
"""

from __future__ import annotations

import numpy as np
import torch

from uqseg.cxr.inference import REF_SIDE, check_input
from uqseg.cxr.landmarks_io import read_landmarks
from uqseg.cxr.losses import hybridgnet_loss
from uqseg.cxr.preprocess import network_input
from uqseg.finetune.augment import jitter_intensity, random_theta, warp, warp_points
from uqseg.finetune.errors import CaseSkipped
from uqseg.io.image import Image

OUTSIDE_TOLERANCE = 0.1  # nodes may lie this fraction of the square's side outside the image, not more


class CxrRecipe:
    task = "cxr-landmarks"
    role = "landmarks"
    # the training ended at 5e-5 (cosine to 5 % of 1e-3); at 1e-4 the first Adam steps on 2 cases often overshoot
    default_lr = 3e-5
    weight_decay = 1e-5
    clip_norm = 5.0
    augmentation = ("rotation ±5°, scale 0.95-1.05, shift ±2 % (input and nodes), gamma 0.8-1.25, contrast 0.9-1.1, "
                    "brightness ±0.05, Gaussian noise σ ≤ 0.02")

    def __init__(self, card):
        training = card.get("training", {})
        self.beta = float(training.get("beta_end", 1e-2))
        self.ds_weight = float(training.get("ds_weight", 0.5))

    def load_model(self, card, device):
        from uqseg.tasks.cxr_landmarks import CxrLandmarksTask

        return CxrLandmarksTask().load(card, device)

    def describe_loss(self) -> dict:
        return {"function": "uqseg.cxr.losses.hybridgnet_loss", "beta": self.beta, "ds_weight": self.ds_weight,
                "units": "MSE of positions normalised to the square input (fraction of its side, squared) + beta x "
                         "KL (nats per latent dimension)"}

    def optimizer(self, params, lr: float) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=lr, weight_decay=self.weight_decay)

    def example(self, case, image: Image, model) -> dict:
        check_input(image)
        try:
            nodes, _ = read_landmarks(case.file(self.role))
        except (ValueError, KeyError, TypeError) as e:
            raise CaseSkipped(f"landmark file {case.file(self.role).name} is not in the shared format ({e})") from None
        if not np.all(np.isfinite(nodes)):
            raise CaseSkipped(f"landmark file {case.file(self.role).name} has non-finite coordinates")
        arr = np.nan_to_num(np.asarray(image.array, dtype=np.float32))
        x, frame = network_input(arr, model.input_size)
        uv = frame.to_normalised(nodes)
        h, w = image.shape
        lo = frame.to_normalised(np.array([-0.5, -0.5])) - OUTSIDE_TOLERANCE
        hi = frame.to_normalised(np.array([w - 0.5, h - 0.5])) + OUTSIDE_TOLERANCE
        if np.any(uv < lo) or np.any(uv > hi):
            raise CaseSkipped(f"landmarks lie far outside the {w}x{h} input image (another image's landmarks?)")
        return {"name": case.name, "image": x, "target": torch.from_numpy(uv.astype(np.float32))}

    def loss(self, model, examples: list[dict], gen: torch.Generator | None, device) -> tuple[torch.Tensor, dict]:
        x = torch.cat([ex["image"] for ex in examples])
        target = torch.stack([ex["target"] for ex in examples])
        if gen is not None:
            theta = random_theta(x.shape[0], gen)
            x = jitter_intensity(warp(x, theta, "zeros"), gen)
            target = warp_points(target, theta)
        x, target = x.to(device), target.to(device)
        pos, mu, logvar, inter = model(x, sample=model.training)
        total, mse, kl = hybridgnet_loss(model, pos, mu, logvar, inter, target, self.beta, self.ds_weight)
        err = ((pos - target) * REF_SIDE).norm(dim=-1).mean()
        parts = {"loss": float(total.detach()), "mse": float(mse.detach()), "kl": float(kl.detach()),
                 "landmark_error_ref_px": float(err.detach())}
        return total, parts
