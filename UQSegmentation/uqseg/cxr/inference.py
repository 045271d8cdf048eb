"""Landmarks with per-node uncertainty for one chest radiograph (Cosarinsky et al., "CheXmask-U", MIDL 2026).

predict_landmarks(image, model, samples=N):
1. preprocess (preprocess.py: percentile intensity, centred square, resize to the model's G × G);
2. encode ONCE: μ, log σ² ∈ R^L (and the encoder feature maps for the skip variant);
3. draw z_s = μ + σ ⊙ ε_s, ε_s ~ N(0, I), s = 1..N (seeded generator) and decode all N in ONE batch;
4. per node i and coordinate: mean m_i = (1/N) Σ_s y_s,i and population std σ_i = sqrt((1/N) Σ_s (y_s,i − m_i)²)
   (as CheXmask-U, `np.std`), in normalised square coordinates, then mapped to the input's own pixels:
   x = u·S − ½ − pad_left (preprocess.py), σ_x[px] = σ_u · S;
5. the latent σ = exp(½ log σ²) (the "latent uncertainty", one value per dimension, and its mean);
6. node std (one number per node, px) = ½ (σ_x + σ_y); image_uncertainty = its mean over the 120 nodes (input px);
   image_uncertainty_ref = the same in pixels of a 512-pixel square (σ_u · 512: the training images' frame, so it
   does not depend on the input resolution) — the card's `ood_threshold_ref` applies to it;
7. when the loaded model carries a node std head (`model.node_std_head`, set by the task's `load` from the card's
   `node_std_head` file, `uqseg.cxr.std_head`, cxr-hybridgnet-vae 1.2.0 on), the head reads the decoder's node
   features at z = μ and the MC node std and gives an aleatoric per-axis std s_i per node (`aleatoric`, input px);
   `std` becomes sqrt(σ_MC² + s_i²) per axis (Kendall & Gal 2017, Eq. (9)) and the MC std of step 4 is kept as
   `raw_std`;
8. when the loaded model carries a node calibration (`model.node_calibration`, set by the task's `load` from the
   card's `node_calibration` file, `uqseg.cxr.calibration`), `std` becomes the calibrated per-axis std
   (offset_i + scale_i · σ, per node index i, applied to the std of step 7) and the MC std of step 4 is kept as
   `raw_std`. image_uncertainty (and _ref, hence `ood`) stays the mean of the RAW node std: the card's OOD
   threshold and its checks (non-chest images, noise) were derived on it, and the per-node map is fitted on
   in-distribution errors only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from uqseg.cxr.hybridgnet import HybridGNet
from uqseg.cxr.preprocess import SquareFrame, network_input
from uqseg.cxr.std_head import combine
from uqseg.errors import InputError
from uqseg.io.image import Image

DEFAULT_SAMPLES = 50
REF_SIDE = 512  # side of the training images: the frame of image_uncertainty_ref
MIN_SIDE = 32
#: latents decoded per batch by `sample_positions` (μ and the first 511 samples in the first batch)
DECODE_CHUNK = 512


@dataclass
class LandmarkResult:
    """All positions are pixel-centre (x, y) = (column, row) of the input image; stds in input pixels."""

    shape: tuple[int, int]
    mean: np.ndarray  # (120, 2)
    std: np.ndarray  # (120, 2)
    samples: int
    latent_sigma: np.ndarray  # (L,)
    frame: SquareFrame
    mode: np.ndarray = field(repr=False, default=None)  # (120, 2) the decoding of z = μ
    #: (120, 2) the MC std before the node calibration (None: not calibrated, `std` is the MC std)
    raw_std: np.ndarray = field(repr=False, default=None)
    #: the `uqseg.cxr.calibration.NodeCalibration` that made `std` from `raw_std` (None: none)
    calibration: object = field(repr=False, default=None)
    #: (120,) the node std head's aleatoric per-axis std s_i, input px (None: the model has no head)
    aleatoric: np.ndarray = field(repr=False, default=None)

    @property
    def node_std(self) -> np.ndarray:
        """(120,) ½ (σ_x + σ_y) per node, input px: the std the user sees (calibrated when the model has a map)."""
        return self.std.mean(axis=1)

    @property
    def mc_std(self) -> np.ndarray:
        """(120, 2) the MC std of the latent samples (before any calibration)."""
        return self.std if self.raw_std is None else self.raw_std

    @property
    def raw_node_std(self) -> np.ndarray:
        """(120,) ½ (σ_x + σ_y) of the MC std (before any calibration), input px."""
        return self.mc_std.mean(axis=1)

    @property
    def image_uncertainty(self) -> float:
        """Mean RAW node std over the 120 nodes (step 7 of the module docstring says why raw)."""
        return float(self.raw_node_std.mean())

    @property
    def image_uncertainty_ref(self) -> float:
        return float(self.image_uncertainty / self.frame.size * REF_SIDE)

    @property
    def latent_sigma_mean(self) -> float:
        return float(self.latent_sigma.mean())


def check_input(image: Image) -> None:
    if image.ndim != 2:
        raise InputError(image.meta.get("path"), f"is a {image.ndim}-D image; a chest radiograph must be 2-D")
    h, w = image.shape
    if min(h, w) < MIN_SIDE:
        raise InputError(image.meta.get("path"), f"is only {h}x{w} pixels; a chest radiograph needs at least "
                                                 f"{MIN_SIDE} pixels per side")
    a = image.array
    finite = a[np.isfinite(a)]
    if finite.size == 0 or float(finite.max()) <= float(finite.min()):
        raise InputError(image.meta.get("path"), "has no contrast (every pixel has the same value)")


def sample_latents(mu: torch.Tensor, logvar: torch.Tensor, samples: int, seed: int) -> torch.Tensor:
    """(samples, L): z_s = μ + σ ⊙ ε_s with ε from a CPU generator seeded with `seed` (same draws on any device)."""
    eps = torch.randn(samples, mu.shape[-1], generator=torch.Generator().manual_seed(seed))
    return HybridGNet.reparameterise(mu.reshape(1, -1), logvar.reshape(1, -1), eps.to(mu.device))


@torch.inference_mode()
def sample_positions(model: HybridGNet, x: torch.Tensor, samples: int, seed: int = 0, with_features: bool = False):
    """Encode x (1, 1, G, G) once, decode `samples` latents in one batch → (positions (N, 120, 2) normalised,
    the decoding of μ (120, 2), latent σ (L,)) and, with `with_features`, the decoder's last node features at z = μ
    (120, C) (`HybridGNet.decode_features`: what the node std head reads) as a fourth element."""
    mu, logvar, feats = model.encode(x)
    z = torch.cat([mu, sample_latents(mu, logvar, samples, seed)])
    # decoded DECODE_CHUNK latents at a time: memory stays flat in the number of samples (one batch of 136 kB per
    # latent would take 13.7 GB at 100 000 samples); up to DECODE_CHUNK − 1 samples (the default 50 included) it is the
    # one batch of before, and larger counts gave bit-identical positions in the checks (Testing/
    # test_hostile_models_resources.py)
    if not with_features:
        pos = torch.cat([model.decode(z[i: i + DECODE_CHUNK], feats)[0]
                         for i in range(0, z.shape[0], DECODE_CHUNK)])
        return pos[1:], pos[0], torch.exp(0.5 * logvar[0])
    # the same decoding in its two halves (`decode` = position head ∘ `decode_features`), keeping the node features
    # of row 0 (z = μ) for the node std head: no extra decoder pass
    pos, mode_features = [], None
    for i in range(0, z.shape[0], DECODE_CHUNK):
        h, _ = model.decode_features(z[i: i + DECODE_CHUNK], feats)
        pos.append(model.head(h, model.lap_fine) + model.template)
        mode_features = h[0] if mode_features is None else mode_features
    pos = torch.cat(pos)
    return pos[1:], pos[0], torch.exp(0.5 * logvar[0]), mode_features


@torch.inference_mode()
def predict_landmarks(image: Image, model: HybridGNet, device: torch.device | str = "cpu",
                      samples: int | None = None, seed: int = 0, deterministic: bool = False) -> LandmarkResult:
    """Steps 1–6 of the module docstring. `deterministic=True` is the single pass: the same pipeline with one
    decoding of z = μ and no sampling (std zeros, `samples` 0) — what `uqseg bench` compares the sampling with."""
    samples = DEFAULT_SAMPLES if samples is None else int(samples)
    if samples < 2 and not deterministic:
        raise ValueError(f"--samples must be at least 2 to estimate a standard deviation, got {samples}")
    check_input(image)
    model.eval()
    arr = np.nan_to_num(np.asarray(image.array, dtype=np.float32))
    x, frame = network_input(arr, model.input_size)
    if deterministic:
        mu, logvar, feats = model.encode(x.to(device))
        mode = model.decode(mu, feats)[0][0].double().cpu().numpy()
        return LandmarkResult(shape=tuple(image.shape), mean=frame.from_normalised(mode), std=np.zeros_like(mode),
                              samples=0, latent_sigma=torch.exp(0.5 * logvar[0]).double().cpu().numpy(),
                              frame=frame, mode=frame.from_normalised(mode))
    head = getattr(model, "node_std_head", None)
    out = sample_positions(model, x.to(device), samples, seed, with_features=head is not None)
    pos, mode, sigma = out[:3]
    aleatoric = None
    if head is not None:
        features = out[3]
        node_std_u = pos.std(0, unbiased=False).mean(-1)  # ½ (σ_x + σ_y), normalised, the head's input
        log_s = head(features[None].float(), node_std_u[None].float(), model.lap_fine)[0]
        aleatoric = frame.std_to_pixels(torch.exp(log_s).double().cpu().numpy())
    pos = pos.double().cpu().numpy()
    mean_u, std_u = pos.mean(0), pos.std(0)
    result = LandmarkResult(shape=tuple(image.shape), mean=frame.from_normalised(mean_u),
                            std=frame.std_to_pixels(std_u), samples=samples,
                            latent_sigma=sigma.double().cpu().numpy(), frame=frame,
                            mode=frame.from_normalised(mode.double().cpu().numpy()), aleatoric=aleatoric)
    return calibrate(result, getattr(model, "node_calibration", None))


def calibrate(result: LandmarkResult, calibration) -> LandmarkResult:
    """Steps 7–8: `std` = the MC std combined with the result's `aleatoric` head std (None: the MC std), then
    calibrated by `calibration` (a NodeCalibration; None: not); the MC std kept as `raw_std` when either applies.
    The means are untouched."""
    if calibration is None and result.aleatoric is None:
        return result
    raw = result.mc_std
    std = raw if result.aleatoric is None else combine(raw, result.aleatoric)
    if calibration is not None:
        std = calibration.apply(std)
    return replace(result, std=std, raw_std=raw, calibration=calibration)
