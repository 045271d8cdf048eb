"""The new model folder of a fine-tuning run: its name, version, card, and the atomic write.

Naming: fine-tuning model ROOT (its id without a trailing `-ft<N>`) gives `ROOT-ft<N>`, N the smallest number above
every `ROOT-ft<k>` already in the output folder or on the registry's search path; its version is the root version
(without a `+ft.<k>` suffix) + `+ft.<N>` (a SemVer build suffix: 1.0.0 → 1.0.0+ft.1).

Atomic write: weights and card go to MODELS_DIR/.<id>.<random>.partial/<id>/, and that folder is renamed to
MODELS_DIR/<id> only when both are complete (a rename within one file system is atomic); on any failure, and on an
interrupt, the partial folder is deleted. The registry looks for MODELS_DIR/*/model.json only, so it never sees a
partial model, and an existing folder of the same name is never overwritten.
"""

from __future__ import annotations

import copy
import datetime as _dt
import os
import re
import shutil
import tempfile
from pathlib import Path

import torch

import uqseg
from uqseg.io.write import write_json
from uqseg.models.registry import ModelCard, list_models, sha256_of

WEIGHTS_FILE = "weights.safetensors"
_FT_ID = re.compile(r"^(?P<root>.+)-ft(?P<n>\d+)$")
_FT_VERSION = re.compile(r"\+ft\.\d+$")


def root_id(model_id: str) -> str:
    m = _FT_ID.match(model_id)
    return m.group("root") if m else model_id


def root_version(version: str) -> str:
    return _FT_VERSION.sub("", version)


def next_name(base: ModelCard, models_dir: Path) -> tuple[str, str, int]:
    """(new id, new version, N) for a model fine-tuned from `base` into `models_dir` (module docstring)."""
    root = root_id(base.id)
    taken = {p.name for p in Path(models_dir).iterdir() if p.is_dir()} if Path(models_dir).is_dir() else set()
    taken |= {m.id for m in list_models()}
    numbers = [int(m.group("n")) for name in taken if (m := _FT_ID.match(name)) and m.group("root") == root]
    n = max(numbers, default=0) + 1
    return f"{root}-ft{n}", f"{root_version(base.version)}+ft.{n}", n


def fine_tuned_card(base: ModelCard, new_id: str, new_version: str, fine_tuning: dict) -> dict:
    """The new card: the base card's task, architecture, preprocessing, training and uncertainty blocks; id and
    version new, not the default; `fine_tuned_from` (id, version, weights sha256, and the base's validation numbers,
    which no longer describe this model) and `fine_tuning` (what was done). `weights` is filled in when written."""
    card = copy.deepcopy(base.card)
    card["id"], card["version"], card["default"] = new_id, new_version, False
    card["title"] = f"{base.get('title', base.id)} (fine-tuned on {len(fine_tuning.get('cases', []))} corrected cases)"
    card["fine_tuned_from"] = {"id": base.id, "version": base.version,
                               "weights_sha256": base.get("weights", {}).get("sha256") or sha256_of(base.weights_path),
                               "validation": base.get("validation")}
    card["validation"] = {"note": "not re-validated after fine-tuning; the base model's numbers are in "
                                  "fine_tuned_from.validation and the fine-tuning losses in fine_tuning"}
    card["fine_tuning"] = {"tool": {"uqseg": uqseg.__version__},
                           "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                           "uncertainty_note": "the `uncertainty` thresholds are the base model's (from its "
                                               "validation images), not re-derived",
                           **fine_tuning}
    card.pop("weights", None)
    if card.get("node_calibration"):  # the file travels with the card (base_files), unchanged: same sha256
        card["fine_tuning"]["node_calibration_note"] = ("the base model's per-node std calibration, fitted on the "
                                                        "base weights' validation errors, not re-fitted")
    if card.get("node_std_head"):  # likewise: the head was trained on the base network's features and errors
        card["fine_tuning"]["node_std_head_note"] = ("the base model's node std head, trained on the base network's "
                                                     "features and errors; not re-trained (Training/"
                                                     "train_cxr_std_head.py re-trains it on the fine-tuned network)")
    return card


#: card sections naming a file beside the weights that a fine-tuned model keeps from its base (copied unchanged)
CARRIED_FILES = ("node_calibration", "node_std_head")


def base_files(base: ModelCard) -> dict[str, Path]:
    """{file name: path in the base model's folder} of the CARRIED_FILES sections of `base`'s card."""
    out = {}
    for section in CARRIED_FILES:
        name = (base.get(section) or {}).get("file")
        if name:
            out[Path(name).name] = base.folder / name
    return out


def write_model_folder(models_dir: str | os.PathLike, model_id: str, state_dict: dict, card: dict,
                       files: dict[str, Path] | None = None) -> Path:
    """Write MODELS_DIR/<model_id>/{weights.safetensors, model.json} atomically (module docstring); the card gets
    `weights` {file, sha256, bytes}; `files` {name: source} are copied beside them (e.g. `base_files`). Returns the
    folder. FileExistsError when it already exists."""
    from safetensors.torch import save_file

    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    final = models_dir / model_id
    if final.exists():
        raise FileExistsError(f"{final} already exists; a model folder is never overwritten")
    staging = Path(tempfile.mkdtemp(prefix=f".{model_id}.", suffix=".partial", dir=models_dir))
    try:
        folder = staging / model_id
        folder.mkdir()
        weights = folder / WEIGHTS_FILE
        save_file({k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()
                   if isinstance(v, torch.Tensor)}, str(weights))
        card = {**card, "weights": {"file": WEIGHTS_FILE, "sha256": sha256_of(weights),
                                    "bytes": weights.stat().st_size}}
        for name, source in (files or {}).items():
            shutil.copyfile(source, folder / name)
        write_json(folder / "model.json", card)
        if final.exists():
            raise FileExistsError(f"{final} appeared while the model was written; not overwritten")
        os.rename(folder, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
