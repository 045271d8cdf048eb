"""Add issue 19's measurements to the shipped mammo-pectoral card without changing its weights (they stay byte for
byte; their sha256 in the card is checked, and the evaluation must be of these weights: its grid MAE must equal the
card's validation MAE).

    python Training/refresh_pectoral_card.py --model Resources/Models/mammo-pectoral-hhr \
        --eval runs/pectoral_shipped/eval --cv runs/pcv/summary.json --version 1.0.1 \
        --candidate runs/pectoral_strong_s2 --note "..." [--note "..."]

Written into the card: `version`; `validation` gets the issue-19 fields of --eval (evaluate_pectoral.py on the
shipped weights: MAE over every muscle row, share within 2σ, per image and per third, targets reached / missed by);
`training.cross_validation` the CV summary (pectoral_cv_summary.py); `training.candidates_not_shipped` what each
--candidate run measured (its config, its evaluation's issue-19 numbers on validation, its
pectoral_ood_check.py result `ood.json`); `notes` the --note lines first, the old notes kept after them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common import write_model
from export_pectoral import cross_validation, issue_validation
from uqseg.models.registry import sha256_of


def candidate(run: Path) -> dict:
    """What a candidate run (a stage-2 folder with eval/ and ood.json) measured."""
    config = json.loads((run / "config.json").read_text())
    ev = json.loads((run / "eval" / "evaluation.json").read_text())
    ood = json.loads((run / "ood.json").read_text())
    return {"run": run.name, "augment": config.get("augment"), "epochs": config["epochs"], "lr": config["lr"],
            "weights_sha256": sha256_of(run / "weights.safetensors"),
            "validation": {"mae_grid": round(ev["mae"], 3),
                           **{k: v for k, v in issue_validation(ev).items() if k != "definition_all_rows"}},
            "ood_check": {k: ood[k] for k in ("flagged", "inputs", "passed", "per_input", "ood_threshold_grid")}}


def refreshed(card: dict, ev: dict, cv: dict | None, candidates: list[dict], version: str, notes: list[str]) -> dict:
    if abs(ev["mae"] - card["validation"]["mae_grid"]) > 1e-3:
        raise ValueError(f"--eval has grid MAE {ev['mae']:.4f}, the card {card['validation']['mae_grid']}: "
                         "not an evaluation of this model")
    out = json.loads(json.dumps(card))
    out["version"] = version
    out["validation"].update(issue_validation(ev))
    if cv is not None:
        out["training"]["cross_validation"] = cross_validation(cv)
    if candidates:
        out["training"]["candidates_not_shipped"] = candidates
    old = card.get("notes") or []
    out["notes"] = list(notes) + (old if isinstance(old, list) else [old])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--eval", type=Path, required=True)
    ap.add_argument("--cv", type=Path)
    ap.add_argument("--candidate", type=Path, action="append", default=[])
    ap.add_argument("--version", required=True)
    ap.add_argument("--note", action="append", default=[])
    args = ap.parse_args(argv)
    path = args.model / "model.json"
    card = json.loads(path.read_text())
    if sha256_of(args.model / card["weights"]["file"]) != card["weights"]["sha256"]:
        print(f"error: {args.model / card['weights']['file']} does not match the card's sha256", file=sys.stderr)
        return 2
    ev = json.loads((args.eval / "evaluation.json").read_text())
    cv = json.loads(args.cv.read_text()) if args.cv else None
    try:
        new = refreshed(card, ev, cv, [candidate(r) for r in args.candidate], args.version, args.note)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    path = write_model(args.model, new)  # the card writer of the exporters (weights kept, sha256 checked again)
    v = new["validation"]
    print(json.dumps({"wrote": str(path), "version": args.version, "targets_reached": v["targets_reached"],
                      "missed_by": v["missed_by"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
