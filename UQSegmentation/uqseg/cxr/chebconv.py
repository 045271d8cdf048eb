"""Chebyshev spectral graph convolution in plain torch (Defferrard et al., NeurIPS 2016), as HybridGNet uses it.

For node features X (B, N, C_in) and the rescaled Laplacian L̃ (N, N) (see `graph.py`):
    T_0 = X,   T_1 = L̃ X,   T_k = 2 L̃ T_k−1 − T_k−2        (Chebyshev recurrence)
    Y   = Σ_{k=0}^{K−1} T_k W_k + b,                         W_k: (C_in, C_out)
i.e. Y = Σ_k T_k(L̃) X W_k, a filter that is a polynomial of order K − 1 in L̃: a node's output depends on its
(K − 1)-hop neighbourhood. "Order K = 6" here means K = 6 terms (torch_geometric's `ChebConv(K=6)` convention),
so each node sees 5 ring neighbours on either side.

Three ways to compute the same sum, chosen by what is passed as `lap`:
- a `ChebBasis` (what the model uses): the K polynomials precomputed side by side as one sparse matrix, applied in
  node-major layout — two products per layer whatever the batch, the fast path for 50 latent samples at once;
- a `SparseRows` L̃ (for every node the indices and weights of the non-zeros of its row): the recurrence, O(B·N·C)
  per step since a ring node has two neighbours; when C_out < C_in the weights are applied first and the polynomial
  is evaluated on the C_out channels with Clenshaw's recurrence (fewer operations);
- a dense (N, N) L̃: the same recurrences with dense products (the readable reference).
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn


class SparseRows(nn.Module):
    """A fixed sparse (R, N) matrix M applied to x (B, N, C) as M x: row i = Σ_d w[i, d] · x[:, idx[i, d]]
    (one `index_select` per padded non-zero slot d; used for L̃ and for the pool / unpool matrices)."""

    def __init__(self, dense: torch.Tensor):
        super().__init__()
        dense = torch.as_tensor(dense, dtype=torch.float32)
        nnz = (dense != 0).sum(1)
        width = max(1, int(nnz.max()))
        idx = torch.zeros(dense.shape[0], width, dtype=torch.long)
        w = torch.zeros(dense.shape[0], width)
        for i in range(dense.shape[0]):  # empty slots keep index 0 with weight 0
            cols = torch.nonzero(dense[i]).flatten()
            idx[i, : len(cols)] = cols
            w[i, : len(cols)] = dense[i, cols]
        self.register_buffer("idx", idx, persistent=False)
        self.register_buffer("w", w, persistent=False)

        self.n_cols = dense.shape[1]

    def forward(self, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """scale · M x, a fresh tensor."""
        w = self.w if scale == 1.0 else self.w * scale
        out = x.index_select(1, self.idx[:, 0]) * w[:, 0, None]
        for d in range(1, self.idx.shape[1]):
            out = out.addcmul_(x.index_select(1, self.idx[:, d]), w[:, d, None])
        return out

    def to_dense(self) -> torch.Tensor:
        out = torch.zeros(self.idx.shape[0], self.n_cols, dtype=self.w.dtype, device=self.w.device)
        out.scatter_add_(1, self.idx, self.w)
        return out


class ChebBasis(nn.Module):
    """The K polynomials T_0(L̃) … T_K−1(L̃) of a fixed Laplacian side by side, P = [T_0 … T_K−1] (N, K·N), for the
    fast path of ChebConv, in node-major layout (features as (N, B·C): node rows, batch × channel columns):

        Z = [X W_0; …; X W_K−1]   (one matmul with the K weight matrices side by side, rows (k, node)),
        Y = Σ_k T_k (X W_k) = P · Z   (one sparse × dense product → (N, B·C_out)).

    On a ring T_k(L̃) has k + 1 non-zeros per row (T_k(cos θ) = cos kθ: shifts by k, k − 2, …), so P holds 21 of
    the 720 entries of a 120-node row for K = 6 and is kept in CSR form on the CPU and CUDA (dense elsewhere, e.g.
    MPS). Two products per layer whatever the batch: this is what makes decoding 50 latent samples in one batch
    cheap (measured in `uqseg bench`)."""

    def __init__(self, lap: torch.Tensor, k: int):
        super().__init__()
        lap = torch.as_tensor(lap, dtype=torch.float64)
        n = lap.shape[0]
        polys = [torch.eye(n, dtype=torch.float64)]
        if k > 1:
            polys.append(lap)
        while len(polys) < k:
            polys.append(2 * lap @ polys[-1] - polys[-2])
        poly = torch.cat(polys, dim=1)
        poly[poly.abs() < 1e-12] = 0.0
        self.k, self.n = k, n
        self.register_buffer("poly", poly.float(), persistent=False)  # (N, K·N) dense
        self._sparse: dict = {}

    def operator(self) -> torch.Tensor:
        """P as CSR where sparse products are supported (cached per device and dtype), otherwise dense."""
        p = self.poly
        if p.device.type not in ("cpu", "cuda"):
            return p
        key = (p.device, p.dtype)
        if key not in self._sparse:
            # a normal tensor even when first asked for under torch.inference_mode(), so that a later pass with
            # autograd (training, the pinned-node correction) can use the same cache
            with warnings.catch_warnings(), torch.inference_mode(False):  # "Sparse CSR ... beta state"
                warnings.simplefilter("ignore", UserWarning)
                self._sparse = {key: p.clone().to_sparse_csr()}
        return self._sparse[key]


class ChebConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int = 6, bias: bool = True):
        super().__init__()
        if k < 1:
            raise ValueError(f"K must be >= 1, got {k}")
        self.k, self.c_in, self.c_out = k, c_in, c_out
        self.weight = nn.Parameter(torch.empty(k, c_in, c_out))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        bound = math.sqrt(6.0 / (k * c_in + c_out))  # Glorot-uniform over the K stacked weights
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, x: torch.Tensor, lap) -> torch.Tensor:
        """x: (B, N, C_in); lap: a `ChebBasis` of L̃ (fast path), or L̃ as a `SparseRows` or dense (N, N) tensor
        (Chebyshev / Clenshaw recurrences) → (B, N, C_out). All three compute the same sum."""
        if isinstance(lap, ChebBasis):
            return self._basis(x, lap)
        apply = lap if isinstance(lap, SparseRows) else (lambda t, scale=1.0: scale * torch.matmul(lap, t))
        out = self._clenshaw(x, apply) if self.c_out < self.c_in else self._recurrence(x, apply)
        return out if self.bias is None else out + self.bias

    def _basis(self, x, basis: ChebBasis):
        """Y = P · (X W) in node-major layout (ChebBasis docstring); x (B, N, C_in) → (B, N, C_out), returned as a
        transposed view of a node-major (N, B, C_out) tensor, so that a following layer needs no copy."""
        if basis.k != self.k:
            raise ValueError(f"a ChebBasis of order {basis.k} for a ChebConv with K = {self.k}")
        b, n = x.shape[0], x.shape[1]
        xn = x.transpose(0, 1).reshape(n * b, self.c_in)  # node-major; free when x came from this path
        z = torch.mm(xn, self.weight.permute(1, 0, 2).reshape(self.c_in, -1))  # (N·B, K·C_out): X W_k for all k
        z = z.view(n * b, self.k, self.c_out).transpose(0, 1).reshape(self.k * n, b * self.c_out)  # rows (k, node)
        y = torch.mm(basis.operator(), z).view(n, b, self.c_out)  # Σ_k T_k (X W_k)
        if self.bias is not None:
            y = y + self.bias
        return y.transpose(0, 1)

    def _recurrence(self, x, apply):
        """Σ_k T_k W_k with T_k = 2 L̃ T_k−1 − T_k−2 on the C_in input channels."""
        w, c = self.weight, self.c_in
        out = x.reshape(-1, c) @ w[0]  # (B·N, C_out); the K products accumulate in place (addmm_)
        if self.k > 1:
            t_prev, t = x, apply(x)
            out.addmm_(t.reshape(-1, c), w[1])
            for k in range(2, self.k):
                t_prev, t = t, apply(t, 2.0).sub_(t_prev)
                out.addmm_(t.reshape(-1, c), w[k])
        return out.view(*x.shape[:-1], self.c_out)

    def _clenshaw(self, x, apply):
        """The same sum evaluated on the C_out channels (cheaper when C_out < C_in), Clenshaw's recurrence with
        c_k = X W_k:  b_K = b_K+1 = 0,  b_k = c_k + 2 L̃ b_k+1 − b_k+2 (k = K−1 … 1),  Y = c_0 + L̃ b_1 − b_2."""
        c = torch.matmul(x.reshape(1, -1, self.c_in), self.weight)  # (K, B·N, C_out), each c_k contiguous
        c = c.view(self.k, *x.shape[:-1], self.c_out)
        b1 = b2 = None
        for k in range(self.k - 1, 0, -1):
            b = c[k] if b1 is None else apply(b1, 2.0).add_(c[k])
            if b2 is not None:
                b = b.sub_(b2) if b is not c[k] else b - b2
            b1, b2 = b, b1
        if b1 is None:
            return c[0]
        out = apply(b1).add_(c[0])
        return out if b2 is None else out.sub_(b2)
