"""The corrected cases of a corrections folder that fine-tuning may use (layout: `uqseg.correction.save`).

A case NAME is usable when ROOT/corrections/NAME.json exists, `verify_record` finds no problem (every file the
record lists is present with the sha256 it records), the record's format is `RECORD_FORMAT`, its task is the task
being fine-tuned, it lists the file of the role that task trains on, and it names its input image. Every other case
is skipped with the reason; nothing about a bad case raises.

The input image is the record's `input`: an absolute path as is, a relative one relative to ROOT (the training data
layout keeps `images/NAME.png` beside `labels/`). Whether it exists is not checked here: loading it is the caller's
job, and a missing or unreadable input image is an error naming the file (`uqseg.finetune.run`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from uqseg.correction.save import RECORD_FORMAT, read_record, record_path, verify_record
from uqseg.correction.transaction import sha256_file


@dataclass(frozen=True)
class CorrectedCase:
    """One verified corrected case: its name, record, the record file's sha256, the input image and the paths of
    the files the record lists (by role, absolute)."""

    name: str
    record: dict
    record_sha256: str
    input_path: Path
    files: dict

    def file(self, role: str) -> Path:
        return self.files[role]


@dataclass(frozen=True)
class SkippedCase:
    name: str
    reason: str


def case_names(root: str | os.PathLike) -> list[str]:
    """Names of the cases that have a record (ROOT/corrections/*.json, hidden staged files excluded), sorted."""
    folder = Path(root) / "corrections"
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.json") if p.is_file() and not p.name.startswith("."))


def resolve_input(root: Path, raw: str) -> Path:
    p = Path(raw).expanduser()
    return p if p.is_absolute() else root / p


def check_case(root: Path, name: str, task: str, role: str) -> CorrectedCase | SkippedCase:
    """The case, or why it cannot be used (module docstring)."""
    try:
        problems = verify_record(root, name)
        record = read_record(root, name)
    except (ValueError, OSError, KeyError, TypeError, AttributeError) as e:  # malformed JSON or record entries
        return SkippedCase(name, f"unreadable record {record_path(root, name)} ({type(e).__name__}: {e})")
    if problems:
        return SkippedCase(name, "record does not verify: " + "; ".join(problems))
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        return SkippedCase(name, f"record format is {record.get('format') if isinstance(record, dict) else None!r}, "
                                 f"expected {RECORD_FORMAT!r}")
    if record.get("task") != task:
        return SkippedCase(name, f"record is for task {record.get('task')!r}, not {task!r}")
    files = record.get("files") or {}
    if role not in files:
        return SkippedCase(name, f"record lists no {role!r} file (it has {sorted(files) or 'none'})")
    if not record.get("input"):
        return SkippedCase(name, "record names no input image (saved without input_path)")
    return CorrectedCase(name, record, sha256_file(record_path(root, name)), resolve_input(root, record["input"]),
                         {r: root / e["path"] for r, e in files.items()})


def collect_cases(root: str | os.PathLike, task: str, role: str) -> tuple[list[CorrectedCase], list[SkippedCase]]:
    """(usable cases, skipped cases with reasons), both in sorted name order."""
    root = Path(root)
    used, skipped = [], []
    for name in case_names(root):
        c = check_case(root, name, task, role)
        (used if isinstance(c, CorrectedCase) else skipped).append(c)
    return used, skipped
