"""Variational HybridGNet (Gaggion et al., IEEE TMI 2023; Cosarinsky et al., "CheXmask-U", MIDL 2026) in plain torch.

    image x (B, 1, S, S), S = `input_size`, intensities 0..1
      → residual CNN encoder (stem + 6 stride-2 residual stages: S → S/64)
      → μ, log σ² ∈ R^64 (two linear heads on the flattened last feature map)
      → z = μ + σ ⊙ ε, ε ~ N(0, I)          (reparameterisation; at inference N samples decoded in one batch)
      → linear z → features of the 60 coarse nodes (+ ReLU)
      → ChebConv(K=6) × 2 on the coarse graph (`graph_channels` 32) → unpool (U, graph.py) → ChebConv × 2 on the
        full graph (`fine_channels` 16, as HybridGNet's 32 → 16 filters) → ChebConv → (u, v) per node, normalised
        to the padded square: u ∈ [0, 1] from its left to its right edge (preprocess.py maps it to input pixels)
A learned per-node offset (`template`, initialised to the training mean shape) is added to the output, so the
decoder learns the deformation of the mean shape (the position heads start near zero); it is an ordinary parameter
and does not change the maths.

Image-to-graph skip connections ("IGSC", `skip=True`, Gaggion et al. 2022): before leaving each graph level, an
extra ChebConv predicts intermediate positions p (coarse p₁ (60, 2), fine p₂ (120, 2)); an encoder feature map
(stage 2 at S/8 for p₁, stage 1 at S/4 for p₂), reduced by a 1×1 conv to `skip_channels` once per image, is sampled
at p with bilinear `grid_sample` (grid = 2p − 1, align_corners=False) and concatenated to the node features. The
intermediate positions are returned for deep supervision (loss on p₁ against the pooled target P·y, on p₂ against y).

KL of the posterior N(μ, σ²) to the prior N(0, I), per latent dimension j (Kingma & Welling 2014):
    KL_j = −½ (1 + log σ_j² − μ_j² − σ_j²);   `kl_divergence` returns its mean over j and the batch (HybridGNet).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from uqseg.cxr.chebconv import ChebBasis, ChebConv, SparseRows
from uqseg.cxr.graph import LandmarkGraph, build_graph

LOGVAR_RANGE = (-16.0, 8.0)  # clamp of log σ² (numerical safety only)


class ResBlock(nn.Module):
    """conv3×3(stride) → BN → ReLU → conv3×3 → BN, plus a 1×1(stride) + BN shortcut when the shape changes; ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.short = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
                      if stride != 1 or c_in != c_out else nn.Identity())

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.short(x))


class Encoder(nn.Module):
    """Stem (3×3 conv, `stem` channels, full resolution) + one stride-2 ResBlock per entry of `widths`."""

    def __init__(self, widths=(16, 32, 64, 64, 128, 128), stem: int = 8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU())
        chans = (stem,) + tuple(widths)
        self.stages = nn.ModuleList(ResBlock(chans[i], chans[i + 1], 2) for i in range(len(widths)))

    def forward(self, x) -> list[torch.Tensor]:
        """The output of every stage, finest first (stage i has resolution S / 2^(i+1))."""
        feats, y = [], self.stem(x)
        for stage in self.stages:
            y = stage(y)
            feats.append(y)
        return feats


