"""Write several files as one unit: either all of them are replaced, or none is.

`uqseg.io.write` makes each single file atomic (temporary file + `os.replace`). A corrected case is several files
(a label, a boundary table, the provenance record), and a failure between two of them must not leave a new label
beside an old record. `FileSet` does it in two phases:

1. stage — every file is written completely to a hidden sibling ``.<name>.<token>.staged`` of its destination
   (the writer gets that path; the io.write writers are themselves atomic, so a staged file is whole or absent).
   If any writer fails, every staged file is deleted and no destination has changed.
2. commit — the staged files are renamed over their destinations in the order they were added (put the record
   LAST). An existing destination is first hard-linked (or copied) to ``.<name>.<token>.old``; if a rename fails,
   the destinations already replaced are restored from those backups (or removed when they did not exist before),
   so the folder again holds exactly the old files. Backups are deleted after a successful commit.
A process killed in the middle of phase 2 (not an exception) can leave some files new and the record old; the
record stores the sha256 of every file it describes, so `uqseg.correction.save.verify_record` detects that.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
from pathlib import Path
from typing import Callable


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class FileSet:
    """Stage files with `add(dest, writer)`, then `commit()`; `abort()` (or an exception inside a ``with`` block)
    deletes what was staged. writer(path) must write the complete file to `path`."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(4)
        self._staged: list[tuple[Path, Path]] = []  # (staged, destination)
        self.committed = False

    def add(self, dest: str | os.PathLike, writer: Callable[[Path], object]) -> Path:
        dest = Path(dest)
        if any(d == dest for _, d in self._staged):
            raise ValueError(f"{dest} is already part of this file set")
        dest.parent.mkdir(parents=True, exist_ok=True)
        staged = dest.with_name(f".{dest.name}.{self.token}.staged")
        try:
            writer(staged)
            if not staged.is_file():
                raise OSError(f"the writer for {dest} produced no file")
        except BaseException:
            with contextlib.suppress(OSError):
                staged.unlink()
            self.abort()
            raise
        self._staged.append((staged, dest))
        return staged

    def abort(self) -> None:
        for staged, _ in self._staged:
            with contextlib.suppress(OSError):
                staged.unlink()
        self._staged.clear()

    def commit(self) -> dict[Path, str]:
        """Rename every staged file over its destination (rolling back on failure). Returns {destination: sha256}."""
        digests: dict[Path, str] = {}
        done: list[tuple[Path, Path | None]] = []  # replaced destinations and the backups of their old files
        pending: Path | None = None  # the backup made for the rename in progress
        try:
            for staged, dest in self._staged:
                pending = None
                digests[dest] = sha256_file(staged)
                if os.path.lexists(dest):
                    pending = dest.with_name(f".{dest.name}.{self.token}.old")
                    _keep_copy(dest, pending)
                os.replace(staged, dest)
                done.append((dest, pending))
                pending = None
        except BaseException:
            if pending is not None:  # the failed rename replaced nothing: its backup is not needed
                with contextlib.suppress(OSError):
                    os.unlink(pending)
            for dest, backup in reversed(done):
                with contextlib.suppress(OSError):
                    if backup is not None:
                        os.replace(backup, dest)
                    else:
                        os.unlink(dest)
            self.abort()
            raise
        for _, backup in done:
            if backup is not None:
                with contextlib.suppress(OSError):
                    os.unlink(backup)
        self._staged.clear()
        self.committed = True
        return digests

    def __enter__(self) -> "FileSet":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or not self.committed:
            self.abort()


def _keep_copy(path: Path, backup: Path) -> None:
    """A backup of `path` that survives `path` being replaced: a hard link, else a byte copy."""
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a file: it cannot be replaced by a file")
    try:
        os.link(path, backup)
    except OSError:
        shutil.copy2(path, backup)
