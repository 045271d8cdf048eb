"""The 3-D Stochastic Segmentation Network: a MONAI DynUNet backbone (nnU-Net-like residual U-Net) giving shared
features, and 1×1×1 heads for the parameters of the logit Gaussian of `uqseg.ct.covariance`.

Input (B, 1, Z, Y, X): CT normalised by `uqseg.ct.preprocess.normalise_hu` on the working grid (z, y, x array order,
isotropic model spacing). Each of Z, Y, X must be a multiple of `size_multiple[axis]` (the product of the strides along
that axis, and the mixture block edge). Strides may be anisotropic, e.g. fewer down-samplings along z for thin
volumes. Output: a `LogitDistribution` on the same grid.

Heads on the last decoder features f (width filters[0], LeakyReLU):
- mean μ: C channels (every form, the deterministic baseline included);
- log-variance log d: C channels, squashed smoothly into [log_var_min, log_var_max] (a clamp with gradients);
- ``lowrank``: P, C·R channels; ``single_basis``: scales a, R channels, and one learned basis B (C × R);
  ``mixture_of_bases``: scales a (R channels), M learned bases (M × C × R) and the weighting head w (M channels).
The bases start with orthonormal rows (the state that the orthogonality term of Eq. 9 keeps them near).
"""

from __future__ import annotations

import math

import torch
from monai.networks.nets import DynUNet
from torch import nn

from uqseg.ct.covariance import FORMS, LogitDistribution


