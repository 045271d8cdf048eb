"""Compare `uqseg batch` tables with a `uqseg predict` output folder (or with another batch) of the same images.

    python Testing/batch_vs_predict.py --task T BATCH_DIR PREDICT_DIR      rows vs summary.json + the task's CSV
    python Testing/batch_vs_predict.py --task T BATCH_DIR OTHER_BATCH_DIR --batches   table vs table

Against predict: for every case of PREDICT_DIR, the case row's image_uncertainty, ood, multimodal and flags must
equal summary.json's, its summary_json every entry summary.json has (timings — `inference_ms` — excepted), and the
detail rows the task's CSV (cxr-landmarks: landmarks.csv; mammo-pectoral: boundary.csv) or summary.json entries
(mammo-breast: areas and class variances; ct-organs: organs). Between two batches: the same cases, each once, with
equal detail rows and equal results. Prints the counts and every difference; exit status 1 when there is one.
(`uqseg predict` must have run with the replicas' torch thread count, e.g. OMP_NUM_THREADS=1 for the default
--cpus-per-worker 1: another count adds in another order and can change a std in its last decimal.)
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import pandas as pd

DETAIL = {"cxr-landmarks": "nodes", "mammo-pectoral": "rows", "mammo-breast": "classes", "ct-organs": "organs"}
KEYS = {"nodes": ["node"], "rows": ["row"], "classes": ["class"], "organs": ["organ"]}
TIMING_KEYS = {"inference_ms"}


def expected_details(task: str, case_dir: Path, summary: dict) -> list:
    if task == "cxr-landmarks":
        with open(case_dir / "landmarks.csv", newline="") as fh:
            return [[int(r["node"]), r["organ"], float(r["mean_x"]), float(r["mean_y"]), float(r["std_x"]),
                     float(r["std_y"])] for r in csv.DictReader(fh)]
    if task == "mammo-pectoral":
        with open(case_dir / "boundary.csv", newline="") as fh:
            return [[int(r["row"]), float(r["mean_col"]), float(r["std_col"]), bool(int(r["multimodal"]))]
                    for r in csv.DictReader(fh)]
    if task == "mammo-breast":
        var = summary.get("mean_class_variance") or {}
        return [[c, summary[f"{c}_area_mm2"], var.get(c)] for c in ("breast", "pectoral")]
    return [[o, v["volume_ml"], v["mean_variance"], v["mean_entropy_nats"]] for o, v in summary["organs"].items()]


def rows_of(details: pd.DataFrame, case_id: str, key: list) -> list:
    d = details[details.case_id == case_id].sort_values(key) if key in (["node"], ["row"]) else \
        details[details.case_id == case_id]
    values = d.drop(columns=["case_id", "input_sha256"]).astype(object).where(d.notna(), None).values.tolist()
    return values


def against_predict(task: str, batch: Path, predict: Path) -> list:
    cases = pd.read_parquet(batch / "cases").set_index("case_id")
    details = pd.read_parquet(batch / DETAIL[task])
    problems, n_cases, n_rows = [], 0, 0
    for summary_path in sorted(predict.glob("*/summary.json")):
        summary = json.loads(summary_path.read_text())
        case_id = summary["case"]
        if case_id not in cases.index:
            problems.append(f"{case_id}: no row in the batch tables")
            continue
        row = cases.loc[case_id]
        got = (row["image_uncertainty"], bool(row["ood"]), bool(row["multimodal"]), list(row["flags"]))
        want = (summary["image_uncertainty"], summary["ood"], bool(summary.get("multimodal")), summary["flags"])
        if got != want:
            problems.append(f"{case_id}: case row {got} != summary.json {want}")
        task_summary = json.loads(row["summary_json"])
        for k, v in task_summary.items():
            if k not in TIMING_KEYS and summary.get(k) != v:
                problems.append(f"{case_id}: summary entry {k}: {v!r} != {summary.get(k)!r}")
        want_rows = expected_details(task, summary_path.parent, summary)
        got_rows = rows_of(details, case_id, KEYS[DETAIL[task]])
        if got_rows != want_rows:
            problems.append(f"{case_id}: {DETAIL[task]} rows differ ({len(got_rows)} vs {len(want_rows)} rows)")
        n_cases, n_rows = n_cases + 1, n_rows + len(want_rows)
    print(f"{task}: {n_cases} cases and {n_rows} {DETAIL[task]} rows compared with {predict}: "
          f"{len(problems)} differences")
    return problems


def between_batches(task: str, a: Path, b: Path) -> list:
    problems = []
    ca, cb = pd.read_parquet(a / "cases"), pd.read_parquet(b / "cases")
    da, db = pd.read_parquet(a / DETAIL[task]), pd.read_parquet(b / DETAIL[task])
    key = ["case_id"] + KEYS[DETAIL[task]]
    for name, t, k in (("cases", ca, ["case_id"]), ("cases", cb, ["case_id"]), (DETAIL[task], da, key),
                       (DETAIL[task], db, key)):
        if t.duplicated(k).any():
            problems.append(f"{name}: {int(t.duplicated(k).sum())} duplicated rows")
    if sorted(ca.case_id) != sorted(cb.case_id):
        problems.append("the two batches hold different cases")
    result = ["case_id", "input_sha256", "image_uncertainty", "ood", "multimodal", "status"]
    if not ca[result].sort_values("case_id").reset_index(drop=True).equals(
            cb[result].sort_values("case_id").reset_index(drop=True)):
        problems.append("case results differ")
    sa, sb = (d.sort_values(key).reset_index(drop=True) for d in (da, db))
    if not sa.equals(sb):
        problems.append(f"{DETAIL[task]} tables differ")
    print(f"{task}: {len(ca)} / {len(cb)} cases, {len(da)} / {len(db)} {DETAIL[task]} rows: "
          f"{len(problems)} differences")
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", required=True, choices=sorted(DETAIL))
    ap.add_argument("batch", type=Path)
    ap.add_argument("other", type=Path)
    ap.add_argument("--batches", action="store_true", help="OTHER is another batch output folder")
    args = ap.parse_args(argv)
    problems = (between_batches if args.batches else against_predict)(args.task, args.batch, args.other)
    for p in problems:
        print("  " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
