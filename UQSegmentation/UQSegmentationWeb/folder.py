"""The review folder: the cases of a `uqseg predict` output folder, in queue order, with what the review did to them.

A folder DIR is one of
- a batch: DIR/queue.csv (`uqseg.tasks.run.write_queue`: most uncertain first) and DIR/<case>/summary.json — the
  cases are read in the file's order (`UQSegmentationLib.review.batch_queue.read_queue`);
- case folders without queue.csv (a run of one case, or several runs into one folder): every DIR/<case>/ holding a
  summary.json, ordered as write_queue orders them (image_uncertainty, highest first; cases without one last);
- one case folder (DIR/summary.json).

Per case the page shows: rank (1 = most uncertain), case, task, image_uncertainty, flags (multimodal, ood), and the
review status: "saved" when DIR/corrections/corrections/<case>.json exists (the provenance record that
`UQSegmentationLib.review.save` writes beside the results), "being edited by <who>" when another reviewer holds the
case (`editing.py`), else "to review".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


class FolderError(ValueError):
    """DIR cannot be reviewed (message: the reason, for `error: DIR: <reason>`)."""


@dataclass
class Case:
    rank: int
    case: str
    case_dir: Path
    task: str
    image_uncertainty: float | None
    flags: tuple = field(default_factory=tuple)


def _summary(case_dir: Path) -> dict | None:
    try:
        data = json.loads((case_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("task") else None


def _flags(summary: dict) -> tuple:
    return tuple(k for k in ("multimodal", "ood") if summary.get(k))


def _value(summary: dict) -> float | None:
    u = summary.get("image_uncertainty")
    return float(u) if isinstance(u, (int, float)) and u == u else None


def read_cases(folder) -> list[Case]:
    """The cases of `folder` in queue order (module docstring); raises FolderError when there is none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FolderError("no such folder" if not folder.exists() else "not a folder")
    if (folder / "summary.json").is_file():
        s = _summary(folder)
        if s is None:
            raise FolderError("summary.json is unreadable or names no task")
        return [Case(1, s.get("case") or folder.name, folder, s["task"], _value(s), _flags(s))]
    cases: list[Case] = []
    if (folder / "queue.csv").is_file():
        from UQSegmentationLib.review.batch_queue import read_queue

        try:
            entries = read_queue(folder)
        except (OSError, ValueError) as e:
            raise FolderError(f"queue.csv cannot be read ({e})") from None
        for entry in entries:
            s = _summary(entry.case_dir) if entry.exists else None
            if s is not None:
                cases.append(Case(len(cases) + 1, entry.case, entry.case_dir, s["task"], _value(s), _flags(s)))
    listed = {c.case for c in cases}
    rest = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        s = _summary(sub) if sub.name not in listed else None
        if s is not None:
            rest.append(Case(0, s.get("case") or sub.name, sub, s["task"], _value(s), _flags(s)))
    rest.sort(key=lambda c: (c.image_uncertainty is None, -(c.image_uncertainty or 0.0)))
    for c in rest:
        c.rank = len(cases) + 1
        cases.append(c)
    if not cases:
        raise FolderError("holds no results of `uqseg predict` (no queue.csv, no <case>/summary.json)")
    return cases


def corrections_root(folder) -> Path:
    """Where saves go: DIR/corrections (as `UQSegmentationLib.review.save.corrections_root` for a case of DIR)."""
    return Path(folder) / "corrections"


def saved_record(case: Case) -> dict | None:
    """The provenance record of the case's last save (corrections/corrections/<case>.json), or None."""
    path = case.case_dir.parent / "corrections" / "corrections" / f"{case.case}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
