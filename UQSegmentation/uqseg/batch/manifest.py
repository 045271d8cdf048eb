"""INPUT of `uqseg batch` → the list of cases, each with its case id and the sha256 of its input.

INPUT is one of
- a folder: its image files, as `uqseg predict` collects them (`uqseg.tasks.run.collect_cases`); for the 3-D task
  (ct-organs) each volume file (NIfTI / NRRD / MHA) or sub-folder (a DICOM series) in it is a case, and a folder
  holding only DICOM files is one case;
- a glob (`'data/**/*.png'`, quoted so the shell leaves it alone; `**` recurses);
- a manifest: a `.csv` or `.parquet` file with a `path` column (relative paths are relative to the manifest's folder).

Case ids are the file names without their extension, made safe and unique exactly as `uqseg predict` names its case
folders (`uqseg.tasks.run.unique_names`), over the whole input list in its sorted order, so the same INPUT gives the
same ids in every run
(the table folders' names `cases`, `nodes`, ... are never a case id). The sha256 (of the file; of a DICOM series folder: of its file names and contents, in name
order) is what a rerun recognises a finished case by. An input listed twice (same sha256) is one case: the first
listing counts and the others are reported. A path that cannot be read stays a case (its row says why).
"""

from __future__ import annotations

import csv
import glob
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from uqseg.errors import InputError

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")
PATH_COLUMN = "path"
#: the table folders of DIR (`uqseg.batch.tables`), never a case id
RESERVED_NAMES = ("cases", "nodes", "rows", "classes", "organs")
HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class BatchCase:
    """One case: `case_id` (unique in the run), `input_path` (absolute), `sha256` (hex; None when unreadable) and,
    for an unreadable input, `read_error` (the reason)."""

    case_id: str
    input_path: str
    sha256: str | None
    read_error: str | None = None

    @property
    def key(self) -> str:
        """What the done-set knows this input by: its sha256, or its path when it could not be read."""
        return self.sha256 or f"path:{self.input_path}"


def is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def read_manifest(path: Path) -> list[Path]:
    """The `path` column of a CSV or Parquet manifest, relative paths resolved against the manifest's folder."""
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            if PATH_COLUMN not in table.column_names:
                raise InputError(path, f"has no '{PATH_COLUMN}' column (columns: {', '.join(table.column_names)})")
            values = table.column(PATH_COLUMN).to_pylist()
        else:
            with open(path, newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                if PATH_COLUMN not in (reader.fieldnames or []):
                    raise InputError(path, f"has no '{PATH_COLUMN}' column (header: {reader.fieldnames})")
                values = [row[PATH_COLUMN] for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(path, f"cannot be read as a manifest ({e})") from None
    except Exception as e:  # pyarrow's own errors for a file that is not Parquet
        if isinstance(e, InputError):
            raise
        raise InputError(path, f"cannot be read as a Parquet manifest ({type(e).__name__}: {e})") from None
    paths = [Path(v) if Path(v).is_absolute() else path.parent / v for v in values if v not in (None, "")]
    if not paths:
        raise InputError(path, f"lists no inputs in its '{PATH_COLUMN}' column")
    return paths


def folder_cases(folder: Path, ndim: int) -> list[Path]:
    """The cases in a folder: `collect_cases` for 2-D tasks; volumes and series sub-folders for the 3-D task."""
    from uqseg.tasks.run import collect_cases

    if ndim == 2:
        return collect_cases([str(folder)], ndim)
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    cases = [p for p in entries if p.is_dir() or p.name.lower().endswith(VOLUME_SUFFIXES)]
    if cases:
        return cases
    if any(p.is_file() for p in entries):
        return [folder]  # a folder of DICOM files: one series
    raise InputError(folder, "is a folder with no volumes or DICOM series in it")


def input_paths(text: str, ndim: int) -> list[Path]:
    """INPUT (module docstring) → the input paths, sorted for a folder or a glob, in manifest order otherwise."""
    path = Path(text)
    if path.is_file() and path.suffix.lower() in (".csv", ".parquet"):
        return read_manifest(path)
    if path.is_dir():
        return folder_cases(path, ndim)
    if is_glob(text):
        found = sorted(Path(p) for p in glob.glob(text, recursive=True))
        found = [p for p in found if p.is_file() or (ndim == 3 and p.is_dir())]
        if not found:
            raise InputError(text, "matches no files")
        return found
    if path.exists():
        return [path]
    raise InputError(path, "does not exist (INPUT is a folder, a glob, or a .csv / .parquet manifest)")


def sha256_of(path: Path) -> str:
    """sha256 of a file, or of a folder's files (relative names and contents, in name order)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(os.fsencode(f.relative_to(path)) + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(HASH_CHUNK), b""):
                h.update(chunk)
    return h.hexdigest()


def _hash_or_reason(path: Path) -> tuple[str | None, str | None]:
    try:
        return sha256_of(path), None
    except OSError as e:
        return None, f"cannot be read ({e.strerror or e})"


def collect(text: str, ndim: int, threads: int = 8) -> tuple[list[BatchCase], list[str]]:
    """The cases of INPUT `text` (module docstring) and the notes on inputs listed more than once."""
    from uqseg.io.outdir import unique_case_names
    from uqseg.tasks.run import case_name

    paths = [p.absolute() for p in input_paths(text, ndim)]
    # the table folders keep their names: a case called "cases" becomes "cases_2" (as a duplicate name would)
    ids = unique_case_names(list(RESERVED_NAMES) + [case_name(p) for p in paths])[len(RESERVED_NAMES):]
    with ThreadPoolExecutor(max_workers=threads) as pool:  # hashlib releases the GIL: reading overlaps hashing
        hashes = list(pool.map(_hash_or_reason, paths))
    cases, seen, notes = [], {}, []
    for path, case_id, (digest, reason) in zip(paths, ids, hashes):
        if digest is not None and digest in seen:
            notes.append(f"note: {path}: same content (sha256) as {seen[digest]}: processed once, as that case")
            continue
        if digest is not None:
            seen[digest] = path
        cases.append(BatchCase(case_id, str(path), digest, reason))
    return cases, notes
