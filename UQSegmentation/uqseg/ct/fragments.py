"""Detached fragments of a predicted organ: connected pieces of it that do not touch its largest piece.

The liver, the spleen, each kidney and the pancreas are each one connected organ, so a piece of a predicted organ
apart from its main body is far more often a false positive than anatomy (an accessory spleen is the common
exception). nnU-Net's post-processing removes such pieces when cross-validation says it pays ("keep the largest
connected component", Isensee et al. 2021, Nat. Methods 18:203, Sec. "Post-processing"). Here they are FLAGGED, not
removed: a confident wrong island is what neither the predictive variance (aleatoric: small where the logits are
sure) nor the OOD map (tissue that looks like the training tissue) catches, and the reader decides what to keep.

Definitions (used by the task's summary.json and by Training/evaluate_ct_lopo.py alike):
- a component is a face-connected (6-neighbour) set of voxels of one organ label on the working grid;
- the organ's main body is its largest component (ties: the first in scan order);
- a detached fragment is any other component of at least `min_ml` millilitres (default 1 ml, the size below which
  the leave-one-patient-out evaluation does not count a component either).

Arrays: label maps (z, y, x) on the working grid (uqseg.ct.preprocess.WorkingGrid: axis-aligned LPS, `spacing` mm
in x, y, z order, `origin` the centre of voxel 0 in LPS mm); volumes in ml; centroids in LPS mm (x, y, z).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: 6-neighbour connectivity (voxels sharing a face)
FACE = ndimage.generate_binary_structure(3, 1)
MIN_FRAGMENT_ML = 1.0


def organ_components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Face-connected components of a boolean (z, y, x) mask: the component map (0 outside, 1..n) and the voxel
    count of each component (index 0 = component 1)."""
    comps, n = ndimage.label(mask, structure=FACE)
    sizes = np.bincount(comps.ravel(), minlength=n + 1)[1:] if n else np.zeros(0, np.int64)
    return comps, sizes


def main_body(mask: np.ndarray) -> np.ndarray:
    """The largest face-connected component of a boolean (z, y, x) mask (all False when the mask is empty)."""
    comps, sizes = organ_components(mask)
    if not sizes.size:
        return np.zeros_like(mask, bool)
    return comps == int(np.argmax(sizes)) + 1


def _lps_mm(index_zyx, spacing_xyz, origin_xyz) -> list[float]:
    """LPS mm (x, y, z; 0.1 mm) of a working-grid (z, y, x) index (axis-aligned grid: origin + index · spacing)."""
    return [round(float(o + i * s), 1) for o, i, s in zip(origin_xyz, np.asarray(index_zyx, float)[::-1], spacing_xyz)]


def organ_fragments(label: np.ndarray, organs: list[str], spacing_xyz, origin_xyz,
                    min_ml: float = MIN_FRAGMENT_ML) -> dict[str, dict]:
    """Per predicted organ (label c = organs[c − 1]): `main_ml` (its largest component), `fragments` (the detached
    fragments ≥ `min_ml`, largest first: `ml`, `centroid_lps_mm`, `point_lps_mm` = the fragment's voxel nearest its
    centroid — inside it even when the piece is a curved sliver whose centroid is not —, `slices` = first and last
    working-grid z index) and `fragments_ml` (their total). Organs without a voxel are left out."""
    voxel_ml = float(np.prod(spacing_xyz)) / 1000.0
    spacing_zyx = np.asarray(spacing_xyz, float)[::-1]
    out = {}
    for c, organ in enumerate(organs, start=1):
        mask = label == c
        if not mask.any():
            continue
        comps, sizes = organ_components(mask)
        main = int(np.argmax(sizes))
        fragments = []
        slices = ndimage.find_objects(comps)
        for k, n in enumerate(sizes):
            ml = float(n) * voxel_ml
            if k == main or ml < min_ml:
                continue
            piece = comps[slices[k]] == k + 1
            corner = np.array([s.start for s in slices[k]], float)  # (z, y, x) of the piece's bounding box
            centre = np.array(ndimage.center_of_mass(piece))
            voxels = np.argwhere(piece)
            inside = voxels[np.argmin((((voxels - centre) * spacing_zyx) ** 2).sum(1))]
            fragments.append({"ml": round(ml, 2),
                              "centroid_lps_mm": _lps_mm(corner + centre, spacing_xyz, origin_xyz),
                              "point_lps_mm": _lps_mm(corner + inside, spacing_xyz, origin_xyz),
                              "slices": [int(slices[k][0].start), int(slices[k][0].stop - 1)]})
        fragments.sort(key=lambda f: -f["ml"])
        out[organ] = {"main_ml": round(float(sizes[main]) * voxel_ml, 2), "fragments": fragments,
                      "fragments_ml": round(sum(f["ml"] for f in fragments), 2)}
    return out


__all__ = ["FACE", "MIN_FRAGMENT_ML", "main_body", "organ_components", "organ_fragments"]
