"""Add a cross-validation of the shipped mammo-breast recipe to its card (issue 19), without re-exporting the weights
(they stay byte for byte; their sha256 in the card is checked, and every fold's run must have used the card's
architecture and training recipe).

    python Training/refresh_breast_card.py --model Resources/Models/mammo-breast-mcd --cv runs/bcv --folds 4 \
        --version 2.1.0 --note "..."

--cv: the folder of Training/breast_cv.sh (f<i>/s1..s3 runs, f<i>/eval). Written into the card: `version`,
`training.cross_validation` (the protocol, the per-fold stages' configs and the pooled held-out numbers of
breast_cv_summary.py), `validation.cross_validated` (the pooled numbers against the issue-19 targets: reached, and by
how much missed) and `notes` (the new note first, the old one kept after it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from breast_cv_summary import summarise
from common import write_model
from uqseg.models.registry import sha256_of

TARGETS = {"dice_breast": 0.95, "dice_pectoral": 0.88}  # issue 19, point 3 (MLO)
STAGES = ("s1", "s2", "s3")


def check_recipe(card: dict, cv_root: Path, folds: int) -> list[dict]:
    """Each fold's stage configs; ValueError when a fold is missing or was not the card's recipe (width, epochs,
    learning rates per stage)."""
    want = [(s["epochs"], s["lr"]) for s in card["training"]["stages"]]
    width = card["architecture"]["width"]
    out = []
    for i in range(folds):
        configs = []
        for s in STAGES:
            p = cv_root / f"f{i}" / s / "config.json"
            if not p.is_file():
                raise ValueError(f"{p}: missing (fold {i} did not finish)")
            configs.append(json.loads(p.read_text()))
        got = [(c["epochs"], c["lr"]) for c in configs]
        if got != want or any(c["width"] != width for c in configs):
            raise ValueError(f"fold {i}: stages {got} (width {configs[0]['width']}), the card's {want} "
                             f"(width {width})")
        if any(c.get("cv") != {"folds": folds, "fold": i} for c in configs):
            raise ValueError(f"fold {i}: a stage was not trained on cross-validation fold {i} of {folds}")
        out.append({"fold": i, "held_out": configs[0]["val_cases"],
                    "train_seconds": round(sum(c["train_seconds"] for c in configs), 1),
                    "threads": configs[0]["threads"]})
    return out


def refreshed(card: dict, summary: dict, folds_info: list[dict], version: str, note: str) -> dict:
    out = json.loads(json.dumps(card))
    out["version"] = version
    out["training"]["cross_validation"] = {
        "protocol": f"Training/breast_cv.sh: {summary['folds']} folds of the 40 training images (every "
                    f"{summary['folds']}th in sorted order from the fold's index is held out), the card's three-stage "
                    "recipe per fold on the rest, the full inference pipeline (N = 20 MC samples) on the held-out "
                    "images; pooled by Training/breast_cv_summary.py; the validation split is not used",
        "folds": folds_info, "pooled": summary}
    pooled = {k: summary[k]["mean"] for k in TARGETS}
    out["validation"]["cross_validated"] = {
        **{f"{k}_mean": v for k, v in pooled.items()},
        "images": summary["images"], "targets": TARGETS,
        "targets_reached": {k: pooled[k] >= t for k, t in TARGETS.items()},
        "missed_by": {k: round(max(0.0, t - pooled[k]), 4) for k, t in TARGETS.items()}}
    out["notes"] = f"{note} (Before: {card['notes']})" if card.get("notes") else note
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--cv", type=Path, required=True)
    ap.add_argument("--folds", type=int, required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--note", required=True)
    args = ap.parse_args(argv)
    path = args.model / "model.json"
    card = json.loads(path.read_text())
    if sha256_of(args.model / card["weights"]["file"]) != card["weights"]["sha256"]:
        print(f"error: {args.model / card['weights']['file']} does not match the card's sha256", file=sys.stderr)
        return 2
    try:
        folds_info = check_recipe(card, args.cv, args.folds)
        summary = summarise(args.cv, args.folds)
        if not summary["complete"]:
            raise ValueError(f"{args.cv}: not every fold has an evaluation")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    new = refreshed(card, summary, folds_info, args.version, args.note)
    path = write_model(args.model, new)  # the card writer of the exporters (weights kept, sha256 checked again)
    print(json.dumps({"wrote": str(path), "version": args.version,
                      "cross_validated": new["validation"]["cross_validated"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
