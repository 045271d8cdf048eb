"""Entropy of discrete distributions, in nats (0 · ln 0 = 0), for numpy arrays and torch tensors alike."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["entropy", "entropy_term"]


def entropy(p: Any, axis: int = 0) -> Any:
    """Shannon entropy −Σ p ln p along `axis` (nats; 0 where p = 0). `p`: probabilities (numpy array or torch
    tensor, any float dtype); returns the same kind, reduced over `axis`."""
    if type(p).__module__.startswith("torch"):
        import torch

        return -torch.xlogy(p, p).sum(dim=axis)
    return entropy_term(p).sum(axis=axis)


def entropy_term(p: Any) -> Any:
    """−p ln p element by element (nats; 0 where p = 0): one class's share of the entropy, for sums streamed class
    by class. numpy in, numpy out (same dtype for float inputs)."""
    from scipy.special import xlogy

    p = np.asarray(p)
    return -xlogy(p, p)