def orthonormal_rows(m: int, c: int, r: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(m, c, r) bases whose m·c rows together are orthonormal in R^r (needs m·c ≤ r)."""
    if m * c > r:
        raise ValueError(f"{m} bases × {c} classes need rank ≥ {m * c}, got {r}")
    q, _ = torch.linalg.qr(torch.randn(r, m * c, generator=generator))
    return q.T.reshape(m, c, r).contiguous()


class StochasticSegNet3d(nn.Module):
    def __init__(self, classes: int = 2, form: str = "mixture_of_bases", rank: int = 16, bases: int = 3,
                 block: int = 4, filters: tuple[int, ...] = (16, 32, 64, 128), log_var_min: float = -9.0,
                 log_var_max: float = 4.0, in_channels: int = 1, strides: list | None = None):
        super().__init__()
        if form not in FORMS:
            raise ValueError(f"unknown covariance form {form!r}; expected one of {FORMS}")
        self.form, self.classes, self.rank, self.n_bases, self.block = form, classes, rank, bases, block
        self.log_var_min, self.log_var_max = log_var_min, log_var_max
        self.filters = tuple(filters)
        levels = len(filters)
        # strides per level as (z, y, x); the first level keeps full resolution
        strides = [[1, 1, 1]] + [[2, 2, 2]] * (levels - 1) if strides is None else [list(s) for s in strides]
        if len(strides) != levels:
            raise ValueError(f"{levels} filter levels need {levels} strides, got {len(strides)}")
        self.strides = strides
        per_axis = [math.prod(s[a] for s in strides) for a in range(3)]
        blk = block if form == "mixture_of_bases" else 1
        self.size_multiple = tuple(math.lcm(m, blk) for m in per_axis)
        self.backbone = DynUNet(3, in_channels, filters[0], kernel_size=[3] * levels, strides=strides,
                                upsample_kernel_size=strides[1:], filters=list(filters), norm_name="instance",
                                res_block=True)
        f = filters[0]
        self.act = nn.LeakyReLU(0.01)
        self.mean_head = nn.Conv3d(f, classes, 1)
        if form != "deterministic":
            self.log_var_head = nn.Conv3d(f, classes, 1)
            nn.init.zeros_(self.log_var_head.weight)
            nn.init.constant_(self.log_var_head.bias, -4.0)  # start with small variance (d ≈ 0.02 nats²)
        if form == "lowrank":
            self.factor_head = nn.Conv3d(f, classes * rank, 1)
        elif form in ("single_basis", "mixture_of_bases"):
            self.scale_head = nn.Conv3d(f, rank, 1)
            m = 1 if form == "single_basis" else bases
            self.bases = nn.Parameter(orthonormal_rows(m, classes, rank, torch.Generator().manual_seed(0)))
            if form == "mixture_of_bases":
                self.weight_head = nn.Conv3d(f, bases, 1)
        for head in ("factor_head", "scale_head"):
            if hasattr(self, head):
                nn.init.normal_(getattr(self, head).weight, std=1e-3)
                nn.init.zeros_(getattr(self, head).bias)

    def stochastic_parameters(self) -> list[nn.Parameter]:
        """The parameters of the covariance heads (stage 2 of the training schedule trains these first)."""
        names = ("log_var_head", "factor_head", "scale_head", "weight_head")
        params = [p for n in names if hasattr(self, n) for p in getattr(self, n).parameters()]
        if hasattr(self, "bases"):
            params.append(self.bases)
        return params

    def features(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape[2:]
        if any(s % m for s, m in zip(shape, self.size_multiple)):
            raise ValueError(f"grid {tuple(shape)} is not a multiple of {self.size_multiple} (pad the volume)")
        return self.act(self.backbone(x))

    def squash_log_var(self, raw: torch.Tensor) -> torch.Tensor:
        lo, hi = self.log_var_min, self.log_var_max
        return lo + (hi - lo) * torch.sigmoid((raw - (lo + hi) / 2) * 4 / (hi - lo))

    def forward(self, x: torch.Tensor) -> LogitDistribution:
        f = self.features(x)
        mean = self.mean_head(f)
        if self.form == "deterministic":
            return LogitDistribution("deterministic", mean)
        log_var = self.squash_log_var(self.log_var_head(f))
        if self.form == "diagonal":
            return LogitDistribution("diagonal", mean, log_var)
        if self.form == "lowrank":
            factor = self.factor_head(f)
            factor = factor.reshape(factor.shape[0], self.classes, self.rank, *factor.shape[2:])
            return LogitDistribution("lowrank", mean, log_var, factor)
        scales = self.scale_head(f)
        weights = self.weight_head(f) if self.form == "mixture_of_bases" else None
        return LogitDistribution(self.form, mean, log_var, scales, self.bases, weights, self.block)

    def architecture(self) -> dict:
        """The hyper-parameters a model card records to rebuild this network."""
        return {"name": "StochasticSegNet3d", "backbone": "monai.networks.nets.DynUNet (residual, instance norm)",
                "form": self.form, "classes": self.classes, "rank": self.rank, "bases": self.n_bases,
                "block": self.block, "filters": list(self.filters), "strides": self.strides,
                "log_var_range": [self.log_var_min, self.log_var_max]}


def _storage_groups(model: nn.Module) -> list[list[str]]:
    """Names of the state-dict tensors grouped by the storage they share (DynUNet's `skip_layers` alias the
    encoder / decoder blocks)."""
    groups: dict = {}
    for name, t in model.state_dict(keep_vars=True).items():
        groups.setdefault((t.data_ptr(), tuple(t.shape)), []).append(name)
    return list(groups.values())


def weights_to_save(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict without aliased duplicates (safetensors refuses shared tensors): one name per storage."""
    state = model.state_dict()
    return {g[0]: state[g[0]].detach().contiguous() for g in _storage_groups(model)}


def load_weights(model: nn.Module, tensors: dict[str, torch.Tensor], strict: bool = True) -> list[str]:
    """Load `weights_to_save` output. strict: every storage must be given (aliases are filled through their
    group); returns the names of storages not in `tensors` (non-strict: e.g. new heads of stage 2)."""
    missing = []
    full = {}
    for group in _storage_groups(model):
        given = next((n for n in group if n in tensors), None)
        if given is None:
            missing.append(group[0])
            continue
        for n in group:
            full[n] = tensors[given]
    unknown = sorted(set(tensors) - set(full))
    if strict and (missing or unknown):
        raise ValueError(f"weights do not match the network: missing {missing[:5]}, unexpected {unknown[:5]}")
    model.load_state_dict(full, strict=False)
    return missing
