"""Monte-Carlo dropout for the breast / pectoral U-Net: N stochastic passes, their statistics (Gal & Ghahramani 2016;
the uncertainty baseline of Verboom et al., JMI 2024).

Each sample n draws an independent element-wise dropout mask (keep probability 1 − p, kept features scaled by
1 / (1 − p), as `nn.Dropout` in training) on the last decoder features and applies the 1×1 classifier and a softmax:
p_n(k | x). BatchNorm stays in eval mode (running statistics). Statistics per pixel, K classes:
- mean softmax        p̄_k = 1/N Σ_n p_n,k
- label map           argmax_k p̄_k
- predictive entropy  H[p̄] = − Σ_k p̄_k ln p̄_k  (nats; 0 … ln K = 1.0986 for K = 3; 0 ln 0 = 0)
- per-class variance  Var_k = 1/N Σ_n (p_n,k − p̄_k)²  (population variance over the N samples)
- mutual information  I = H[p̄] − 1/N Σ_n H[p_n]  (the model/epistemic part of the entropy, "BALD"), ≥ 0.
The statistics are accumulated over chunks of samples (sums of p − c and (p − c)² with c the first chunk's mean, which
avoids float32 cancellation in the variance, and of H[p_n]), so memory does not grow with N.

Two ways to draw the same samples (`share_features`):
- True (default): the network up to the dropout is deterministic at inference, so its features are computed ONCE and
  only dropout + classifier are repeated N times, batched — exactly the same numbers as N full passes, ≈ N× cheaper;
- False: the literal MC-dropout baseline, N full forward passes of the network (batched `chunk` at a time), each with
  its own dropout mask. With the same generator both give the same masks, hence the same statistics (tested); the
  benchmark times both.
`deterministic_pass` is the `--fast` path: one pass with dropout off (its expectation under inverted dropout).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from uqseg.mammo.breast_model import BreastSegNet
from uqseg.metrics.information import entropy  # Shannon entropy in nats along an axis (0 · ln 0 = 0)

DEFAULT_SAMPLES = 20
DEFAULT_CHUNK = 5


@dataclass
class McStatistics:
    mean: torch.Tensor  # (K, h, w) mean softmax
    variance: torch.Tensor  # (K, h, w) per-class population variance over the samples
    entropy: torch.Tensor  # (h, w) predictive entropy of the mean softmax, nats
    mutual_information: torch.Tensor  # (h, w) H[p̄] − mean H[p_n], nats
    samples: int

    @property
    def label(self) -> torch.Tensor:
        return self.mean.argmax(dim=0)


def statistics_from_samples(probs: torch.Tensor) -> McStatistics:
    """(N, K, …) softmax samples → their statistics (for tests and small inputs; inference streams them)."""
    mean = probs.mean(dim=0)
    var = probs.var(dim=0, unbiased=False)
    h = entropy(mean, axis=0)
    mi = (h - entropy(probs, axis=1).mean(dim=0)).clamp_min(0.0)
    return McStatistics(mean, var, h, mi, probs.shape[0])


def dropout_masks(shape, p: float, generator: torch.Generator, device) -> torch.Tensor:
    """Inverted-dropout masks: 0 with probability p, 1 / (1 − p) otherwise."""
    keep = torch.rand(shape, generator=generator, device=device) >= p
    return keep.to(torch.float32) / (1.0 - p)


@torch.no_grad()
def mc_dropout(model: BreastSegNet, x: torch.Tensor, samples: int = DEFAULT_SAMPLES, *, seed: int = 0,
               share_features: bool = True, chunk: int = DEFAULT_CHUNK) -> McStatistics:
    """MC-dropout statistics for ONE image x (1, 1, h, w) (module docstring)."""
    if x.shape[0] != 1:
        raise ValueError("mc_dropout takes one image (batch size 1)")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    model.eval()
    p = model.dropout_p
    generator = torch.Generator(device=x.device).manual_seed(int(seed))
    feats = model.features(x) if share_features else None
    shift = sum_d = sum_d2 = sum_h = None
    done = 0
    while done < samples:
        n = min(chunk, samples - done)
        f = feats.expand(n, -1, -1, -1) if share_features else model.features(x.expand(n, -1, -1, -1))
        masks = dropout_masks(f.shape, p, generator, x.device) if p > 0 else 1.0
        prob = torch.softmax(model.classify(f * masks), dim=1).float()
        if shift is None:  # sums of deviations from the first chunk's mean: no float32 cancellation in the variance
            shift = prob.mean(0)
            sum_d, sum_d2, sum_h = torch.zeros_like(shift), torch.zeros_like(shift), torch.zeros_like(shift[0])
        d = prob - shift
        sum_d, sum_d2, sum_h = sum_d + d.sum(0), sum_d2 + (d * d).sum(0), sum_h + entropy(prob, axis=1).sum(0)
        done += n
    mean_d = sum_d / samples
    mean = shift + mean_d
    var = (sum_d2 / samples - mean_d * mean_d).clamp_min(0.0)
    h = entropy(mean, axis=0)
    mi = (h - sum_h / samples).clamp_min(0.0)
    return McStatistics(mean, var, h, mi, samples)


@torch.no_grad()
def deterministic_pass(model: BreastSegNet, x: torch.Tensor) -> torch.Tensor:
    """Softmax (K, h, w) of one pass with dropout off (eval mode) for one image x (1, 1, h, w)."""
    model.eval()
    return torch.softmax(model(x), dim=1)[0].float()
