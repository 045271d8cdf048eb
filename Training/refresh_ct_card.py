"""Re-measure a shipped ct-organs card's validation sections from Training/evaluate_ct_lopo.py folders, without
re-exporting the weights or the OOD bank (those stay byte for byte; their sha256 in the card are checked).

    python Training/refresh_ct_card.py --model Resources/Models/ct-organs-mob --own runs/k18/eval_shipped \
        --lopo runs/k18/eval_AtoB runs/k18/eval_BtoA --version 2.2.0 --note "..." [--lopo-recipe "..."]

--own: the evaluation of the SHIPPED weights (a run folder whose config.json names the card's architecture and split
and whose weights.safetensors is the shipped file): its variance threshold and OOD threshold must equal the card's
(the same rules on the same training patients), else the card would describe another model and nothing is written.
--lopo: the leave-one-patient-out evaluations. Replaced in the card: `version`, `validation.this_model`,
`validation.leave_one_patient_out`, `validation.flags` (export_ct.flag_summary, with the detached-fragment flag and
its false alarms), `training.lopo_recipe` (when given) and `notes` (the new note first, the old one kept after it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from export_ct import FLAG_RULE, flag_summary, lopo_table
from uqseg.models.registry import sha256_of

THRESHOLD_TOLERANCE = 1e-6


def refreshed(card: dict, own: dict, lopo: dict[str, dict], version: str, note: str,
              lopo_recipe: str | None) -> dict:
    """The card with its validation sections replaced (module docstring). Raises ValueError when `own` is not an
    evaluation of this card's model."""
    unc, ood = card["uncertainty"], card["ood"]
    if abs(own["variance_threshold"] - unc["region_threshold"]) > THRESHOLD_TOLERANCE:
        raise ValueError(f"--own has variance threshold {own['variance_threshold']:.6g}, the card "
                         f"{unc['region_threshold']:.6g}: not an evaluation of this model")
    if abs(own["ood_threshold"] - ood["threshold"]) > 1e-4:
        raise ValueError(f"--own has OOD threshold {own['ood_threshold']:.6g}, the card {ood['threshold']:.6g}")
    out = json.loads(json.dumps(card))
    out["version"] = version
    v = out["validation"]
    v["this_model"] = lopo_table(own)
    v["leave_one_patient_out"] = {name: lopo_table(r) for name, r in lopo.items()}
    v["flags"] = {"rule": FLAG_RULE, "leave_one_patient_out": flag_summary(list(lopo.values())),
                  "this_model_validation_slabs": flag_summary([own])}
    if lopo_recipe:
        out["training"]["lopo_recipe"] = lopo_recipe
    out["notes"] = f"{note} (Before: {card.get('notes', '')})" if card.get("notes") else note
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--own", type=Path, required=True)
    ap.add_argument("--lopo", type=Path, nargs="+", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--note", required=True)
    ap.add_argument("--lopo-recipe")
    args = ap.parse_args(argv)
    path = args.model / "model.json"
    card = json.loads(path.read_text())
    for key, section in (("weights", card.get("weights") or {}), ("ood", card["ood"])):
        name = section.get("file") or (key == "weights" and "weights.safetensors")
        if section.get("sha256") and sha256_of(args.model / name) != section["sha256"]:
            print(f"error: {args.model / name} does not match the card's sha256", file=sys.stderr)
            return 2
    own = json.loads((args.own / "result.json").read_text())
    lopo = {d.name: json.loads((d / "result.json").read_text()) for d in args.lopo}
    try:
        new = refreshed(card, own, lopo, args.version, args.note, args.lopo_recipe)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    path.write_text(json.dumps(new, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({"wrote": str(path), "version": args.version, "flags": new["validation"]["flags"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
