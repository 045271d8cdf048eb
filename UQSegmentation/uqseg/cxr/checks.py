"""Does the per-node uncertainty mean something? The controlled corruptions of CheXmask-U (Cosarinsky et al., MIDL
2026), as functions that Training/evaluate_cxr.py plots and the tests assert on.

All images are 2-D float arrays in their own value range; positions are pixel-centre (x, y); stds in input px.
- occlusion (Fig. 2): `occlude` paints a black square (value = the image's minimum) of side `frac` × the image
  side centred on a point; `occlusion_effect` compares the std of the nodes whose TRUE position lies under the square
  with the std of the other nodes (ratio under / others) and with the same nodes on the clean image (ratio
  occluded / clean);
- Gaussian noise (Fig. 3a): `add_noise` adds N(0, (level · range)²), range = p99.5 − p0.5 of the image, clipped to
  the image's range; the mean node std should rise with the level;
- std vs error (Fig. 5): `binned_std_vs_error` sorts nodes by std into equal-count bins and returns the mean std
  and mean Euclidean error per bin; `is_increasing` checks the bin errors rise;
- out-of-distribution: a non-chest image must have `image_uncertainty_ref` above the card's threshold.
"""

from __future__ import annotations

import numpy as np

from uqseg.cxr.inference import LandmarkResult, predict_landmarks
from uqseg.io.image import Image


def occlude(image: np.ndarray, centre_xy, frac: float = 0.25) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """(copy with a black square, (x0, y0, x1, y1) inclusive pixel bounds of the square)."""
    h, w = image.shape
    side = max(1, int(round(frac * max(h, w))))
    cx, cy = np.round(centre_xy).astype(int)
    x0, y0 = int(np.clip(cx - side // 2, 0, w - 1)), int(np.clip(cy - side // 2, 0, h - 1))
    x1, y1 = min(w - 1, x0 + side - 1), min(h - 1, y0 + side - 1)
    out = np.array(image, dtype=np.float32, copy=True)
    out[y0:y1 + 1, x0:x1 + 1] = float(np.min(image))
    return out, (x0, y0, x1, y1)


def inside_box(xy: np.ndarray, box) -> np.ndarray:
    x0, y0, x1, y1 = box
    return (xy[:, 0] >= x0 - 0.5) & (xy[:, 0] <= x1 + 0.5) & (xy[:, 1] >= y0 - 0.5) & (xy[:, 1] <= y1 + 0.5)


def occlusion_effect(clean: LandmarkResult, occluded: LandmarkResult, truth: np.ndarray, box) -> dict:
    under = inside_box(truth, box)
    s_occ, s_clean = occluded.node_std, clean.node_std
    if not under.any() or under.all():
        return {"nodes_under": int(under.sum()), "under_over_others": float("nan"),
                "occluded_over_clean": float("nan")}
    return {"nodes_under": int(under.sum()),
            "std_under": float(s_occ[under].mean()), "std_others": float(s_occ[~under].mean()),
            "std_under_clean": float(s_clean[under].mean()),
            "under_over_others": float(s_occ[under].mean() / s_occ[~under].mean()),
            "occluded_over_clean": float(s_occ[under].mean() / s_clean[under].mean())}


def add_noise(image: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    a = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(a, [0.5, 99.5])
    noisy = a + rng.standard_normal(a.shape).astype(np.float32) * level * float(hi - lo)
    return np.clip(noisy, a.min(), a.max())


def binned_std_vs_error(std: np.ndarray, error: np.ndarray, bins: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(mean std per bin, mean error per bin) over `bins` equal-count bins of the node std."""
    order = np.argsort(np.asarray(std))
    parts = np.array_split(order, bins)
    return (np.array([np.mean(std[p]) for p in parts]), np.array([np.mean(error[p]) for p in parts]))


def is_increasing(values: np.ndarray, tolerance: float = 0.0) -> bool:
    """Every step up, allowing a drop of at most `tolerance` (relative) between neighbours."""
    v = np.asarray(values, dtype=float)
    return bool(np.all(v[1:] >= v[:-1] * (1.0 - tolerance)))


def predict_array(array: np.ndarray, model, samples: int = 50, seed: int = 0, device="cpu") -> LandmarkResult:
    return predict_landmarks(Image(np.asarray(array, dtype=np.float32)), model, device, samples=samples, seed=seed)
