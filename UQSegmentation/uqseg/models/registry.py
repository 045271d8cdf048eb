"""Model registry: model cards (`model.json`) + weights (`weights.safetensors`) found on a search path.

Search path:
  1. every folder in the environment variable UQSEG_MODELS (os.pathsep-separated),
  2. the user cache: ~/.cache/uqseg/models (or $XDG_CACHE_HOME/uqseg/models),
  3. the models shipped with the project: <repository>/Resources/Models (editable install / source checkout),
     and <module dir>/Resources/Models (where the Slicer extension installs them).
Each model is a folder <id>/ holding model.json and weights.safetensors. Folders 1 and 2 hold *user* models, folder 3
the *shipped* ones (`ModelCard.source`).

Which model a name picks (`find_model`):
- `ID` (or the task's default: the card with `"default": true`, else the first): the first model with that id in
  search order — unless a user model reuses a SHIPPED model's id: then the name is ambiguous and the model is refused
  (`ModelError` naming the user folder), so a folder in UQSEG_MODELS or the cache never silently replaces a shipped
  model;
- `ID@VERSION`: that exact version. A user model with a shipped model's id is used only this way, and only when its
  version differs from the shipped one's (same id and version: refused whatever is asked, it could pass for the
  shipped model). Two user models with the same id and version: the first on the search path, the other is refused.

Loading (`load_state_dict`, `load_network`), each failure a `ModelError` "<folder or file>: <reason>" (one line):
- the card must record `weights.sha256` (64 hex digits): a card without it is refused (every shipped and fine-tuned
  card has one); the file's sha256 must match it; the weights file must lie inside the model folder. The same rule
  (`checked_file`) holds for every other file a card names (`ood.sha256`, `node_calibration.sha256`);
- weights are read with safetensors (never unpickled); every floating-point tensor must be finite (NaN / inf
  refused);
- the card's `architecture` must build the network, and the tensors must fit it exactly: no missing or unexpected
  tensor, no tensor of another shape (another task's or another architecture's weights, a damaged header).
The verified sha256 is kept on the card (`ModelCard.sha256`), for summary.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from uqseg.errors import InputError

_PACKAGE = Path(__file__).resolve().parent.parent  # .../UQSegmentation/uqseg
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ModelError(Exception):
    """A model is missing, its card is malformed, or its weights fail the integrity check."""


@dataclass
class ModelCard:
    folder: Path
    card: dict
    source: str = "user"  # "shipped" (Resources/Models of the project) or "user" (UQSEG_MODELS, the user cache)
    refusal: str | None = None  # why this model is never used (a user copy of a shipped id + version, a duplicate)
    shadows: "ModelCard | None" = None  # the shipped model whose id this user model reuses with another version
    verified_sha256: str | None = None  # set by `load_state_dict` once the file matched the card

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

    @property
    def sha256(self) -> str | None:
        """The weights' sha256: as verified at load time, else as the card records it."""
        return self.verified_sha256 or (self.card.get("weights") or {}).get("sha256")

    @property
    def status(self) -> str:
        """One phrase for `uqseg models`."""
        if self.refusal:
            return f"refused: {self.refusal.split(': ')[0]}"
        if self.shadows is not None:
            return f"user model with a shipped id: only as --model {self.id}@{self.version}"
        return self.source

    def __getitem__(self, key):
        return self.card[key]

    def get(self, key, default=None):
        return self.card.get(key, default)


def shipped_dirs() -> list[Path]:
    return [_PACKAGE.parent.parent / "Resources" / "Models", _PACKAGE.parent / "Resources" / "Models"]


def search_path() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("UQSEG_MODELS", "").split(os.pathsep) if p]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "uqseg" / "models"
    return dirs + [cache] + shipped_dirs()


def _resolved(p: Path) -> Path:
    try:
        return p.resolve()
    except OSError:
        return p.absolute()


