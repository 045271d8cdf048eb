"""The batch review queue: DIR/queue.csv of `uqseg predict` (cases ranked by image_uncertainty, highest first) and
stepping through its cases in that order.

queue.csv (`uqseg.tasks.run.write_queue`): columns ``case, image_uncertainty, multimodal, ood, status``; one line per
case, most uncertain first (cases without a value last). Each case's results are in DIR/<case>/ (summary.json
names the input image, `input`, as given to `uqseg predict`: absolute, or relative to where it ran — then it is
looked for relative to DIR too).

`read_queue(path_or_dir)` → [QueueEntry] in the file's order; `CaseQueue` keeps a position (`current`, `next()`,
`previous()`); `open_case(scene, entry)` loads the input volume and the results of one case (replacing that case's
earlier results), as the module's "Next case" does.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

QUEUE_FILE = "queue.csv"


@dataclass(frozen=True)
class QueueEntry:
    rank: int  # 1 = most uncertain
    case: str
    case_dir: Path
    image_uncertainty: float | None
    flags: tuple = ()
    status: str = "ok"

    @property
    def exists(self) -> bool:
        return (self.case_dir / "summary.json").is_file()


def read_queue(path) -> list[QueueEntry]:
    """The cases of a queue.csv (a file, or the folder holding it), in the file's order."""
    path = Path(path)
    if path.is_dir():
        path = path / QUEUE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such queue (uqseg predict writes queue.csv when it processes more "
                                "than one case)")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "case" not in reader.fieldnames:
            raise ValueError(f"{path}: not a queue (no 'case' column)")
        entries = []
        for k, row in enumerate(reader, start=1):
            value = (row.get("image_uncertainty") or "").strip()
            flags = tuple(name for name in ("multimodal", "ood") if (row.get(name) or "0").strip() not in ("", "0"))
            entries.append(QueueEntry(k, row["case"], path.parent / row["case"], float(value) if value else None,
                                      flags, (row.get("status") or "ok").strip() or "ok"))
    return entries


@dataclass
class CaseQueue:
    """A position in a queue; `next()` / `previous()` move it (None at either end) and skip cases without
    results (a case whose prediction failed has no folder)."""

    entries: list
    position: int = -1
    skipped: list = field(default_factory=list)

    @classmethod
    def open(cls, path) -> "CaseQueue":
        return cls(read_queue(path))

    @property
    def current(self) -> QueueEntry | None:
        return self.entries[self.position] if 0 <= self.position < len(self.entries) else None

    def _step(self, step: int) -> QueueEntry | None:
        k = self.position + step
        while 0 <= k < len(self.entries):
            if self.entries[k].exists:
                self.position = k
                return self.entries[k]
            self.skipped.append(self.entries[k].case)
            k += step
        return None

    def next(self) -> QueueEntry | None:
        return self._step(1)

    def previous(self) -> QueueEntry | None:
        return self._step(-1)

    def cases(self):
        """The case folders in queue order (those with results)."""
        for entry in self.entries:
            if entry.exists:
                yield entry.case_dir


def input_path(entry: QueueEntry) -> Path:
    """The input image of a case (summary.json `input`; relative paths also tried against the queue folder)."""
    summary = json.loads((entry.case_dir / "summary.json").read_text(encoding="utf-8"))
    raw = summary.get("input")
    if not raw:
        raise ValueError(f"{entry.case_dir}: summary.json names no input image")
    path = Path(raw)
    for candidate in ([path] if path.is_absolute() else [path, entry.case_dir.parent / path]):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{entry.case}: the input image {raw} is not there any more")


def open_case(scene, entry: QueueEntry):
    """Load a queue case: its input image as a volume node and its results (`load_results`)."""
    from ..input_volume import load_input_volume
    from ..results import load_results

    volume = load_input_volume(scene, input_path(entry), name=entry.case)
    return load_results(scene, entry.case_dir, volume)
