"""Out-of-distribution map for ct-organs: how unlike the training patients' anatomy each part of a CT is.

Score: the k-th nearest-neighbour distance (Sun et al., "Out-of-Distribution Detection with Deep Nearest
Neighbors", ICML 2022, Eq. 2: s(x) = ||z − z_(k)||, the distance to the k-th nearest training descriptor) of a
multi-scale intensity-context descriptor of every cell to the descriptors of the TRAINING patients' body cells.
Descriptor (the box-context features of Criminisi et al., "Regression forests for efficient anatomy detection and
localization in computed tomography scans", MedIA 2013, here as tissue histograms): the working grid (mm, z y x,
the model's spacing) is cut into cells of `CELL` voxels (4 × 8 × 8 = 8 × 16 × 16 mm at 2 mm); each cell gets the
fraction of its voxels in each HU bin of `HU_EDGES` (air, lung, ..., cortical bone); those fractions are box-averaged
over the cell neighbourhoods of `SCALES` (the cell itself up to 3 × 7 × 7 cells = 24 × 112 × 112 mm: the anatomy
around it, and 1 × 15 × 15 cells = 8 × 240 × 240 mm: about the whole axial section, which tells a pelvic or thoracic
section from an abdominal one where the tissue around a cell alone does not) and square-rooted (the Hellinger
embedding, so Euclidean distance compares histograms). Descriptors are dimensionless; so is the score (an L2 distance
between square-rooted histograms, 0 for identical context).
Why the whole-section scale (measured, Training/evaluate_ct_lopo.py on the model trained on patient A only, patient
B's 91 pelvic slices): with the four local scales 21 of the 27 wrong "organ" components there were flagged and 59 % of
the wrongly labelled voxels; with the section scale added, 23 of 27 and 71 %, the threshold still set on patient A
alone.

Why not the network's own features (Lee et al., NeurIPS 2018 Mahalanobis on the bottleneck, tried first): measured
on the leave-one-patient-out model trained on patient A only, the DynUNet's bottleneck, pre-norm and decoder features
put at most 13 % of patient B's body, the thorax crops or an MR-like remap above their cross-fitted 99th training
percentile (Training/ood_feature_probe.py; README, "Out-of-distribution map"): instance normalisation in every block
removes much of what differs.

Fit (`fit_context_knn`): the bank is every cell of the training patients' kept voxels whose widest context holds
any tissue (cells in air far from the body score 0: nothing to judge there). Threshold (`percentile` of
cross-fitted training scores): every training cell holding body (any voxel HU > −500) is scored against the bank
WITHOUT its own patient's cells within `EXCLUDE_Z_CELLS` z-cells (the cells that share its context), so a training
cell is never its own or its neighbours' match — the threshold is set on training patients only, never on test data.
Map (`ood_map`): cell scores, up-sampled trilinearly to the working grid (then to the input grid by the caller).

Stored beside the weights as `ood.safetensors`: `bank` (N, D) float32, `k` (1,), `threshold` (1,), `percentile` (1,),
`cell` (3,), `hu_edges` and `scales` (S, 3) — the descriptor the bank was made with: a bank of another descriptor is
refused on loading (its distances would mean nothing); the card's `ood` section names the file and says how it was
made.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

BODY_HU = -500.0
#: working-grid voxels (z, y, x) per cell
CELL = (4, 8, 8)
#: HU bin edges: air | lung | fat-lung mix | fat | water, fluid, muscle | soft tissue | enhanced tissue | bone | cortex
HU_EDGES = (-900.0, -500.0, -150.0, -30.0, 30.0, 90.0, 200.0, 500.0)
#: context neighbourhoods in cells (z, y, x)
SCALES = ((1, 1, 1), (1, 3, 3), (1, 7, 7), (3, 7, 7), (1, 15, 15))
DEFAULT_K = 10
#: cross-fit: a training cell's neighbours never come from its own patient within this many z-cells (its context)
EXCLUDE_Z_CELLS = 1
DEFAULT_PERCENTILE = 99.0


@dataclass
class ContextKnn:
    """The training patients' context descriptors and the threshold of the k-NN distance (module docstring)."""

    bank: torch.Tensor  # (N, D) float32
    k: int = DEFAULT_K
    threshold: float | None = None
    percentile: float | None = None

    def save(self, path: Path) -> None:
        from safetensors.torch import save_file

        t = {"bank": self.bank.float().cpu().contiguous(), "k": torch.tensor([int(self.k)]), **descriptor_tensors()}
        if self.threshold is not None:
            t["threshold"] = torch.tensor([float(self.threshold)])
        if self.percentile is not None:
            t["percentile"] = torch.tensor([float(self.percentile)])
        save_file(t, str(path))

    @classmethod
    def load(cls, path: Path) -> "ContextKnn":
        from safetensors.torch import load_file

        t = load_file(str(path))
        if "bank" not in t:
            raise ValueError(f"{path}: no `bank` tensor (not a context k-NN OOD file)")
        mine = descriptor_tensors()
        for key, want in mine.items():
            if key not in t or t[key].shape != want.shape or not torch.equal(t[key].float(), want.float()):
                got = t[key].tolist() if key in t else "none"
                raise ValueError(f"{path}: made with another context descriptor ({key} {got}, this code "
                                 f"{want.tolist()}); fit it again (Training/evaluate_ct_lopo.py)")
        if t["bank"].shape[1] != descriptor_size():
            raise ValueError(f"{path}: bank rows have {t['bank'].shape[1]} values, the descriptor {descriptor_size()}")
        return cls(t["bank"].float(), int(t["k"][0]) if "k" in t else DEFAULT_K,
                   float(t["threshold"][0]) if "threshold" in t else None,
                   float(t["percentile"][0]) if "percentile" in t else None)


