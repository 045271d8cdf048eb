"""A heteroscedastic per-node std head for cxr-landmarks (issue 19, point 2): an aleatoric std per node, learned
from the errors the frozen network makes, added to the epistemic std of the latent sampling.

Why: the MC std of the latent samples (inference.py) varies with the image but says little about WHICH node is wrong
(pooled Spearman 0.19 on the JSRT val images): the heart border and the lung bases are wrong more often than their
latent spread says. Heteroscedastic regression (Nix & Weigend 1994; Kendall & Gal, "What Uncertainties Do We Need
in Bayesian Deep Learning for Computer Vision?", NeurIPS 2017) learns a per-output variance with a likelihood loss.

The head (`NodeStdHead`): per node i, the decoder's last features at z = μ (`HybridGNet.decode_features`, the
features the position head reads: the graph features + the image features sampled by the skip connection) and
log σ_MC,i (the node's MC std, ½ (σ_x + σ_y), normalised square units) → ChebConv(K) → ReLU → ChebConv(K) → one
number, plus a learned per-node bias and a fixed offset log(0.01) → log s_i. s_i is the per-axis std of node i's
error, isotropic in x and y, in normalised square units (u ∈ [0, 1] across the padded square; × S → input px).

Training (`gaussian_nll`, Training/train_cxr_std_head.py) with the network frozen: for the 2-D error r_i = m_i − y_i
of the MC mean m_i against the reference y_i, the negative log-likelihood of an isotropic Gaussian with per-axis
std s_i (Kendall & Gal, Eq. (5), in two dimensions, constant dropped):
    L_i = 2 log s_i + |r_i|² / (2 s_i²).

What the user sees (`combine`, Kendall & Gal Eq. (9): predictive variance = aleatoric variance + the variance of the
sampled means), per node and axis, in the same units as the MC std:
    std_x = sqrt(σ_MC,x² + s_i²),   std_y = sqrt(σ_MC,y² + s_i²).
s_i is evaluated once, at z = μ (not per latent sample): the mean of s² over the samples would cost a head pass per
sample for a change far below the spread of s between nodes.

File: `node_std_head.safetensors` beside the weights, named by the card's `node_std_head` section (`file`,
`sha256` checked like the weights, `hidden`, `k`); a card without the section loads without a head (std = MC std).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from uqseg.cxr.chebconv import ChebConv

LOG_S_OFFSET = math.log(0.01)  # the head starts near s = 0.01 of the square (5 px of a 512 square)
LOG_S_RANGE = (-12.0, 0.0)  # clamp of log s (numerical safety only: s ≤ the whole square)
MIN_STD = 1e-6  # floor of σ_MC before its log


class NodeStdHead(nn.Module):
    """features (B, N, C) + MC node std (B, N) → log s (B, N), normalised square units (module docstring)."""

    def __init__(self, in_channels: int, nodes: int = 120, hidden: int = 16, k: int = 6):
        super().__init__()
        self.in_channels, self.hidden, self.k = in_channels, hidden, k
        self.conv1 = ChebConv(in_channels + 1, hidden, k)
        self.conv2 = ChebConv(hidden, 1, k)
        self.node_bias = nn.Parameter(torch.zeros(nodes))
        nn.init.normal_(self.conv2.weight, std=1e-3)  # starts at s = exp(node_bias + LOG_S_OFFSET)

    def forward(self, features: torch.Tensor, mc_node_std: torch.Tensor, lap) -> torch.Tensor:
        x = torch.cat([features, torch.log(mc_node_std.clamp_min(MIN_STD))[..., None]], dim=-1)
        log_s = self.conv2(F.relu(self.conv1(x, lap)), lap)[..., 0] + self.node_bias + LOG_S_OFFSET
        return log_s.clamp(*LOG_S_RANGE)


def gaussian_nll(log_s: torch.Tensor, error: torch.Tensor) -> torch.Tensor:
    """Mean over nodes and images of 2 log s + |r|² / (2 s²); log_s (B, N), error r (B, N, 2), same units."""
    return (2.0 * log_s + error.pow(2).sum(-1) / (2.0 * torch.exp(2.0 * log_s))).mean()


def combine(mc_std, head_std):
    """Per-axis predictive std sqrt(σ_MC² + s²): mc_std (..., N, 2), head_std (..., N) in the same units."""
    return np.sqrt(np.asarray(mc_std, dtype=np.float64) ** 2 + np.asarray(head_std, dtype=np.float64)[..., None] ** 2)


def load_std_head(card, features: int, device="cpu") -> NodeStdHead | None:
    """The card's node std head (`node_std_head.file` in the model folder, sha256 `node_std_head.sha256` checked like
    the weights, `hidden` / `k` its size), in eval mode, or None when the card has no `node_std_head` section (models
    before 1.2.0). `features`: the network's node feature channels. Every failure is a `ModelError` naming the file."""
    from safetensors.torch import load_file

    from uqseg.models.registry import ModelError, checked_file

    spec = card.card.get("node_std_head") or {}
    if not spec.get("file"):
        return None
    path = card.folder / spec["file"]
    checked_file(card, path, spec.get("sha256"), "node std head", "node_std_head.sha256")
    try:
        head = NodeStdHead(features, hidden=int(spec.get("hidden", 16)), k=int(spec.get("k", 6)))
        tensors = load_file(str(path), device="cpu")
        if not all(bool(torch.isfinite(t).all()) for t in tensors.values()):
            raise ValueError("it holds NaN or infinite values")
        head.load_state_dict(tensors, strict=True)
    except Exception as e:  # a damaged header, a size that does not fit the card, non-finite numbers
        raise ModelError(f"{path}: not a node std head for {card.id} "
                         f"({' '.join(str(e).split())[:200]})") from None
    return head.to(device).eval()
