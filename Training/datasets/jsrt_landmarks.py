"""JSRT chest X-rays with HybridGNet landmarks and SCR masks (../shared/data/cxr_jsrt) for the cxr-landmarks model.

Each case NAME has images/NAME.png (512 × 512, 8-bit), landmarks/NAME.json (right lung 44, left lung 50, heart 26
points and its `split`: 174 train, 21 val) and masks/NAME.png (0 background, 1 right lung, 2 left lung, 3 heart).
`load_tensors` runs the model's own preprocessing (`uqseg.cxr.preprocess.network_input`: percentile intensity,
centred square, antialiased resize to the input size G) and returns the targets as normalised square coordinates
u = (x + ½) / 512 (see preprocess.py), so training and inference see identical inputs. The result is cached in an
.npz (no pickle) keyed by G.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image as PILImage

from uqseg.cxr.landmarks_io import read_landmarks
from uqseg.cxr.preprocess import network_input


def list_cases(root: Path) -> dict[str, list[str]]:
    """{'train': [...], 'val': [...]} case names (sorted) from the `split` field of every landmark file."""
    out: dict[str, list[str]] = {"train": [], "val": []}
    for f in sorted((Path(root) / "landmarks").glob("*.json")):
        out.setdefault(json.loads(f.read_text())["split"], []).append(f.stem)
    return out


def load_case(root: Path, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image float32 as stored, nodes (120, 2) pixel-centre (x, y), SCR label mask uint8), all at 512 × 512."""
    root = Path(root)
    img = np.asarray(PILImage.open(root / "images" / f"{name}.png"), dtype=np.float32)
    nodes, _ = read_landmarks(root / "landmarks" / f"{name}.json")
    mask = np.asarray(PILImage.open(root / "masks" / f"{name}.png"), dtype=np.uint8)
    return img, nodes, mask


def load_tensors(root: Path, names: list[str], size: int, cache: Path | None = None):
    """(images (N, 1, G, G) float32 0..1, targets (N, 120, 2) float32 normalised), cached when `cache` is given."""
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            if list(z["names"]) == list(names) and int(z["size"]) == size:
                return torch.from_numpy(z["images"]), torch.from_numpy(z["targets"])
    imgs, tgts = [], []
    for n in names:
        img, nodes, _ = load_case(root, n)
        x, frame = network_input(img, size)
        imgs.append(x[0])
        tgts.append(frame.to_normalised(nodes).astype(np.float32))
    images, targets = torch.stack(imgs), torch.from_numpy(np.stack(tgts))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, images=images.numpy(), targets=targets.numpy(), names=np.array(names), size=size)
    return images, targets
