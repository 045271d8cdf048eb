"""Model registry: model cards (`model.json`) + weights (`weights.safetensors`) found on a search path.

Search path, first match wins for a given model id:
  1. every folder in the environment variable UQSEG_MODELS (os.pathsep-separated),
  2. the user cache: ~/.cache/uqseg/models (or $XDG_CACHE_HOME/uqseg/models),
  3. the models shipped with the project: <repository>/Resources/Models (editable install / source checkout),
     and <module dir>/Resources/Models (where the Slicer extension installs them).
Each model is a folder <id>/ holding model.json and weights.safetensors. The card's `weights.sha256` is checked
before the weights are used; weights are read with safetensors (never unpickled).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from uqseg.errors import InputError

_PACKAGE = Path(__file__).resolve().parent.parent  # .../UQSegmentation/uqseg


class ModelError(Exception):
    """A model is missing, its card is malformed, or its weights fail the integrity check."""


@dataclass
class ModelCard:
    folder: Path
    card: dict

    @property
    def id(self) -> str:
        return self.card["id"]

    @property
    def version(self) -> str:
        return self.card["version"]

    @property
    def task(self) -> str:
        return self.card["task"]

    @property
    def weights_path(self) -> Path:
        return self.folder / self.card.get("weights", {}).get("file", "weights.safetensors")

    def __getitem__(self, key):
        return self.card[key]

    def get(self, key, default=None):
        return self.card.get(key, default)


def search_path() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("UQSEG_MODELS", "").split(os.pathsep) if p]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "uqseg" / "models"
    dirs += [cache, _PACKAGE.parent.parent / "Resources" / "Models", _PACKAGE.parent / "Resources" / "Models"]
    return dirs


def list_models() -> list[ModelCard]:
    """All models on the search path (the first folder wins for a duplicated id)."""
    seen: dict[str, ModelCard] = {}
    for d in search_path():
        if not d.is_dir():
            continue
        for card_file in sorted(d.glob("*/model.json")):
            try:
                card = json.loads(card_file.read_text())
                mid = card["id"]
                card["task"], card["version"]  # required keys
            except (ValueError, KeyError) as e:
                raise ModelError(f"{card_file}: malformed model card ({e})") from None
            seen.setdefault(mid, ModelCard(card_file.parent, card))
    return list(seen.values())


def find_model(task: str, model_id: str | None = None) -> ModelCard:
    """The model for `task`: the one named `model_id`, else the one whose card says `"default": true`, else the first."""
    models = [m for m in list_models() if m.task == task]
    if model_id:
        for m in models:
            if m.id == model_id:
                return m
        raise ModelError(f"no model {model_id!r} for task {task!r}; available: {[m.id for m in models] or 'none'}")
    if not models:
        raise ModelError(f"no model for task {task!r} on the search path {[str(p) for p in search_path()]}")
    return next((m for m in models if m.get("default")), models[0])


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_state_dict(model: ModelCard, device: str = "cpu") -> dict:
    """The model's tensors, after checking the sha256 recorded in its card."""
    from safetensors.torch import load_file

    path = model.weights_path
    if not path.is_file():
        raise ModelError(f"{path}: weights file missing for model {model.id}")
    expected = model.get("weights", {}).get("sha256")
    if expected and sha256_of(path) != expected:
        raise ModelError(f"{path}: sha256 does not match the model card of {model.id} (corrupt or replaced weights)")
    try:
        return load_file(str(path), device=device)
    except Exception as e:  # safetensors raises its own error types for a damaged header
        raise ModelError(f"{path}: unreadable safetensors file ({e})") from None


__all__ = ["ModelCard", "ModelError", "InputError", "find_model", "list_models", "load_state_dict", "search_path"]
