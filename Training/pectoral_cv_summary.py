"""Pool the held-out numbers of a mammo-pectoral cross-validation (Training/pectoral_cv.sh) per setting and pick one.

    python Training/pectoral_cv_summary.py runs/pcv --out runs/pcv/summary.json

For each folder `<setting>_f<fold>/` with `eval/evaluation.json` (and, when present, `eval_tta/evaluation.json`,
the same fold with test-time augmentation) the issue-19 numbers in input pixels are pooled over the held-out rows of
all folds (each fold's row mean weighted by its row count): `mae_input_px_all_rows` (every reference muscle row, a
missed row at the image edge), `within_2sigma_share`, the grid MAE and the MAE per third of the muscle's rows. A
setting is complete when all folds have an evaluation; the chosen setting is the complete single-pass one with the
lowest pooled `mae_input_px_all_rows` (ties: the first in sorted order); test-time augmentation is reported as its
gain over the same setting's single pass, with its cost in network passes. Nothing here reads the validation split.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

from common import print_json

POOLED = ("mae_input_px_all_rows", "within_2sigma_share")
TTA_PASSES = 3  # evaluate_pectoral.py --tta-gammas 0.8,1,1.25 (pectoral_cv.sh)
RULE = ("lowest pooled held-out mae_input_px_all_rows among the single-pass settings evaluated on every fold; "
        "test-time augmentation is reported beside each (its gain in input px for 3 network passes instead of one) "
        "and not part of the choice")


def fold_results(root: Path, eval_dir: str = "eval") -> dict[str, dict[int, dict]]:
    """{setting: {fold: evaluation.json}} for every `<setting>_f<fold>/<eval_dir>/evaluation.json` under root."""
    out: dict[str, dict[int, dict]] = defaultdict(dict)
    for path in sorted(Path(root).glob(f"*_f*/{eval_dir}/evaluation.json")):
        m = re.fullmatch(r"(.+)_f(\d+)", path.parent.parent.name)
        if m:
            out[m.group(1)][int(m.group(2))] = json.loads(path.read_text())
    return dict(out)


def pool(folds: dict[int, dict]) -> dict:
    """Row-weighted means over the folds' held-out rows, and the per-fold values."""
    n_all = sum(f["all_rows"] for f in folds.values())
    n_grid = sum(f["rows"] for f in folds.values())
    res = {k: sum(f[k] * f["all_rows"] for f in folds.values()) / n_all for k in POOLED}
    res["mae_grid"] = sum(f["mae"] * f["rows"] for f in folds.values()) / n_grid
    res["rows"], res["images"] = n_all, sum(f["images"] for f in folds.values())
    if all("all_rows_by_third" in f for f in folds.values()):
        parts = [f["all_rows_by_third"] for f in folds.values()]
        res["mae_input_px_by_third"] = [round(sum(p["mae_input_px"][i] * p["rows"][i] for p in parts)
                                              / sum(p["rows"][i] for p in parts), 3) for i in range(3)]
    res["per_fold_mae_input_px_all_rows"] = {i: round(f["mae_input_px_all_rows"], 3) for i, f in sorted(folds.items())}
    per_image = {k: v for f in folds.values() for k, v in f["mae_input_px_all_rows_per_image"].items()}
    res["worst_images"] = dict(sorted(per_image.items(), key=lambda kv: -kv[1])[:3])
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in res.items()}


def summarise(root: Path, folds: int) -> dict:
    settings = {}
    for eval_dir, suffix in (("eval", ""), ("eval_tta", "+tta")):
        for name, res in fold_results(root, eval_dir).items():
            settings[name + suffix] = {"complete": sorted(res) == list(range(folds)), **pool(res)}
    complete = sorted(k for k, v in settings.items() if v["complete"] and not k.endswith("+tta"))
    chosen = min(complete, key=lambda k: settings[k]["mae_input_px_all_rows"]) if complete else None
    tta = {k[:-4]: {"gain_px": round(settings[k[:-4]]["mae_input_px_all_rows"] - v["mae_input_px_all_rows"], 4),
                    "network_passes": TTA_PASSES}
           for k, v in settings.items() if k.endswith("+tta") and v["complete"] and k[:-4] in settings}
    return {"folds": folds, "settings": settings, "chosen": chosen, "rule": RULE, "test_time_augmentation": tta}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path)
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    print_json(summarise(args.root, args.folds), args.out)


if __name__ == "__main__":
    main()
