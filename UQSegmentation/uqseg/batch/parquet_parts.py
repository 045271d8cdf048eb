"""The output folder of `uqseg batch`: partitioned Parquet tables written atomically, and the done-set of a rerun.

Layout of DIR:
    DIR/cases/part-<time>-<pid>-<n>.parquet      one row per case (`uqseg.batch.tables.CASE_SCHEMA`)
    DIR/<detail>/part-<same name>.parquet         the task's second table (`nodes`, `rows`, `classes`, `organs`)
    DIR/.uqseg-batch.lock                         held by the run writing into DIR (a second run is refused)
A researcher loads a table in one line: `pandas.read_parquet("DIR/cases")` (or `pyarrow.dataset`, Spark, DuckDB
`read_parquet('DIR/cases/*.parquet')`); names starting with '.' or '_' are ignored by those readers.

Atomicity and exactness: every file is written under a hidden temporary name (`.part-….parquet.tmp`), flushed to
disk and renamed into place. A part's detail file is renamed first and its `cases` file last, so the `cases` file
commits the part: at the start of every run, temporary files and detail files without their `cases` file (a kill
between the two renames) are removed. The done-set is read from the committed `cases` rows, keyed by the input
(sha256; the path for an unreadable input) + model id + model version + the settings (samples, seed, fast): a rerun
of the same command skips those cases and processes the rest; a row is never written twice, whatever was killed
(the driver, a replica, a node).
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from uqseg.batch.tables import CASE_SCHEMA, CASES, DETAIL_TABLES
from uqseg.io.outdir import OutputError, check_output_folder

LOCK_NAME = ".uqseg-batch.lock"
TMP_SUFFIX = ".tmp"


def done_key(input_sha256, input_path, model_id, model_version, samples, seed, fast) -> tuple:
    """What identifies a finished case (module docstring)."""
    return (input_sha256 or f"path:{input_path}", model_id, model_version,
            None if samples is None else int(samples), int(seed), bool(fast))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomically(table: pa.Table, dest: Path) -> None:
    """`table` as Parquet at `dest`: written under a hidden temporary name, flushed, renamed into place."""
    tmp = dest.parent / f".{dest.name}{TMP_SUFFIX}"
    try:
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh, compression="zstd")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(dest.parent)


class BatchOutput:
    """DIR for one run of task `task_id`: `open()` (lock, clean up), `done_keys()`, `write_part(...)`, `close()`."""

    def __init__(self, out: str | os.PathLike, task_id: str, inputs=()):
        self.out = Path(out)
        self.detail = DETAIL_TABLES[task_id]
        self.inputs = list(inputs)
        self._lock_fd: int | None = None
        self._counter = itertools.count()
        self.removed: list[str] = []

    @property
    def cases_dir(self) -> Path:
        return self.out / CASES

    @property
    def detail_dir(self) -> Path:
        return self.out / self.detail.name

    def open(self) -> "BatchOutput":
        check_output_folder(self.out, self.inputs)  # OutputError: unusable folder, before any work
        self._take_lock()
        self.cases_dir.mkdir(exist_ok=True)
        self.detail_dir.mkdir(exist_ok=True)
        committed = {p.name for p in self.cases_dir.glob("part-*.parquet")}
        for folder in (self.cases_dir, self.detail_dir):
            for tmp in folder.glob(f".part-*{TMP_SUFFIX}"):
                tmp.unlink(missing_ok=True)
                self.removed.append(str(tmp))
        for orphan in self.detail_dir.glob("part-*.parquet"):
            if orphan.name not in committed:
                orphan.unlink(missing_ok=True)
                self.removed.append(str(orphan))
        return self

    def _take_lock(self) -> None:
        path = self.out / LOCK_NAME
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o666)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no lock, one run per folder is the user's rule there
            self._lock_fd = fd
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise OutputError(self.out, f"another uqseg batch (pid {holder}) is writing into it; wait for it to end "
                                        "or give another folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def close(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # releases the flock

    def read_cases(self, columns=None) -> pa.Table:
        """The committed `cases` rows (an empty table when there are none)."""
        parts = sorted(self.cases_dir.glob("part-*.parquet"))
        if not parts:
            return CASE_SCHEMA.empty_table() if columns is None else CASE_SCHEMA.empty_table().select(columns)
        return pa.concat_tables([pq.read_table(p, columns=columns) for p in parts])

    def done_keys(self) -> set:
        t = self.read_cases(["input_sha256", "input_path", "model_id", "model_version", "samples", "seed", "fast"])
        cols = [t.column(i).to_pylist() for i in range(t.num_columns)]
        return {done_key(*row) for row in zip(*cols)}

    def write_part(self, cases: pa.Table, details: pa.Table) -> Path:
        """One part: the detail rows, then (committing it) the case rows. Returns the `cases` file."""
        name = f"part-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}-{next(self._counter):05d}.parquet"
        write_atomically(details, self.detail_dir / name)
        write_atomically(cases, self.cases_dir / name)
        return self.cases_dir / name
