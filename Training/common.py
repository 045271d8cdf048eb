"""What the training recipes (train_*.py) and the model exporters (export_*.py) of Training/ share.

Recipes
    recipe_parser(doc, data)  the command line: the recipe's own flags on top of one parent parser of the shared ones
                              (--data, --out, --seed, --threads, --init and, for recipes over an image list, --limit)
    start(args)               torch threads, the global seed, and the recipe's torch.Generator (made before the
                              network is built, so the network's initialisation draws from the seeded global stream)
    limit_split(...)          the first N training images and a share of the validation ones (--limit, smoke tests)
    cv_split, add_cv_flags, cv_fold, split_for   cross-validation folds of the training images (--folds K --fold i)
    print_json(obj, out)      print a result as JSON and write it to `out` too
    RunFolder(out, columns)   the run folder: weights.safetensors (the final weights), checkpoint.safetensors (the
                              weights at the last evaluation: an interrupted run can go on with --init), config.json,
                              metrics.json, log.csv (one row per epoch, appended and closed row by row, so an
                              interrupted run leaves a complete file) and, where asked, log.jsonl (nested records)
Every recipe trains with the one loop `uqseg.finetune.loop.fit`.

Exporters
    export_parser(doc, id, version)   --id, --version and --models (the models folder written to; default
                                      Resources/Models) on top of the exporter's own flags
    model_card(...)                   the card skeleton every exporter fills: id, version, task, default, title or
                                      description, citation, architecture, preprocessing, training (with the recipe
                                      and the hardware), validation, uncertainty, the task's further sections, license
    write_model(dest, card, weights)  copies the weights (and plots) into the model folder, records their sha256 and
                                      size in the card, checks the fields the registry reads (`check_card`), writes
                                      model.json
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from uqseg.models.registry import sha256_of

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
MODELS = REPO / "Resources" / "Models"
HARDWARE = "2 CPU cores (no GPU was available to this task)"


# ----------------------------------------------------------------------------------------------------- recipes
def shared_flags(data: Path, *, threads: int = 0, limit: bool = True) -> argparse.ArgumentParser:
    """The parent parser of the flags every recipe has."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("shared by every recipe (Training/common.py)")
    g.add_argument("--data", type=Path, default=data, help="the data folder (default: %(default)s)")
    g.add_argument("--out", type=Path, required=True, help="the run folder to write")
    g.add_argument("--seed", type=int, default=0, help="seeds the network's initialisation and every random draw")
    g.add_argument("--threads", type=int, default=threads, help="torch CPU threads (0: torch's default)")
    if limit:
        g.add_argument("--limit", type=int, default=0, help="use only the first N training images (smoke tests)")
    g.add_argument("--init", type=Path, default=None, help="start from these weights (a later training stage)")
    return p


def recipe_parser(doc: str, data: Path, *, threads: int = 0, limit: bool = True) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter,
                                   parents=[shared_flags(data, threads=threads, limit=limit)])


def start(args) -> torch.Generator:
    """Threads, then torch.manual_seed(seed); the returned generator (seeded alike) drives the batches and the
    augmentation, the global stream the initialisation and any sampling inside the network."""
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    return torch.Generator().manual_seed(args.seed)