def descriptor_tensors() -> dict:
    """The descriptor's definition as stored with a bank (`cell`, `hu_edges`, `scales`)."""
    return {"cell": torch.tensor(CELL), "hu_edges": torch.tensor(HU_EDGES, dtype=torch.float32),
            "scales": torch.tensor(SCALES)}


def descriptor_size() -> int:
    """D: one square-rooted histogram of len(HU_EDGES) + 1 bins per scale."""
    return len(SCALES) * (len(HU_EDGES) + 1)


def _cells(volume: np.ndarray, fill: float) -> np.ndarray:
    """(z, y, x) → (cz, CELL[0], cy, CELL[1], cx, CELL[2]) after padding the end of each axis with `fill`."""
    target = [int(np.ceil(s / c) * c) for s, c in zip(volume.shape, CELL)]
    pad = np.pad(volume, [(0, t - s) for s, t in zip(volume.shape, target)], constant_values=fill)
    cz, cy, cx = (t // c for t, c in zip(target, CELL))
    return pad.reshape(cz, CELL[0], cy, CELL[1], cx, CELL[2])


def cell_fraction(mask: np.ndarray) -> np.ndarray:
    """(cz, cy, cx) share of each cell's voxels where the (z, y, x) `mask` is true (padding counts as false)."""
    return _cells(mask.astype(np.float32), 0.0).mean((1, 3, 5))


def context_descriptors(work_hu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cz, cy, cx, D) descriptors of a working-grid HU volume (module docstring; D = len(SCALES) × bins) and the
    (cz, cy, cx) body-cell mask (≥ half of the cell's voxels above BODY_HU)."""
    from scipy import ndimage

    cells = _cells(np.asarray(work_hu, np.float32), -1000.0)
    bins = np.digitize(cells, HU_EDGES)
    n = len(HU_EDGES) + 1
    hist = np.stack([(bins == i).mean((1, 3, 5)) for i in range(n)], -1).astype(np.float32)
    parts = [np.stack([ndimage.uniform_filter(hist[..., i], size=s, mode="nearest") for i in range(n)], -1)
             for s in SCALES]
    desc = np.sqrt(np.clip(np.concatenate(parts, -1), 0, None))
    return desc, cell_fraction(np.asarray(work_hu) > BODY_HU) >= 0.5


def knn_distance(queries: np.ndarray | torch.Tensor, bank: torch.Tensor, k: int, chunk: int = 4096) -> np.ndarray:
    """(M,) Euclidean distance of each (M, D) query to its k-th nearest row of the (N, D) bank (Sun et al. Eq. 2)."""
    q = torch.as_tensor(np.asarray(queries, np.float32)).to(bank.device)
    k = max(1, min(int(k), len(bank)))
    out = [torch.cdist(q[i:i + chunk], bank).topk(k, largest=False).values[:, -1] for i in range(0, len(q), chunk)]
    return (torch.cat(out) if out else torch.zeros(0)).cpu().numpy()


def ood_map(work_hu: np.ndarray, knn: ContextKnn) -> np.ndarray:
    """The (z, y, x) float32 OOD score on the working grid: every cell's k-NN distance, up-sampled trilinearly;
    0 for cells whose whole context is air (no anatomy to judge)."""
    desc, _ = context_descriptors(work_hu)
    near = _near_body(desc)
    score = np.zeros(desc.shape[:3], np.float32)
    score[near] = knn_distance(desc[near], knn.bank, knn.k)
    up = F.interpolate(torch.from_numpy(score)[None, None].float(), scale_factor=CELL, mode="trilinear",
                       align_corners=False)[0, 0].numpy()
    z, y, x = work_hu.shape
    return np.ascontiguousarray(up[:z, :y, :x], np.float32)


def fit_context_knn(volumes: list[tuple[np.ndarray, np.ndarray | None]], k: int = DEFAULT_K,
                    percentile: float = DEFAULT_PERCENTILE) -> ContextKnn:
    """The bank and threshold from the training patients' working-grid HU volumes, each with an optional (z, y, x)
    mask of the voxels that may be used (False: a held-out validation slab). Threshold: the `percentile` of the
    cross-fitted scores of the cells holding body (module docstring)."""
    rows, owner = [], []
    for v, (hu, keep) in enumerate(volumes):
        desc, _ = context_descriptors(hu)
        use = _near_body(desc) if keep is None else _near_body(desc) & (cell_fraction(keep) >= 0.5)
        body = cell_fraction(np.asarray(hu) > BODY_HU) > 0
        z = np.broadcast_to(np.arange(desc.shape[0])[:, None, None], desc.shape[:3])
        rows.append(desc[use])
        owner.append(np.stack([np.full(int(use.sum()), v), z[use], body[use]], 1))
    bank = np.concatenate(rows).astype(np.float32)
    who = np.concatenate(owner)
    if len(bank) <= 3 * k:
        raise ValueError(f"only {len(bank)} training cells near the body: too few for a {k}-NN OOD score")
    t = torch.from_numpy(bank)
    scores = []
    for v in range(len(volumes)):
        mine = who[:, 0] == v
        for zc in np.unique(who[mine, 1]):
            query = mine & (who[:, 1] == zc) & (who[:, 2] == 1)
            near = mine & (np.abs(who[:, 1] - zc) <= EXCLUDE_Z_CELLS)
            if query.any() and (~near).sum() >= k:
                scores.append(knn_distance(bank[query], t[torch.from_numpy(~near)], k))
    if not scores:
        raise ValueError("no training cell has neighbours outside its own slab: cannot set the OOD threshold")
    threshold = float(np.percentile(np.concatenate(scores), percentile))
    return ContextKnn(t, int(k), threshold, float(percentile))


def _near_body(desc: np.ndarray) -> np.ndarray:
    """(cz, cy, cx) cells whose widest context holds any tissue (not all air): the cells the map is defined on."""
    n = len(HU_EDGES) + 1
    return desc[..., -n] < 1.0 - 1e-6  # the air bin of the last (widest) scale, square-rooted


def organ_ood_fractions(work_ood: np.ndarray, work_label: np.ndarray, organs: list[str],
                        threshold: float) -> dict:
    """Per organ: the share of its predicted working-grid voxels whose OOD score exceeds `threshold` (None when the
    organ is not predicted)."""
    out = {}
    for i, name in enumerate(organs, start=1):
        m = work_label == i
        out[name] = round(float((work_ood[m] > threshold).mean()), 4) if m.any() else None
    return out
