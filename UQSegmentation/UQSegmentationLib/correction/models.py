"""The model behind a loaded result, in this process, for the model-aware corrections.

The files `uqseg predict` writes do not hold what a correction needs (the pectoral row heatmap, the chest X-ray
encoder's latent posterior and image features, the breast class probabilities), so the review runs the SAME model
(the id in summary.json, from the registry) on the SAME pixels once more, in-process, and checks that it reproduces
the result shown (the boundary / nodes of the files, to the files' rounding); a mismatch is an error, never a
silent correction of something else. This takes 0.1–5 s on a CPU: callers run it through the injected runner
(`review.scheduling`), off the GUI thread.

Frames. The pixels come from the input volume node: its voxels ``[slice, row, col]`` (a 2-D image is slice 0) and
IJK→RAS are turned into a `uqseg.io.image.Image` — spacing = the lengths of the IJK axes, origin and direction
converted RAS → LPS (negate the first two rows) — the geometry the engine had when it read the file. Where the
engine decided something from file metadata that a volume node does not carry (the chest-wall side of a DICOM
mammogram, from PatientOrientation), the decision recorded in summary.json is passed on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..segment_arrays import grid_matrix

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])
_MODELS: dict = {}


def image_from_volume(volume_node, summary: dict | None = None):
    """The volume node as the engine's `Image` (module docstring); 2-D when the volume has one slice."""
    from uqseg.io.image import Image

    from ..review.regions import volume_array

    a = volume_array(volume_node).astype(np.float32)
    m = grid_matrix(volume_node)
    spacing = np.linalg.norm(m[:3, :3], axis=0)
    direction = LPS_FROM_RAS @ (m[:3, :3] / spacing)
    origin = LPS_FROM_RAS @ m[:3, 3]
    meta = {"path": (summary or {}).get("input"), "spacing_source": (summary or {}).get(
        "input_geometry", {}).get("spacing_source")}
    geometry = (summary or {}).get("input_geometry") or {}
    for key in ("modality", "view", "laterality"):
        if geometry.get(key):
            meta[key] = geometry[key]
    orientation = (summary or {}).get("orientation") or {}
    if "flipped_for_model" in orientation:  # mammo-pectoral: the side the engine chose, as PatientOrientation says it
        meta["patient_orientation"] = ("P", "L") if orientation["flipped_for_model"] else ("A", "R")
    if a.shape[0] == 1:
        return Image(a[0], tuple(float(s) for s in spacing[:2]), tuple(origin), direction, meta)
    return Image(a, tuple(float(s) for s in spacing), tuple(origin), direction, meta)


def load_model(summary: dict, device: str = "cpu"):
    """(card, model) of the model named in summary.json, loaded once per process (cached by id, version,
    device). Raises `uqseg.models.registry.ModelError` when it is not installed, ValueError for another version."""
    from uqseg.models.registry import find_model
    from uqseg.tasks import TASKS

    task = summary["task"]
    info = summary.get("model") or {}
    card = find_model(task, info.get("id"))
    if info.get("version") and card.version != info["version"]:
        raise ValueError(f"the result was made by {card.id} {info['version']}, but {card.version} is installed: "
                         "run the model again before correcting")
    key = (card.id, card.version, device)
    if key not in _MODELS:
        _MODELS[key] = TASKS[task].load(card, device)
    return card, _MODELS[key]


# ------------------------------------------------------------------------------------------------ mammo-pectoral
@dataclass
class PectoralModelState:
    """The model's result with its heatmap (`PectoralResult.grid_prob`), as `correct_pectoral` needs it."""

    card: object
    base: object  # PectoralResult


def pectoral_state(image, summary: dict, boundary: dict | None = None, device: str = "cpu",
                   tolerance_px: float = 0.01) -> PectoralModelState:
    """Run the pectoral model on `image` (`image_from_volume`) and check it against boundary.csv (`boundary`:
    `display.band.read_boundary_csv`; rounded to 3 decimals there)."""
    from uqseg.mammo.pectoral import predict_pectoral

    card, model = load_model(summary, device)
    base = predict_pectoral(image, model, device)
    if boundary is not None:
        rows = np.asarray(boundary["rows"])
        same = rows.shape == base.rows.shape and np.array_equal(rows, base.rows) and \
            float(np.max(np.abs(base.mean_col - boundary["mean_col"]), initial=0.0)) <= tolerance_px
        if not same:
            raise ValueError("the pectoral model does not reproduce boundary.csv on these pixels (another image, "
                             "another orientation or another model): run the model again before correcting")
    return PectoralModelState(card, base)


# ------------------------------------------------------------------------------------------------ cxr-landmarks
@dataclass
class CxrModelState:
    """The chest X-ray model with the image encoded once (refits reuse it) and the model's `LandmarkResult`."""

    card: object
    model: object
    encoded: object  # uqseg.correction.cxr_pinned.EncodedImage
    base: object  # LandmarkResult


def cxr_state(image, summary: dict, nodes_xy: np.ndarray | None = None, device: str = "cpu",
              tolerance_px: float = 0.01) -> CxrModelState:
    """Encode `image`, predict with the summary's samples and seed, and check the nodes against `nodes_xy`
    ((120, 2) input pixel-centre (x, y), e.g. landmarks.csv, rounded to 3 decimals there)."""
    from uqseg.correction.cxr_pinned import encode_image
    from uqseg.cxr.inference import predict_landmarks

    card, model = load_model(summary, device)
    base = predict_landmarks(image, model, device, samples=summary.get("samples"), seed=int(summary.get("seed") or 0))
    if nodes_xy is not None and float(np.max(np.abs(base.mean - np.asarray(nodes_xy)))) > tolerance_px:
        raise ValueError("the chest X-ray model does not reproduce landmarks.csv on these pixels: run the model "
                         "again before correcting")
    return CxrModelState(card, model, encode_image(model, image), base)


def refit_with_pins(state: CxrModelState, pins: dict):
    """`uqseg.correction.cxr_pinned.refit_with_pins` on the encoded image: the new LandmarkResult (input px)."""
    from uqseg.correction import cxr_pinned

    return cxr_pinned.refit_with_pins(state.model, state.encoded, state.base, pins)


# ------------------------------------------------------------------------------------------------ mammo-breast
def breast_probabilities(image, summary: dict, label: np.ndarray | None = None, device: str = "cpu") -> np.ndarray:
    """The MC-dropout mean softmax (3, H, W) on the input grid (classes 0 background, 1 breast, 2 pectoral), with
    the summary's samples and seed (0 samples: the deterministic pass, as `--fast`); `label` (the label map shown,
    [row, col]) is checked against the model's (at most 0.1 % of the pixels may differ)."""
    import torch

    from uqseg.mammo.breast import predict_breast
    from uqseg.mammo.breast_preprocess import to_input_grid

    card, model = load_model(summary, device)
    samples = int(summary.get("samples") or 0)
    result = predict_breast(image, model, device, samples=max(1, samples), seed=int(summary.get("seed") or 0),
                            fast=samples == 0, input_maps=False)
    if label is not None and float(np.mean(np.asarray(label) != result.label)) > 1e-3:
        raise ValueError("the breast model does not reproduce the segmentation shown: run it again first")
    return to_input_grid(torch.from_numpy(np.ascontiguousarray(result.work_mean)), result.prepared).numpy()