def _read_card(card_file: Path) -> dict:
    try:
        card = json.loads(card_file.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ModelError(f"{card_file}: malformed model card ({e})") from None
    if not isinstance(card, dict):
        raise ModelError(f"{card_file}: malformed model card (not a JSON object)")
    for key in ("id", "task", "version"):
        if not isinstance(card.get(key), str) or not card[key].strip():
            raise ModelError(f"{card_file}: malformed model card ({key!r} must be a non-empty string)")
    if "@" in card["id"]:
        raise ModelError(f"{card_file}: malformed model card (the id {card['id']!r} contains '@')")
    return card


def list_models() -> list[ModelCard]:
    """Every model on the search path, in search order (user folders first), each with its `source`, and the
    `refusal` / `shadows` of the module docstring."""
    shipped_roots = {_resolved(d) for d in shipped_dirs()}
    found: list[ModelCard] = []
    seen_folders = set()
    for d in search_path():
        if not d.is_dir():
            continue
        source = "shipped" if _resolved(d) in shipped_roots else "user"
        for card_file in sorted(d.glob("*/model.json")):
            folder = _resolved(card_file.parent)
            if folder in seen_folders:  # e.g. UQSEG_MODELS naming the shipped folder, or the two shipped roots
                continue
            seen_folders.add(folder)
            found.append(ModelCard(card_file.parent, _read_card(card_file), source))
    shipped = {}
    for m in found:
        if m.source == "shipped":
            shipped.setdefault(m.id, []).append(m)
    first_of = {}
    for m in found:
        if m.source == "user" and m.id in shipped:
            same = next((s for s in shipped[m.id] if s.version == m.version), None)
            if same is not None:
                m.refusal = (f"same id and version ({m.id} {m.version}) as the shipped model in {same.folder}: it "
                             "could pass for it; give it another id, or another version and pick it with "
                             f"--model {m.id}@<version>")
                continue
            m.shadows = shipped[m.id][0]
        key = (m.id, m.version)
        if key in first_of:
            m.refusal = (f"same id and version ({m.id} {m.version}) as {first_of[key].folder}, earlier on the search "
                         "path")
        else:
            first_of[key] = m
    return found


def _ambiguous(m: ModelCard) -> str:
    s = m.shadows
    return (f"user model {m.id} {m.version} reuses the id of the shipped model {s.id} {s.version} ({s.folder}): "
            f"refused unless picked explicitly; run with --model {m.id}@{m.version} for this one or "
            f"--model {s.id}@{s.version} for the shipped one, or give it another id")


def find_model(task: str, model_id: str | None = None) -> ModelCard:
    """The model for `task`: `model_id` (`ID` or `ID@VERSION`), else the card with `"default": true`, else the first;
    the rules of the module docstring. ModelError (one line) when there is none or it is refused."""
    models = list_models()
    if not model_id:
        own = [m for m in models if m.task == task and m.refusal is None and m.shadows is None]
        if not own:
            raise ModelError(f"no model for task {task!r} on the search path {[str(p) for p in search_path()]}")
        model_id = next((m for m in own if m.get("default")), own[0]).id
    mid, _, version = model_id.partition("@")
    named = [m for m in models if m.id == mid]
    for_task = [m for m in named if m.task == task]
    if not for_task:
        other = sorted({m.task for m in named})
        if other:
            raise ModelError(f"{named[0].folder}: model {mid!r} is a {'/'.join(other)} model, not a {task} model")
        raise ModelError(f"no model {mid!r} for task {task!r}; available: "
                         f"{sorted({m.id for m in models if m.task == task and m.refusal is None}) or 'none'}")
    if version:
        exact = [m for m in for_task if m.version == version]
        refused = [m for m in exact if m.refusal]
        if refused and any(m.source == "shipped" for m in exact):
            raise ModelError(f"{refused[0].folder}: {refused[0].refusal}")
        usable = [m for m in exact if m.refusal is None]
        if not usable:
            if exact:
                raise ModelError(f"{exact[0].folder}: {exact[0].refusal}")
            raise ModelError(f"no version {version!r} of model {mid!r} for task {task!r}; available versions: "
                             f"{sorted({m.version for m in for_task if m.refusal is None})}")
        return usable[0]
    refused = [m for m in for_task if m.refusal and m.source == "user"]
    if refused:
        raise ModelError(f"{refused[0].folder}: {refused[0].refusal}")
    shadowing = [m for m in for_task if m.shadows is not None]
    if shadowing:
        raise ModelError(f"{shadowing[0].folder}: {_ambiguous(shadowing[0])}")
    return next(m for m in for_task if m.refusal is None)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 300 else text[:297] + "..."


def checked_file(model: ModelCard, path: Path, expected, what: str, field: str) -> str:
    """Refuse a file the card names (`what`: "weights", "OOD statistics", ...) whose sha256 the card does not record
    as 64 hex digits under `field` (e.g. "weights.sha256"), that lies outside the model folder, is missing, or whose
    sha256 differs from `expected`. Every file a card names is checked by this one rule; returns the sha256."""
    if not isinstance(expected, str) or not _SHA256.match(expected.lower()):
        problem = f"no {field}" if not expected else f"a malformed {field} ({str(expected)[:20]!r})"
        raise ModelError(f"{path}: the model card of {model.id} has {problem}: its {what} cannot be checked, refused "
                         "(record the file's sha256 in model.json)")
    if _resolved(model.folder) not in _resolved(path).parents:
        raise ModelError(f"{model.folder}: the card's {what} file {str(path.name)!r} lies outside the model folder")
    if not path.is_file():
        raise ModelError(f"{path}: {what} file missing for model {model.id}")
    actual = sha256_of(path)
    if actual != expected.lower():
        raise ModelError(f"{path}: sha256 {actual[:12]}... does not match the model card of {model.id} "
                         f"({expected[:12]}...): corrupt or replaced {what}")
    return actual


def load_state_dict(model: ModelCard, device: str = "cpu") -> dict:
    """The model's tensors, after checking the card's sha256 and that every floating-point value is finite."""
    import torch
    from safetensors.torch import load_file

    weights = model.get("weights")
    expected = weights.get("sha256") if isinstance(weights, dict) else None
    path = model.weights_path
    actual = checked_file(model, path, expected, "weights", "weights.sha256")
    try:
        tensors = load_file(str(path), device=device)
    except Exception as e:  # safetensors raises its own error types for a damaged header
        raise ModelError(f"{path}: unreadable safetensors file ({_one_line(e)})") from None
    bad = [k for k, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise ModelError(f"{path}: {len(bad)} of {len(tensors)} weight tensors hold NaN or infinite values "
                         f"(e.g. {sorted(bad)[0]!r}): refused")
    model.verified_sha256 = actual
    return tensors


def _mismatch(net, tensors: dict) -> str:
    """What keeps `tensors` from fitting `net` (a torch module), in a few words; '' when they fit by name and shape."""
    own = net.state_dict()
    unexpected = sorted(set(tensors) - set(own))
    missing = sorted(set(own) - set(tensors))
    shape = [k for k in own if k in tensors and tuple(own[k].shape) != tuple(tensors[k].shape)]
    parts = []
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected tensor(s), e.g. {unexpected[0]!r}")
    if missing:
        parts.append(f"{len(missing)} missing, e.g. {missing[0]!r}")
    if shape:
        k = shape[0]
        parts.append(f"{len(shape)} of another shape, e.g. {k!r} {list(tensors[k].shape)} in the file, "
                     f"{list(own[k].shape)} in the network")
    return "; ".join(parts)


def load_network(card: ModelCard, build: Callable[[dict], object], device="cpu",
                 apply: Callable[[object, dict], object] | None = None):
    """The network of `card`: `build(architecture)` → module, its weights from `load_state_dict` put in with
    `apply(module, tensors)` (default: strict `load_state_dict`), moved to `device`, in eval mode. Every failure is a
    ModelError naming the model folder (module docstring)."""
    arch = card.get("architecture")
    if not isinstance(arch, dict) or not arch:
        raise ModelError(f"{card.folder}: the model card has no 'architecture' block: the {card.task} network "
                         "cannot be built")
    try:
        net = build(arch)
    except KeyError as e:
        raise ModelError(f"{card.folder}: the card's architecture has no {e.args[0]!r}: the {card.task} network "
                         "cannot be built") from None
    except (TypeError, ValueError, IndexError, AttributeError, RuntimeError) as e:
        raise ModelError(f"{card.folder}: the card's architecture cannot build the {card.task} network "
                         f"({_one_line(e)})") from None
    tensors = load_state_dict(card)
    try:
        if apply is None:
            net.load_state_dict(tensors, strict=True)
        else:
            apply(net, tensors)
    except (RuntimeError, ValueError, KeyError) as e:
        why = _mismatch(net, tensors) if apply is None else ""
        raise ModelError(f"{card.folder}: the weights do not fit the network its card describes "
                         f"({why or _one_line(e)}): weights of another model or task, or a damaged file") from None
    return net.to(device).eval()


__all__ = ["ModelCard", "ModelError", "InputError", "find_model", "list_models", "load_network", "load_state_dict",
           "search_path", "shipped_dirs"]
