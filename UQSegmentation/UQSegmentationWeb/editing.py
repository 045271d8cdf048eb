"""Two reviewers on one folder: who is editing which case, and refusing a save that would overwrite someone's work.

Edit marks. While a reviewer has a case open, the server holding it keeps a mark file
``<case folder's parent>/.review/<case>/<holder>.json`` = {"holder": this server's id, "who": the reviewer's name,
"since" (UTC ISO 8601), "beat": time.time() of the last refresh} — one file per reviewer, so two reviewers of the
same case never overwrite each other's mark. Every server on the folder reads the marks: a case with a mark of
another holder refreshed less than `STALE_S` seconds ago is shown "being edited by <who>" in the queue and on the
case's page (opening it still works: reading is never blocked). A server refreshes its
mark every `BEAT_S` seconds and removes it when the reviewer opens another case or the server stops; a crashed
server's mark goes stale by itself.

Save check. When a case is opened the server notes the ``saved`` time of the case's provenance record
(corrections/corrections/<case>.json; None when never saved). Saving first takes the folder lock
(`uqseg.io.outdir.folder_lock`, so two saves never interleave), then compares: if the record's ``saved`` changed
since the case was opened, someone else saved it in between and the save is REFUSED with a message naming when —
the reviewer reopens the case to see that work. Otherwise the save goes ahead (atomically, `uqseg.correction.save`)
and its new ``saved`` becomes the reference for the next save.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

STALE_S = 45.0
BEAT_S = 10.0
MARKS = ".review"


class SaveRefused(RuntimeError):
    """The case changed on disk since it was opened (message: what happened, for the page)."""


def new_holder() -> str:
    """An id for this server (host, process, random part)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def marks_folder(case_dir: Path) -> Path:
    case_dir = Path(case_dir)
    return case_dir.parent / MARKS / case_dir.name


def write_mark(case_dir: Path, holder: str, who: str, since: str | None = None) -> None:
    """Create or refresh this holder's mark on a case (atomically: temp file + rename)."""
    folder = marks_folder(case_dir)
    folder.mkdir(parents=True, exist_ok=True)
    data = {"holder": holder, "who": who, "since": since or _now(), "beat": time.time()}
    path = folder / f"{holder}.json"
    tmp = folder / f".{holder}.tmp"
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def live_marks(case_dir: Path) -> list[dict]:
    """The marks of a case refreshed less than STALE_S seconds ago."""
    marks = []
    try:
        paths = sorted(marks_folder(case_dir).glob("*.json"))
    except OSError:
        return []
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and time.time() - float(data.get("beat", 0)) <= STALE_S:
            marks.append(data)
    return marks


def held_by_others(case_dir: Path, holder: str) -> list[str]:
    """Who else is editing the case (names, from their live marks)."""
    return [m.get("who") or "someone" for m in live_marks(case_dir) if m.get("holder") != holder]


def remove_mark(case_dir: Path, holder: str) -> None:
    """Remove this holder's mark (other reviewers' marks are left alone)."""
    with contextlib.suppress(OSError):
        (marks_folder(case_dir) / f"{holder}.json").unlink()


def record_saved_time(case_dir: Path, case: str) -> str | None:
    """The ``saved`` time of the case's provenance record, None when it was never saved."""
    path = Path(case_dir).parent / "corrections" / "corrections" / f"{case}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("saved")
    except (OSError, ValueError, AttributeError):
        return None


@contextlib.contextmanager
def checked_save(case_dir: Path, case: str, opened_saved: str | None):
    """Hold the folder lock and refuse (`SaveRefused`) when the case was saved by someone else since it was
    opened; the body writes the files."""
    from uqseg.io.outdir import folder_lock

    with folder_lock(Path(case_dir).parent):
        now = record_saved_time(case_dir, case)
        if now != opened_saved:
            raise SaveRefused(f"{case} was saved by someone else at {now} after you opened it; nothing was written "
                              "— open the case again to see their corrections")
        yield


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
