"""The tables `uqseg batch` writes: one row per case (`cases/`) and, per task, a second table at its natural grain.

`cases` (CASE_SCHEMA), one row per input: `case_id`, `input_path`, `input_sha256`, `task`, `model_id`,
`model_version`, `model_sha256` (of the weights), the settings `samples` (null: the task's default), `seed`, `fast`;
the result `image_uncertainty` (the task's own definition and units, as in summary.json), `ood`, `multimodal`,
`flags` (summary.json's list of reasons); `status` (`ok` or `error`) and `error` (the one-line reason, as
`uqseg predict` prints it; null when ok); `device`, `worker` (host:pid of the replica), the timings
`load_input_ms`, `predict_ms` (prediction and the summary, or with --per-case-files also writing the files) and
`finished_at` (UTC); `summary_json`: the task's whole summary.json entry set (without `files`) as JSON text.

The second table (DETAIL_TABLES), each row carrying `case_id` and `input_sha256`:
- cxr-landmarks → `nodes`: `node, organ, mean_x, mean_y, std_x, std_y, raw_std_x, raw_std_y` — 120 rows per case,
  the CheXmask-U node columns (std_* calibrated per node, raw_std_* the MC std), exactly the rows of the case's
  landmarks.csv (input pixels);
- mammo-pectoral → `rows`: `row, mean_col, std_col, multimodal` — one per muscle row, exactly boundary.csv;
- mammo-breast → `classes`: `class` (breast, pectoral), `area_mm2`, `mean_class_variance` (the class probability's
  MC-dropout variance averaged over the tissue pixels; null with --fast) — two rows per case: the per-pixel maps
  themselves are per-case files (--per-case-files), a table row per pixel would dwarf the images;
- ct-organs → `organs`: `organ, volume_ml, mean_variance, mean_entropy_nats` — summary.json's `organs`.
The numbers are those `uqseg predict` writes (the same functions, the same rounding), so the tables and a predict
output folder of the same images agree exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

import pyarrow as pa

CASES = "cases"
CASE_SCHEMA = pa.schema([
    ("case_id", pa.string()), ("input_path", pa.string()), ("input_sha256", pa.string()), ("task", pa.string()),
    ("model_id", pa.string()), ("model_version", pa.string()), ("model_sha256", pa.string()),
    ("samples", pa.int32()), ("seed", pa.int64()), ("fast", pa.bool_()),
    ("image_uncertainty", pa.float64()), ("ood", pa.bool_()), ("multimodal", pa.bool_()),
    ("flags", pa.list_(pa.string())), ("status", pa.string()), ("error", pa.string()),
    ("device", pa.string()), ("worker", pa.string()), ("load_input_ms", pa.float64()), ("predict_ms", pa.float64()),
    ("finished_at", pa.timestamp("ms", tz="UTC")), ("summary_json", pa.string()),
])
KEY_COLUMNS = ("input_sha256", "input_path", "model_id", "model_version", "samples", "seed", "fast")
#: what a replica returns per case: the case row plus its detail rows as JSON text (split by the driver)
REPLICA_SCHEMA = CASE_SCHEMA.append(pa.field("details_json", pa.string()))


@dataclass(frozen=True)
class DetailTable:
    """A task's second table: folder name, columns (after case_id, input_sha256) and the function giving its rows
    for one predicted case (`CaseResult`, the task's summary) as tuples in column order."""

    name: str
    fields: list
    rows: Callable

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([("case_id", pa.string()), ("input_sha256", pa.string())] + self.fields)


def _cxr_nodes(result, summary) -> list[tuple]:
    from uqseg.tasks.cxr_landmarks import landmark_rows

    return landmark_rows(result.prediction)


def _pectoral_rows(result, summary) -> list[tuple]:
    from uqseg.tasks.mammo_pectoral import boundary_rows

    return [(r, m, s, bool(f)) for r, m, s, f in boundary_rows(result.prediction)]


def _breast_classes(result, summary) -> list[tuple]:
    variances = summary.get("mean_class_variance") or {}
    return [(name, summary.get(f"{name}_area_mm2"), variances.get(name)) for name in ("breast", "pectoral")]


def _ct_organs(result, summary) -> list[tuple]:
    return [(organ, v.get("volume_ml"), v.get("mean_variance"), v.get("mean_entropy_nats"))
            for organ, v in summary.get("organs", {}).items()]


DETAIL_TABLES = {
    "cxr-landmarks": DetailTable("nodes", [("node", pa.int16()), ("organ", pa.string()), ("mean_x", pa.float64()),
                                           ("mean_y", pa.float64()), ("std_x", pa.float64()),
                                           ("std_y", pa.float64()), ("raw_std_x", pa.float64()),
                                           ("raw_std_y", pa.float64())], _cxr_nodes),
    "mammo-pectoral": DetailTable("rows", [("row", pa.int32()), ("mean_col", pa.float64()), ("std_col", pa.float64()),
                                           ("multimodal", pa.bool_())], _pectoral_rows),
    "mammo-breast": DetailTable("classes", [("class", pa.string()), ("area_mm2", pa.float64()),
                                            ("mean_class_variance", pa.float64())], _breast_classes),
    "ct-organs": DetailTable("organs", [("organ", pa.string()), ("volume_ml", pa.float64()),
                                        ("mean_variance", pa.float64()), ("mean_entropy_nats", pa.float64())],
                             _ct_organs),
}


def case_row(case, task_id: str, card, settings: dict, summary: dict | None, error: str | None, *, device: str,
             worker: str, load_input_ms: float | None, predict_ms: float | None, finished_at,
             details: list | None = None) -> dict:
    """One row of REPLICA_SCHEMA for `case` (`manifest.BatchCase`): from the task's summary, or from the error line."""
    s = summary or {}
    u = s.get("image_uncertainty")
    return {
        "case_id": case["case_id"], "input_path": case["input_path"], "input_sha256": case["sha256"],
        "task": task_id, "model_id": card.id, "model_version": card.version, "model_sha256": card.sha256,
        "samples": settings["samples"], "seed": settings["seed"], "fast": settings["fast"],
        "image_uncertainty": None if u is None else float(u),
        "ood": None if summary is None else bool(s.get("ood")),
        "multimodal": None if summary is None else bool(s.get("multimodal")),
        "flags": None if summary is None else list(s.get("flags", [])),
        "status": "error" if error else "ok", "error": error,
        "device": device, "worker": worker, "load_input_ms": load_input_ms, "predict_ms": predict_ms,
        "finished_at": finished_at,
        "summary_json": None if summary is None else json.dumps({k: v for k, v in s.items() if k != "files"}),
        "details_json": json.dumps(details or []),
    }


def split_replica_batch(batch: pa.Table, task_id: str) -> tuple[pa.Table, pa.Table]:
    """A batch of REPLICA_SCHEMA rows → (the `cases` rows, the detail table's rows)."""
    detail = DETAIL_TABLES[task_id]
    ids, shas, details = (batch.column(c).to_pylist() for c in ("case_id", "input_sha256", "details_json"))
    rows = [(cid, sha, *r) for cid, sha, text in zip(ids, shas, details) for r in json.loads(text)]
    columns = list(zip(*rows)) if rows else [[] for _ in detail.schema]
    detail_rows = pa.Table.from_arrays([pa.array(list(c), type=f.type) for c, f in zip(columns, detail.schema)],
                                       schema=detail.schema)
    return batch.select(CASE_SCHEMA.names).cast(CASE_SCHEMA), detail_rows