def limit_split(train: list[str], val: list[str], limit: int, *, val_div: int, val_min: int):
    """(train, val) unchanged without a limit, else the first `limit` training names and the first
    max(val_min, limit // val_div) validation names."""
    if not limit:
        return train, val
    return train[:limit], val[:max(val_min, limit // val_div)]


def cv_split(names: list[str], folds: int, fold: int) -> tuple[list[str], list[str]]:
    """(train, held out) for cross-validation on the training images: every `folds`-th name of the sorted `names`,
    from index `fold`, is held out (each name is held out by exactly one fold)."""
    names = sorted(names)
    held = names[fold::folds]
    return [n for n in names if n not in held], held


def add_cv_flags(ap: argparse.ArgumentParser) -> None:
    """--folds K --fold i: train on the training images minus fold i and validate on fold i (never the split)."""
    ap.add_argument("--folds", type=int, default=0, help="cross-validation on the training images: K folds")
    ap.add_argument("--fold", type=int, default=0, help="which fold is held out (0..K-1)")


def cv_fold(args, ap: argparse.ArgumentParser, train: list[str]) -> tuple[list[str], list[str]]:
    """cv_split of the training names by --folds / --fold (add_cv_flags), the fold checked against the folds."""
    if not 0 <= args.fold < args.folds:
        ap.error(f"--fold must lie in 0..{args.folds - 1}")
    return cv_split(train, args.folds, args.fold)


def split_for(args, ap: argparse.ArgumentParser, train: list[str], val: list[str]) -> tuple[list[str], list[str]]:
    """The (train, val) names a recipe uses: the fixed split, or a cross-validation fold of its training names
    (add_cv_flags), then --limit."""
    if args.folds:
        train, val = cv_fold(args, ap, train)
    return limit_split(train, val, args.limit, val_div=2, val_min=1)


def print_json(obj, out: Path | None = None) -> None:
    """Print `obj` as indented JSON, and write the same text to `out` when given (the CV summaries and checks)."""
    text = json.dumps(obj, indent=2)
    if out:
        out.write_text(text)
    print(text)


def jsonable(value):
    """Paths as strings, for config.json."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


class RunFolder:
    """A training run's folder (module docstring). `columns` are log.csv's header; `log(row)` writes a row (missing
    or None values empty) and, with jsonl=True, `record` as one line of log.jsonl."""

    def __init__(self, out: Path, columns: list[str], *, jsonl: bool = False):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.columns = list(columns)
        self.jsonl = jsonl
        with open(self.out / "log.csv", "w", newline="") as f:
            csv.writer(f, lineterminator="\n").writerow(self.columns)
        if jsonl:
            with open(self.out / "log.jsonl", "w"):
                pass

    def log(self, row: dict, record: dict | None = None) -> None:
        unknown = set(row) - set(self.columns)
        if unknown:
            raise KeyError(f"log.csv has no column(s) {sorted(unknown)}")
        with open(self.out / "log.csv", "a", newline="") as f:
            csv.writer(f, lineterminator="\n").writerow(["" if row.get(c) is None else row[c] for c in self.columns])
        if self.jsonl and record is not None:
            with open(self.out / "log.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def save_weights(self, state: dict, name: str = "weights.safetensors") -> Path:
        """`state` (a state_dict) as safetensors (which needs contiguous tensors: channels-last ones are not)."""
        path = self.out / name
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
        return path

    def checkpoint(self, state: dict) -> Path:
        return self.save_weights(state, "checkpoint.safetensors")

    def write_json(self, name: str, obj) -> Path:
        path = self.out / name
        path.write_text(json.dumps(jsonable(obj), indent=2))
        return path


# --------------------------------------------------------------------------------------------------- exporters
def export_parser(doc: str, *, id: str, version: str | None) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--id", default=id, help="the model id (default: %(default)s)")
    ap.add_argument("--version", default=version, help="the model version (default: %(default)s)")
    ap.add_argument("--models", type=Path, default=MODELS,
                    help="the models folder to write <id>/ into (default: the shipped Resources/Models)")
    return ap


def model_card(*, id: str, version: str, task: str, citation: str, architecture: dict, preprocessing: dict,
               training: dict, validation: dict, uncertainty: dict, license: str, title: str | None = None,
               description: str | None = None, default: bool = True, **sections) -> dict:
    """The card skeleton (module docstring); `sections` (e.g. inference, organs, notes) go between the
    architecture and the training blocks. training gets "hardware" = HARDWARE unless it has one."""
    card = {"id": id, "version": version, "task": task, "default": default}
    if title is not None:
        card["title"] = title
    if description is not None:
        card["description"] = description
    card["citation"] = citation
    card["architecture"] = architecture
    card.update(sections)
    card["preprocessing"] = preprocessing
    card["training"] = {**training, "hardware": training.get("hardware", HARDWARE)}
    card["validation"] = validation
    card["uncertainty"] = uncertainty
    card["license"] = license
    return card


def check_card(card: dict) -> None:
    """The fields `uqseg.models.registry` reads: ValueError naming every one that is missing or malformed."""
    problems = []
    for key in ("id", "version", "task"):
        if not isinstance(card.get(key), str) or not card[key].strip():
            problems.append(f"{key!r} must be a non-empty string")
    if "@" in str(card.get("id", "")):
        problems.append("the id must not contain '@'")
    if not isinstance(card.get("default", False), bool):
        problems.append("'default' must be true or false")
    if not isinstance(card.get("architecture"), dict) or not card["architecture"]:
        problems.append("'architecture' must be a non-empty object (the registry builds the network from it)")
    weights = card.get("weights")
    if not isinstance(weights, dict) or not isinstance(weights.get("file"), str):
        problems.append("'weights.file' missing")
    elif not (isinstance(weights.get("sha256"), str) and len(weights["sha256"]) == 64
              and all(c in "0123456789abcdef" for c in weights["sha256"])):
        problems.append("'weights.sha256' must be 64 lower-case hex digits")
    if problems:
        raise ValueError(f"model card {card.get('id')!r}: " + "; ".join(problems))


def write_model(dest: Path, card: dict, weights: Path | None = None, files=()) -> Path:
    """Write the model folder `dest`: `weights` copied to dest/weights.safetensors (None: keep the folder's weights,
    which must match the card's recorded sha256), every file of `files` copied in (a Path, or (source, name)), the
    card's `weights` block recorded, the card checked (`check_card`) and written to dest/model.json."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / "weights.safetensors"
    if weights is not None:
        shutil.copyfile(weights, target)
    elif (card.get("weights") or {}).get("sha256") != sha256_of(target):
        raise SystemExit(f"{dest}: the weights do not match the card's sha256")
    for f in files:
        src, name = (f, Path(f).name) if isinstance(f, (str, Path)) else f
        shutil.copyfile(src, dest / name)
    tail = {k: card.pop(k) for k in ("weights", "license") if k in card}
    card["weights"] = {"file": target.name, "sha256": sha256_of(target), "bytes": target.stat().st_size}
    if "license" in tail:
        card["license"] = tail["license"]
    check_card(card)
    (dest / "model.json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    return dest / "model.json"
