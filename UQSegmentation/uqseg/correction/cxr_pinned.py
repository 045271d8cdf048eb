"""Model-aware correction of the chest X-ray landmark rings from pinned nodes: the user moves some nodes,
the model re-shapes the rest of that organ's ring and re-estimates its per-node std.

Frames and units. Pins and every returned position are pixel-centre (x, y) = (column, row) indices of the INPUT image
(the frame of `LandmarkResult`, preprocess.py); stds are in input pixels. Internally everything is in the normalised
square coordinates u = (x + pad_left + ½) / S of the decoder (preprocess.py). The tuning constants below are given in
pixels of a 512-pixel reference square (the training images' frame, as `image_uncertainty_ref`) and scaled by
S / 512 — i.e. they are fractions of the padded square, independent of the input resolution.

Model (one organ o with n nodes; the pinned nodes p ⊂ o, k of them; y ∈ R^{n×2} its ring):
    y = f_o(z) + e,   z ~ N(μ, λ · diag σ²),   e ~ GP(0, a² K ⊗ I₂),   K_ij = exp(−d_ij² / 2ℓ²)
    pins  p̂ = y_p + η,   η ~ N(0, τ² I)
f is the HybridGNet decoder (with its image skip features), μ, σ² the encoder's posterior q(z|x) (λ = 1 by
default: q itself; a covariance I instead of diag σ² was worse in a linearised comparison on the train split, and
the prior mean 0 of N(0, I) would discard the image); d_ij the distance of nodes i, j along the closed ring (in
nodes); e is the smooth part of the model's error that its latent spread does not cover (the model card: 9.9 px
mean landmark error on val vs a 4.4 px mean node std). The other organs are not touched.

1. MAP of z with e marginalised at the pins (Gauss–Newton from z₀ = μ; r(z) = p̂ − f_p(z),
   W = (a² K_pp ⊗ I₂ + τ² I)⁻¹, the pins' precision once e is integrated out):
       z* = argmin ½ r(z)ᵀ W r(z) + ½ (z − μ)ᵀ Λ (z − μ),   Λ = diag(1 / (λ σ²))
       z_{t+1} = μ + (Λ + J_tᵀ W J_t)⁻¹ J_tᵀ W (r(z_t) + J_t (z_t − μ)),   J_t = ∂f_p/∂z at z_t (exact, autograd)
   The first step is the linearised MAP = Gaussian conditioning, z₁ = μ + Σ Jᵀ (J Σ Jᵀ + W⁻¹)⁻¹ r(μ), Σ = Λ⁻¹.
2. Laplace posterior Σ* = (Λ + J*ᵀ W J*)⁻¹; N samples z_s = z* + chol(Σ*) ε_s with the SAME seeded ε_s as the
   inference (inference.sample_latents), decoded in one batch → y_s (n × 2).
3. Conditional mean of e given each sample's residual at the pins (kriging along the ring, per coordinate):
       y'_s = y_s + G (p̂ − y_s,p),   G = a² K_:p (a² K_pp + τ² I)⁻¹
   mean m = (1/N) Σ y'_s, std = population std of y'_s (as the inference; the latent part of the uncertainty, now
   conditioned on the pins: it shrinks at and near the pins and stays as it was far from them).
4. Snap: what is left at the pins, δ = p̂ − m_p (the part of the pins' residual that is too rough for the ring
   kernel, and the τ slack), is blended into the ring neighbours with a decaying weight, m_i ← m_i + exp(−d² / 2ℓ_s²)
   δ_j for the nearest pin j (d its ring distance, ℓ_s = 1 node), so the pinned nodes end exactly where the user
   put them.
Pins in several organs are handled organ by organ (one z* each). No pins → the input result, unchanged.

The constants (λ, a, ℓ, τ) were chosen on the train split of JSRT (Training/evaluate_cxr_pinning.py, simulated user:
the 3 highest-std nodes of an organ pinned to the truth); the val-set numbers are in
Resources/Models/cxr-hybridgnet-vae/pinning.json. There (21 val images × 3 organs) the other nodes' mean error goes
10.20 → 8.21 px (−19.5 %, better in 52 of 63 cases, at worst +0.6 px), the pinned nodes' std 5.9 → 0.18 px; the
latent MAP alone (a → 0) gives −9.5 %, the ring residual alone (latent frozen at μ) −15.3 %, moving only the pins
−4.2 %. Refit ≈ 20 ms per organ on one CPU thread (image encoded once, ≈ 13 ms).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from uqseg.cxr.graph import N_NODES, ORGANS, organ_slices
from uqseg.cxr.hybridgnet import HybridGNet
from uqseg.cxr.inference import REF_SIDE, LandmarkResult, calibrate, sample_latents
from uqseg.cxr.preprocess import SquareFrame, network_input
from uqseg.io.image import Image

PRIOR_SCALE = 1.0  # λ: variance scale of the latent prior q(z|x) (1 = the encoder's posterior as it is)
RESIDUAL_AMPLITUDE_REF = 12.0  # a, px of the 512 reference square
RESIDUAL_LENGTH_NODES = 3.0  # ℓ, nodes along the ring
PIN_TOLERANCE_REF = 2.0  # τ, px of the 512 reference square
GAUSS_NEWTON_STEPS = 2
SNAP_LENGTH_NODES = 1.0  # ℓ_s of the final snap (step 4)


@dataclass
class EncodedImage:
    """The encoder's output for one image, kept so that repeated refits (interactive dragging) encode once.
    mu, logvar (1, L); feats the encoder feature maps (batch 1); frame the SquareFrame of the input image."""

    mu: torch.Tensor
    logvar: torch.Tensor
    feats: list
    frame: SquareFrame


@torch.no_grad()  # not inference_mode: the refit differentiates the decoder through these feature maps
def encode_image(model: HybridGNet, image: Image | np.ndarray) -> EncodedImage:
    """Preprocess (as predict_landmarks: NaN → 0, percentile intensity, centred square, resize) and encode once."""
    arr = image.array if isinstance(image, Image) else image
    arr = np.nan_to_num(np.asarray(arr, dtype=np.float32))
    x, frame = network_input(arr, model.input_size)
    device = next(model.parameters()).device
    model.eval()
    mu, logvar, feats = model.encode(x.to(device))
    return EncodedImage(mu, logvar, feats, frame)


def ring_distance(n: int) -> np.ndarray:
    """(n, n) number of edges between nodes i and j of a closed ring of n nodes: min(|i − j|, n − |i − j|)."""
    i = np.arange(n)
    d = np.abs(i[:, None] - i[None, :])
    return np.minimum(d, n - d)


def ring_kernel(n: int, length: float) -> np.ndarray:
    """K_ij = exp(−d_ij² / 2ℓ²), d the ring distance in nodes (unit amplitude)."""
    return np.exp(-0.5 * (ring_distance(n) / float(length)) ** 2)


def snap_weights(n: int, pinned: np.ndarray, length: float = SNAP_LENGTH_NODES) -> np.ndarray:
    """(n, k) B: node i takes the remaining displacement δ_j of its NEAREST pin j (ring distance d_ij) with weight
    exp(−d_ij² / 2ℓ_s²), the others 0; B_jj = 1, so m + B δ puts every pinned node exactly on its pin. (The
    noise-free kriging interpolator K_:p K_pp⁻¹ would also be exact at the pins, but with adjacent pins K_pp is
    near-singular and it overshoots wildly between them.)"""
    d = ring_distance(n)[:, pinned]  # (n, k)
    w = np.zeros((n, len(pinned)))
    nearest = np.argmin(d, axis=1)
    w[np.arange(n), nearest] = np.exp(-0.5 * (d[np.arange(n), nearest] / float(length)) ** 2)
    return w


def check_pins(pins, frame: SquareFrame | None = None) -> dict[int, np.ndarray]:
    """{node index: (x, y)} → {int: float64 (2,)}; ValueError naming the bad pin (index not an integer in
    0..119, position not two finite numbers)."""
    if pins is None:
        return {}
    if not hasattr(pins, "items"):
        raise ValueError(f"pins must be a mapping {{node index: (x, y)}}, got {type(pins).__name__}")
    out = {}
    for node, xy in pins.items():
        if isinstance(node, (bool, np.bool_)) or not isinstance(node, (int, np.integer)):
            raise ValueError(f"pin node index {node!r} is not an integer (nodes are 0..{N_NODES - 1})")
        if not 0 <= int(node) < N_NODES:
            raise ValueError(f"pin node index {int(node)} is out of range: nodes are 0..{N_NODES - 1} "
                             f"(right lung 0..43, left lung 44..93, heart 94..119)")
        try:
            p = np.asarray(xy, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(f"pin of node {int(node)}: position {xy!r} is not two numbers (x, y)") from None
        if p.shape != (2,):
            raise ValueError(f"pin of node {int(node)}: position must be (x, y), got {p.size} values")
        if not np.all(np.isfinite(p)):
            raise ValueError(f"pin of node {int(node)}: position {tuple(p)} is not finite (NaN or inf)")
        out[int(node)] = p
    return out


def _organ_of(node: int) -> str:
    for name, sl in organ_slices().items():
        if sl.start <= node < sl.stop:
            return name
    raise ValueError(node)


def _pin_jacobian(model, z: torch.Tensor, feats, rows: np.ndarray):
    """(f_p(z) (2k,), J = ∂f_p/∂z (2k, L)) in normalised units at one latent z (1, L); rows = flat indices
    2·node + coordinate. Exact reverse mode: 2k copies of z in one batch, copy b differentiated at output rows[b]."""
    with torch.enable_grad():
        zz = z.detach().expand(len(rows), -1).clone().requires_grad_(True)
        out = model.decode(zz, feats)[0].reshape(len(rows), -1)
        picked = out[torch.arange(len(rows), device=out.device), torch.as_tensor(rows, device=out.device)]
        (jac,) = torch.autograd.grad(picked.sum(), zz)
    return picked.detach().double().cpu().numpy(), jac.double().cpu().numpy()


def _refit_organ(model, enc: EncodedImage, organ: str, pins_uv: dict[int, np.ndarray], samples: int, seed: int,
                 prior_scale: float, amplitude: float, length: float, tolerance: float, steps: int):
    """Steps 1–4 of the module docstring for one organ; all in normalised units. → (mean (n, 2), std (n, 2),
    MAP decoding f_o(z*) (n, 2))."""
    sl = organ_slices()[organ]
    n = sl.stop - sl.start
    local = np.array(sorted(pins_uv)) - sl.start  # pinned nodes, organ-local indices
    target = np.stack([pins_uv[i + sl.start] for i in local])  # (k, 2)
    rows = np.stack([2 * (local + sl.start), 2 * (local + sl.start) + 1], 1).reshape(-1)  # x, y of each pin
    k_ring = ring_kernel(n, length)
    k_pp = k_ring[np.ix_(local, local)]
    w = np.linalg.inv(np.kron(amplitude ** 2 * k_pp, np.eye(2)) + tolerance ** 2 * np.eye(2 * len(local)))
    mu = enc.mu.detach().double().cpu().numpy()[0]
    prior_var = prior_scale * np.exp(enc.logvar.detach().double().cpu().numpy()[0])
    lam = np.diag(1.0 / prior_var)
    dev, dtype = enc.mu.device, enc.mu.dtype
    z = mu.copy()
    for _ in range(max(1, steps)):
        f_p, jac = _pin_jacobian(model, torch.as_tensor(z[None], device=dev, dtype=dtype), enc.feats, rows)
        r = target.reshape(-1) - f_p
        h = lam + jac.T @ w @ jac
        z = mu + np.linalg.solve(h, jac.T @ w @ (r + jac @ (z - mu)))
    _, jac = _pin_jacobian(model, torch.as_tensor(z[None], device=dev, dtype=dtype), enc.feats, rows)
    cov = np.linalg.inv(lam + jac.T @ w @ jac)
    chol = np.linalg.cholesky(0.5 * (cov + cov.T))
    eps = sample_latents(torch.zeros(1, len(mu)), torch.zeros(1, len(mu)), samples, seed).double().numpy()
    zs = np.concatenate([z[None], z[None] + eps @ chol.T])
    with torch.inference_mode():
        pos = model.decode(torch.as_tensor(zs, device=dev, dtype=dtype), enc.feats)[0]
    pos = pos[:, sl].double().cpu().numpy()  # (1 + N, n, 2)
    map_decoding, ys = pos[0], pos[1:]
    gain = amplitude ** 2 * k_ring[:, local] @ np.linalg.inv(amplitude ** 2 * k_pp
                                                             + tolerance ** 2 * np.eye(len(local)))
    ys = ys + np.einsum("ij,sjc->sic", gain, target[None] - ys[:, local])
    mean, std = ys.mean(0), ys.std(0)
    mean = mean + snap_weights(n, local) @ (target - mean[local])
    return mean, std, map_decoding


def refit_with_pins(model: HybridGNet, image_or_encoded: Image | np.ndarray | EncodedImage, result: LandmarkResult,
                    pins: dict, samples: int | None = None, seed: int = 0, *, prior_scale: float = PRIOR_SCALE,
                    amplitude_ref: float = RESIDUAL_AMPLITUDE_REF, length_nodes: float = RESIDUAL_LENGTH_NODES,
                    tolerance_ref: float = PIN_TOLERANCE_REF, steps: int = GAUSS_NEWTON_STEPS) -> LandmarkResult:
    """A new LandmarkResult in which every organ holding a pin is refitted (module docstring, steps 1–4); the other
    organs keep `result`'s positions and stds.

    model: the HybridGNet that produced `result`. image_or_encoded: the input image (Image or 2-D array, the same
    pixels `result` came from) or its `encode_image` output (encode once, refit many times). result: the
    LandmarkResult of predict_landmarks. pins: {node index 0..119: (x, y)} in INPUT pixel-centre coordinates.
    samples: latent samples for the new std (default: result.samples, or 50); seed: their seed (the same draws
    as the inference). Keyword tuning constants: prior_scale λ, amplitude_ref a and tolerance_ref τ in px of the
    512 reference square, length_nodes ℓ in nodes, steps = Gauss–Newton steps.
    Returns mean and std (120, 2) in input pixels; `mode` holds f(z*) for refitted organs; `latent_sigma` is kept.
    Raises ValueError for a bad pin (index out of range, not finite) or a result of another image size."""
    pins = check_pins(pins)
    if not pins:
        return result
    enc = image_or_encoded if isinstance(image_or_encoded, EncodedImage) else encode_image(model, image_or_encoded)
    frame = result.frame
    if (enc.frame.height, enc.frame.width) != (frame.height, frame.width):
        raise ValueError(f"the image is {enc.frame.height}x{enc.frame.width} but the result belongs to a "
                         f"{frame.height}x{frame.width} image")
    samples = int(samples or result.samples or 50)
    if samples < 2:
        raise ValueError(f"samples must be at least 2 to estimate a standard deviation, got {samples}")
    to_ref = REF_SIDE  # constants in px of the reference square → normalised units: / 512
    # the MC std of every organ (refitted organs replace theirs); a calibrated result is calibrated again at the end
    # with its own node calibration, so a refitted organ's std means what the unpinned organs' does
    mean, std = result.mean.copy(), result.mc_std.copy()
    mode = (result.mode if result.mode is not None else result.mean).copy()
    by_organ: dict[str, dict[int, np.ndarray]] = {}
    for node, xy in pins.items():
        by_organ.setdefault(_organ_of(node), {})[node] = frame.to_normalised(xy)
    for organ, organ_pins in by_organ.items():
        sl = organ_slices()[organ]
        m, s, f = _refit_organ(model, enc, organ, organ_pins, samples, seed, prior_scale, amplitude_ref / to_ref,
                               length_nodes, tolerance_ref / to_ref, steps)
        mean[sl], std[sl], mode[sl] = frame.from_normalised(m), frame.std_to_pixels(s), frame.from_normalised(f)
        for node, xy in organ_pins.items():
            mean[node] = pins[node]  # the user's pixels exactly, not a round trip through the normalised frame
    # the head's aleatoric std (if any) is kept for every node but the pinned ones: a node the user placed has no
    # error left to expect
    aleatoric = None if result.aleatoric is None else result.aleatoric.copy()
    if aleatoric is not None:
        aleatoric[list(pins)] = 0.0
    refitted = replace(result, mean=mean, std=std, raw_std=None, calibration=None, mode=mode, samples=samples,
                       aleatoric=aleatoric)
    return calibrate(refitted, result.calibration)


# ------------------------------------------------------------------------------------------- simulated user
def most_uncertain_nodes(result: LandmarkResult, organ: str, k: int = 3) -> np.ndarray:
    """Global indices of the k nodes of `organ` with the largest node std (½ (σ_x + σ_y)), ascending."""
    sl = organ_slices()[organ]
    local = np.argsort(-result.node_std[sl], kind="stable")[:k]
    return np.sort(local + sl.start)


def evaluate_case(model: HybridGNet, image: Image | np.ndarray | EncodedImage, truth: np.ndarray,
                  result: LandmarkResult, k: int = 3, samples: int | None = None, seed: int = 0, organs=None,
                  **tuning) -> list[dict]:
    """The simulated user of the pinning evaluation on one image: for each organ separately, pin its k highest-std nodes to their
    TRUE positions (truth (120, 2), input pixel-centre (x, y)) and compare, for the OTHER nodes of that organ, the
    mean Euclidean error (input px) before and after; also the mean node std of the pinned nodes and of their two
    ring neighbours before / after, and the refit time (ms, image already encoded). One dict per organ."""
    enc = image if isinstance(image, EncodedImage) else encode_image(model, image)
    truth = np.asarray(truth, dtype=np.float64)
    rows = []
    for organ in organs or [name for name, _ in ORGANS]:
        sl = organ_slices()[organ]
        pinned = most_uncertain_nodes(result, organ, k)
        n = sl.stop - sl.start
        neighbours = np.setdiff1d(np.concatenate([(pinned - sl.start + d) % n + sl.start for d in (-1, 1)]), pinned)
        others = np.setdiff1d(np.arange(sl.start, sl.stop), pinned)
        t0 = time.perf_counter()
        new = refit_with_pins(model, enc, result, {int(i): truth[i] for i in pinned}, samples, seed, **tuning)
        ms = 1e3 * (time.perf_counter() - t0)
        err = lambda r: float(np.linalg.norm(r.mean[others] - truth[others], axis=1).mean())  # noqa: E731
        rows.append({"organ": organ, "pinned": pinned.tolist(),
                     "pinned_error_before_px": float(np.linalg.norm(result.mean[pinned] - truth[pinned], 1).mean()),
                     "other_error_before_px": err(result), "other_error_after_px": err(new),
                     "pinned_std_before_px": float(result.node_std[pinned].mean()),
                     "pinned_std_after_px": float(new.node_std[pinned].mean()),
                     "neighbour_std_before_px": float(result.node_std[neighbours].mean()),
                     "neighbour_std_after_px": float(new.node_std[neighbours].mean()),
                     "other_organs_unchanged": bool(np.array_equal(np.delete(new.mean, np.s_[sl], 0),
                                                                   np.delete(result.mean, np.s_[sl], 0))),
                     "pins_exact": bool(np.array_equal(new.mean[pinned], truth[pinned])),
                     "refit_ms": ms})
    return rows


def summarise(rows: list[dict]) -> dict:
    """Means over cases (and per organ) of evaluate_case rows: other-node error before / after, its relative change,
    the fraction of cases improved, pinned / neighbour std before / after, median and max refit time."""
    def block(rs):
        b = np.array([r["other_error_before_px"] for r in rs])
        a = np.array([r["other_error_after_px"] for r in rs])
        g = lambda key: float(np.mean([r[key] for r in rs]))  # noqa: E731
        return {"cases": len(rs), "other_error_before_px": float(b.mean()), "other_error_after_px": float(a.mean()),
                "relative_change": float(a.mean() / b.mean() - 1.0), "fraction_improved": float(np.mean(a < b)),
                "pinned_std_before_px": g("pinned_std_before_px"), "pinned_std_after_px": g("pinned_std_after_px"),
                "neighbour_std_before_px": g("neighbour_std_before_px"),
                "neighbour_std_after_px": g("neighbour_std_after_px")}
    out = block(rows)
    out["per_organ"] = {o: block([r for r in rows if r["organ"] == o]) for o in dict.fromkeys(r["organ"] for r in rows)}
    ms = np.array([r["refit_ms"] for r in rows])
    out["refit_ms_median"], out["refit_ms_max"] = float(np.median(ms)), float(ms.max())
    return out