def sample_features(fmap: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of fmap (B or 1, C, h, w) at normalised positions pos (B, N, 2) in [0, 1] → (B, N, C).
    With one feature map for many position sets (one image, many latent samples) all B·N points are sampled from it
    in one call, without expanding the map."""
    b, n = pos.shape[0], pos.shape[1]
    if fmap.shape[0] == 1 and b > 1:
        grid = (2.0 * pos.reshape(1, b * n, 1, 2) - 1.0)  # x, y in [-1, 1]
        out = F.grid_sample(fmap, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return out.view(fmap.shape[1], b, n).permute(1, 2, 0)
    grid = (2.0 * pos - 1.0).unsqueeze(2)  # (B, N, 1, 2)
    out = F.grid_sample(fmap, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.squeeze(-1).transpose(1, 2)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """mean over batch and latent dimensions of −½ (1 + log σ² − μ² − σ²)."""
    return -0.5 * torch.mean(1.0 + logvar - mu.pow(2) - logvar.exp())


class HybridGNet(nn.Module):
    def __init__(self, input_size: int = 256, latent: int = 64, widths=(16, 32, 64, 64, 128, 128), stem: int = 8,
                 graph_channels: int = 32, fine_channels: int = 16, k: int = 6, skip: bool = False,
                 skip_stages=(2, 1), skip_channels: int = 16, graph: LandmarkGraph | None = None):
        super().__init__()
        if input_size % 2 ** len(widths):
            raise ValueError(f"input_size must be a multiple of {2 ** len(widths)}")
        self.graph = graph or build_graph()
        self.lap_fine = ChebBasis(self.graph.lap_fine, k)  # T_0..T_K−1 of L̃, sparse (chebconv.py)
        self.lap_coarse = ChebBasis(self.graph.lap_coarse, k)
        self.pool = SparseRows(self.graph.pool)
        self.unpool = SparseRows(self.graph.unpool)
        self.input_size, self.latent, self.skip, self.skip_stages = input_size, latent, skip, tuple(skip_stages)
        self.encoder = Encoder(widths, stem)
        flat = widths[-1] * (input_size // 2 ** len(widths)) ** 2
        self.mu_head = nn.Linear(flat, latent)
        self.logvar_head = nn.Linear(flat, latent)
        g, nc, nf = graph_channels, self.graph.n_coarse, self.graph.n_fine
        self.fc = nn.Linear(latent, nc * g)
        self.coarse = nn.ModuleList([ChebConv(g, g, k), ChebConv(g, g, k)])
        s = skip_channels if skip else 0
        f = fine_channels
        self.fine = nn.ModuleList([ChebConv(g + s, f, k), ChebConv(f, f, k)])
        self.head = ChebConv(f + s, 2, k)
        if skip:
            self.pos_coarse = ChebConv(g, 2, k)
            self.pos_fine = ChebConv(f, 2, k)
            # 1×1 projections of the two skip feature maps, applied once per image (not per latent sample)
            self.skip_proj = nn.ModuleList(nn.Conv2d(widths[i], skip_channels, 1) for i in self.skip_stages)
        self.template = nn.Parameter(torch.full((nf, 2), 0.5))
        for last in [self.head] + ([self.pos_coarse, self.pos_fine] if skip else []):
            nn.init.normal_(last.weight, std=1e-3)  # outputs start at the template

    # ------------------------------------------------------------------------------------------------ encoder
    def encode(self, x: torch.Tensor):
        """x (B, 1, S, S) → μ (B, L), log σ² (B, L), encoder feature maps (for the skip variant)."""
        feats = self.encoder(x)
        h = feats[-1].flatten(1)
        logvar = self.logvar_head(h).clamp(*LOGVAR_RANGE)
        return self.mu_head(h), logvar, feats

    @staticmethod
    def reparameterise(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        """z = μ + exp(½ log σ²) ⊙ ε."""
        if eps is None:
            eps = torch.randn_like(mu)
        return mu + torch.exp(0.5 * logvar) * eps

    # ------------------------------------------------------------------------------------------------ decoder
    def decode(self, z: torch.Tensor, feats: list[torch.Tensor] | None = None):
        """z (B, L) → positions (B, 120, 2) in [0, 1]-normalised square coordinates, and the intermediate
        positions [p₁ (B, 60, 2), p₂ (B, 120, 2)] of the skip variant (empty list otherwise). `feats` may hold
        feature maps of batch 1 (one image, many latent samples): they are broadcast, not copied."""
        x, inter = self.decode_features(z, feats)
        return self.head(x, self.lap_fine) + self.template, inter

    def decode_features(self, z: torch.Tensor, feats: list[torch.Tensor] | None = None):
        """The decoder up to its last layer: the per-node features the position head reads (B, 120, C) with
        C = `fine_channels` (+ `skip_channels` for the skip variant), and the intermediate positions of `decode`.
        The per-node std head (std_head.py) reads the same features."""
        b = z.shape[0]
        x = F.relu(self.fc(z)).view(b, self.graph.n_coarse, -1)
        for conv in self.coarse:
            x = F.relu(conv(x, self.lap_coarse))
        inter = []
        if self.skip:
            maps = [proj(feats[i]) for proj, i in zip(self.skip_proj, self.skip_stages)]
            p1 = self.pos_coarse(x, self.lap_coarse) + self.pool(self.template[None])
            inter.append(p1)
            x = torch.cat([x, sample_features(maps[0], p1)], dim=-1)
        x = self.unpool(x)
        for conv in self.fine:
            x = F.relu(conv(x, self.lap_fine))
        if self.skip:
            p2 = self.pos_fine(x, self.lap_fine) + self.template
            inter.append(p2)
            x = torch.cat([x, sample_features(maps[1], p2)], dim=-1)
        return x, inter

    def forward(self, x: torch.Tensor, sample: bool = True):
        """Training / single-pass forward: (positions, μ, log σ², intermediate positions). With sample=False the
        decoder gets z = μ (the deterministic pass)."""
        mu, logvar, feats = self.encode(x)
        z = self.reparameterise(mu, logvar) if sample else mu
        pos, inter = self.decode(z, feats)
        return pos, mu, logvar, inter
