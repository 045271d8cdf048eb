"""The output folder of `uqseg predict`: checked before any work, case folder names that stay inside it, and
per-case staging so that a case folder appears complete or not at all.

Layout of ``--out DIR`` (what the Slicer module reads is unchanged: ``DIR/<case>/summary.json`` and
``DIR/queue.csv``)::

    DIR/<case>/...                    one finished case (all its files + summary.json), moved in by one rename
    DIR/queue.csv                     the review queue, rewritten (atomically) after every finished case
    DIR/chexmask_u.csv                cxr-landmarks only: one row per finished case
    (DIR itself is locked with flock while a run changes anything at its top level; on Windows a short-lived
    DIR/.uqseg.lock file is locked instead)
    DIR/.uqseg-staging-<pid>-<hex>/   a running run's staging folder: the case being computed is written into
                                      <staging>/<case>/ and renamed to DIR/<case> once summary.json is written.
                                      <staging>/.owner.lock is locked by the run for its whole lifetime.

Checks (`check_output_folder`, before the model is loaded): DIR must not be an existing file, must not be on a
pseudo file system (proc, sysfs, devtmpfs, cgroup, ...), must not be an input folder or inside one, and must be
creatable and writable (a probe file is created and removed). Each failure is an `OutputError` with one sentence.

Case names (`unique_case_names`): every name is made safe (no path separators, no ``..``, no leading dots, no
control or Windows-reserved characters, no Windows device names, at most 120 UTF-8 bytes; empty → ``case``) and
unique ignoring case (for Windows and macOS), so no two inputs share a folder; a name that another input's own name
would take is skipped (``x.jpg``, ``x.png``, ``x_2.png`` → ``x``, ``x_3``, ``x_2``). Names of entries of DIR that
are not uqseg result folders (a file, a folder without summary.json, a folder holding an input) are not used, so a
re-run replaces earlier results of the same case but never anything else.

Interruption: an exception (including SIGTERM/SIGINT via `uqseg.interrupts`) removes the case's staging folder; a
normal or interrupted end removes the whole staging folder. SIGKILL (or a power cut) cannot run any clean-up: it
leaves the run's ``.uqseg-staging-*`` folder (the unfinished case, with its ``.*.tmp`` files) and nothing else —
finished cases and queue.csv are complete. The next `uqseg predict` into the same DIR removes it when it starts:
its owner lock is free once the process is gone (the OS drops the locks of a dead process). A staging folder whose
owner is still running is left alone, so two runs can write into one DIR at the same time: each case is moved in
whole, under the folder lock, and queue.csv is merged (it lists the finished cases of both).

Locks are `fcntl.flock` (POSIX, on the folder and on the owner file) or `msvcrt.locking` (Windows). On a file
system without working locks (some network shares) runs still work, but stale staging folders are then not removed
automatically (they are hidden; delete them when no run is writing into DIR).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import time
import unicodedata
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from uqseg import interrupts

__all__ = [
    "OutputError",
    "check_output_folder",
    "safe_case_name",
    "unique_case_names",
    "CaseStaging",
    "folder_lock",
    "remove_stale_staging",
    "os_error_reason",
    "describe_write_failure",
]

LOCK_NAME = ".uqseg.lock"
STAGING_PREFIX = ".uqseg-staging-"
OWNER_LOCK = ".owner.lock"
OLD_PREFIX = ".old-"
#: Files uqseg writes at the top of the output folder (never used as case names).
BATCH_FILES = ("queue.csv", "chexmask_u.csv")
MAX_NAME_BYTES = 120

#: File system types that hold kernel state, not files (Linux names; macOS devfs).
PSEUDO_FS_TYPES = frozenset({
    "proc", "sysfs", "devtmpfs", "devfs", "devpts", "cgroup", "cgroup2", "debugfs", "tracefs", "securityfs",
    "pstore", "bpf", "configfs", "fusectl", "binfmt_misc", "mqueue", "efivarfs", "selinuxfs", "rpc_pipefs", "nsfs",
    "autofs", "hugetlbfs",
})
_PSEUDO_ROOTS = ("/proc", "/sys", "/dev")  # where /proc/self/mountinfo cannot be read (macOS)

_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
_WINDOWS_DEVICES = frozenset({"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
                             | {f"COM{i}" for i in range(1, 10)} | {f"LPT{i}" for i in range(1, 10)})


class OutputError(ValueError):
    """The output folder (or a case folder in it) cannot be used: `path` and a one-sentence `reason`. A ValueError,
    so that callers of `predict` that already report ValueErrors as one line (`uqseg.cli.main`) report it too."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def os_error_reason(e: OSError) -> str:
    """A short reason for a failed file operation (no errno numbers, no repeated path)."""
    code = getattr(e, "errno", None)
    if code == errno.ENOSPC:
        return "no space left on the device"
    if code == getattr(errno, "EDQUOT", -1):
        return "disk quota exceeded"
    if code == errno.EROFS:
        return "read-only file system"
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return e.strerror or str(e) or type(e).__name__


# ------------------------------------------------------------------------------------------------------- checks
def _unescape_mount(s: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def _mounts() -> list[tuple[str, str]] | None:
    """[(mount point, file system type)] from /proc/self/mountinfo (Linux), else None."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    mounts = []
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right.split():
            continue
        mounts.append((_unescape_mount(fields[4]), right.split()[0]))
    return mounts


def _inside(path: str, folder: str) -> bool:
    """`path` is `folder` or lies below it (both absolute; compared as the platform does, e.g. no case on Windows)."""
    p, f = os.path.normcase(path), os.path.normcase(folder)
    prefix = f if f.endswith(os.sep) else f + os.sep
    return p == f or p.startswith(prefix)


def pseudo_file_system(path: str | os.PathLike) -> tuple[str, str] | None:
    """(file system type, mount point) when `path` (resolved) lies on a pseudo file system, else None."""
    if os.name == "nt":
        return None
    real = os.path.realpath(os.fspath(path))
    mounts = _mounts()
    if mounts is None:
        for root in _PSEUDO_ROOTS:
            if _inside(real, root) and os.path.isdir(root):
                return ("devfs" if root == "/dev" else root.strip("/"), root)
        return None
    best = None
    for mp, fstype in mounts:
        if _inside(real, mp) and (best is None or len(mp) > len(best[0])):
            best = (mp, fstype)
    if best is not None and best[1] in PSEUDO_FS_TYPES:
        return best[1], best[0]
    return None


def check_output_folder(out: str | os.PathLike, inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """Refuse an unusable output folder with an `OutputError` before any work; create it (and its parents) when
    missing and check that a file can be written in it. `inputs`: the INPUT arguments (folders among them must
    neither be `out` nor contain it). Returns `out` as a Path."""
    out = Path(out)
    shown = os.fspath(out)
    if os.path.lexists(out) and not out.is_dir():
        if out.is_symlink() and not out.exists():
            raise OutputError(shown, "is a broken link, not a folder")
        what = "an existing file" if out.is_file() else "an existing non-folder (device, pipe or socket)"
        raise OutputError(shown, f"is {what}, not a folder: give a folder for the results")
    pseudo = pseudo_file_system(out)
    if pseudo is not None:
        raise OutputError(shown, f"is on the {pseudo[0]} pseudo file system (mounted at {pseudo[1]}), which holds "
                                 "kernel state, not files: give a folder on a disk")
    real = os.path.realpath(shown)
    for raw in inputs:
        if not os.path.isdir(raw):
            continue
        rin = os.path.realpath(os.fspath(raw))
        if os.path.normcase(real) == os.path.normcase(rin):
            raise OutputError(shown, f"is the input folder {os.fspath(raw)}: the results would be mixed with the "
                                     "images; give another folder")
        if _inside(real, rin):
            raise OutputError(shown, f"is inside the input folder {os.fspath(raw)}: the results would be mixed with "
                                     "the images; give a folder outside it")
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise OutputError(shown, "cannot be created: a part of its path is a file, not a folder") from None
    except OSError as e:
        raise OutputError(shown, f"cannot be created: {os_error_reason(e)}") from None
    probe = out / f".uqseg-probe-{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        try:
            os.write(fd, b"uqseg")
        finally:
            os.close(fd)
        os.unlink(probe)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(probe)
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()
        raise OutputError(shown, f"is not writable: {os_error_reason(e)}") from None
    return out


# ---------------------------------------------------------------------------------------------------- case names
def safe_case_name(name: str) -> str:
    """A folder name that stays inside the output folder on every platform (see the module notes)."""
    n = unicodedata.normalize("NFC", str(name))
    n = _UNSAFE.sub("_", n).strip(" .")
    while len(n.encode("utf-8")) > MAX_NAME_BYTES:
        n = n[:-1].rstrip(" .")
    if not n:
        n = "case"
    if n.split(".")[0].upper() in _WINDOWS_DEVICES:
        n = "_" + n
    return n


def is_result_folder(path: str | os.PathLike) -> bool:
    """A folder uqseg may replace: a real folder (not a link) holding summary.json, or an empty one."""
    p = Path(path)
    if p.is_symlink() or not p.is_dir():
        return False
    if (p / "summary.json").is_file():
        return True
    try:
        return not any(os.scandir(p))
    except OSError:
        return False


def _blocked_names(out: Path, inputs: Iterable[str | os.PathLike]) -> set[str]:
    """Casefolded names a case must not take in `out`: the batch files, entries that are not result folders, and
    the top-level entries of `out` that hold an input."""
    blocked = {b.casefold() for b in BATCH_FILES}
    try:
        entries = list(os.scandir(out))
    except OSError:
        entries = []
    for entry in entries:
        if entry.name.startswith("."):
            continue  # case names never start with a dot
        if not is_result_folder(entry.path):
            blocked.add(entry.name.casefold())
    real_out = os.path.realpath(os.fspath(out))
    for raw in inputs:
        try:
            rel = os.path.relpath(os.path.realpath(os.fspath(raw)), real_out)
        except ValueError:  # Windows: another drive
            continue
        first = Path(rel).parts[0] if rel not in (".", "") else ""
        if first and first != ".." and not os.path.isabs(rel):
            blocked.add(first.casefold())
    return blocked


def unique_case_names(bases: Sequence[str], out: str | os.PathLike | None = None,
                      inputs: Iterable[str | os.PathLike] = ()) -> list[str]:
    """Safe, unique (ignoring case) folder names for cases whose natural names are `bases`, in order. A duplicate
    gets ``_2``, ``_3``, ... skipping any name that is another case's own name or blocked in `out`."""
    safe = [safe_case_name(b) for b in bases]
    own = {s.casefold() for s in safe}
    blocked = _blocked_names(Path(out), inputs) if out is not None else {b.casefold() for b in BATCH_FILES}
    taken: set[str] = set()
    names = []
    for base in safe:
        cand, k = base, 1
        while cand.casefold() in taken or cand.casefold() in blocked or (cand != base and cand.casefold() in own):
            k += 1
            suffix = f"_{k}"
            stem = base
            while len((stem + suffix).encode("utf-8")) > MAX_NAME_BYTES:
                stem = stem[:-1]
            cand = stem + suffix
        taken.add(cand.casefold())
        names.append(cand)
    return names


# ---------------------------------------------------------------------------------------------------------- locks
def _lock(fd: int, blocking: bool) -> bool | None:
    """Lock an open file exclusively: True (locked), False (held by another process: only when not blocking),
    None (this platform or file system has no locks)."""
    try:
        import fcntl
    except ImportError:
        fcntl = None
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            return True
        except BlockingIOError:
            return False
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EACCES):
                return False
            return None
    try:
        import msvcrt
    except ImportError:  # pragma: no cover - neither POSIX nor Windows
        return None
    while True:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.EDEADLK, getattr(errno, "EDEADLOCK", errno.EDEADLK)):
                return None
            if not blocking:
                return False
            time.sleep(0.05)


def _unlock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:
        fcntl = None
    with contextlib.suppress(OSError):
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
        else:
            import msvcrt

            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


@contextlib.contextmanager
def folder_lock(out: str | os.PathLike) -> Iterator[bool]:
    """Hold the lock of the folder `out` (waiting for it) while its top level changes; yields whether a lock is held
    (False where the file system has no locks). POSIX: `flock` on the folder itself, so no file is left behind.
    Windows (a folder cannot be opened there): `out`/.uqseg.lock, deleted after use when no other run has it open."""
    out = os.fspath(out)
    try:
        import fcntl  # noqa: F401 - POSIX
        path, on_folder = out, True
    except ImportError:
        path, on_folder = os.path.join(out, LOCK_NAME), False
    fd = os.open(path, os.O_RDONLY if on_folder else os.O_CREAT | os.O_RDWR, 0o666)
    try:
        locked = _lock(fd, blocking=True)
        try:
            yield bool(locked)
        finally:
            if locked:
                _unlock(fd)
    finally:
        os.close(fd)
        if not on_folder:  # Windows refuses to delete a file another process has open: then it stays
            with contextlib.suppress(OSError):
                os.unlink(path)


def _rmtree(path: str | os.PathLike) -> None:
    p = os.fspath(path)
    if os.path.islink(p) or not os.path.isdir(p):
        with contextlib.suppress(OSError):
            os.unlink(p)
        return
    shutil.rmtree(p, ignore_errors=True)


def _owner_alive(staging: Path, have_locks: bool) -> bool | None:
    """True/False whether the run owning `staging` is alive; None when it cannot be told (no locks)."""
    lock = staging / OWNER_LOCK
    if not have_locks:
        return None
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return False  # staging folders are created with their lock under the folder lock: no lock = died early
    except OSError:
        return True  # e.g. Windows: still open by its owner
    try:
        got = _lock(fd, blocking=False)
        if got:
            _unlock(fd)
        return None if got is None else not got
    finally:
        os.close(fd)


def remove_stale(out: Path, have_locks: bool) -> list[str]:
    """Under the folder lock: remove staging folders of runs that are gone (restoring a previous result folder that
    such a run had moved aside to replace it) and left-over temporary files of the top-level batch files. Returns
    the names removed."""
    removed = []
    try:
        entries = list(os.scandir(out))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if name.startswith(STAGING_PREFIX) and entry.is_dir(follow_symlinks=False):
            if _owner_alive(Path(entry.path), have_locks) is not False:
                continue
            with contextlib.suppress(OSError):
                for old in os.scandir(entry.path):
                    if old.name.startswith(OLD_PREFIX):
                        dest = out / old.name[len(OLD_PREFIX):]
                        if not os.path.lexists(dest):
                            os.rename(old.path, dest)
            _rmtree(entry.path)
            removed.append(name)
        elif have_locks and name.startswith(".") and name.endswith(".tmp") and \
                any(name.startswith(f".{b}.") for b in BATCH_FILES):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
            removed.append(name)
    return removed


def remove_stale_staging(out: str | os.PathLike) -> list[str]:
    """`remove_stale` under the folder lock (called when a run starts). Returns the names removed."""
    with interrupts.deferred(), folder_lock(out) as have_locks:
        return remove_stale(Path(out), have_locks)


# -------------------------------------------------------------------------------------------------------- staging
class CaseStaging:
    """This run's hidden staging folder in `out` (see the module notes). `open()`, then per case `case_dir(name)`
    (write the case there), `commit(name)` or `discard(name)`; `close()` at the end (also after an exception)."""

    def __init__(self, out: str | os.PathLike):
        self.out = Path(out)
        self.root: Path | None = None
        self.removed_stale: list[str] = []
        self._owner_fd: int | None = None

    def open(self) -> "CaseStaging":
        with interrupts.deferred(), folder_lock(self.out) as have_locks:
            self.removed_stale = remove_stale(self.out, have_locks)
            root = self.out / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
            root.mkdir()
            fd = os.open(root / OWNER_LOCK, os.O_CREAT | os.O_RDWR, 0o666)
            os.write(fd, f"{os.getpid()}\n".encode())
            _lock(fd, blocking=False)
            self.root, self._owner_fd = root, fd
        return self

    def case_dir(self, name: str) -> Path:
        d = self._root() / name
        if os.path.lexists(d):
            _rmtree(d)
        d.mkdir()
        return d

    def discard(self, name: str) -> None:
        """Remove what the case wrote (its staging folder and any batch-table rows staged for it)."""
        if self.root is None:
            return
        _rmtree(self.root / name)
        for b in BATCH_FILES:
            _rmtree(self.root / b)

    def commit(self, name: str, after: Callable[[], None] | None = None) -> list[str]:
        """Move the staged case to `out`/`name` in one rename (replacing an earlier result folder of that name),
        merge its batch-table rows, then call `after()` (e.g. rewrite queue.csv), all under the folder lock.
        Raises OSError/OutputError when the case could not be moved (it is then not in `out`); errors of the later
        steps are returned as "error: ..." lines (the case itself is in place)."""
        src, dest = self._root() / name, self.out / name
        notes: list[str] = []
        with interrupts.deferred(), folder_lock(self.out):
            old = None
            if os.path.lexists(dest):
                if not is_result_folder(dest):
                    raise OutputError(dest, "exists and is not a result folder of uqseg (no summary.json): "
                                            "it was left as it is and this case was not saved")
                old = self._root() / f"{OLD_PREFIX}{name}"
                os.rename(dest, old)
            try:
                os.rename(src, dest)
            except BaseException:
                if old is not None:
                    with contextlib.suppress(OSError):
                        os.rename(old, dest)
                raise
            if old is not None:
                _rmtree(old)
            try:
                self._merge_batch_tables()
            except (OSError, ValueError) as e:
                notes.append(f"error: {self.out / 'chexmask_u.csv'}: not updated for {name}: "
                             f"{os_error_reason(e) if isinstance(e, OSError) else e}")
            if after is not None:
                try:
                    after()
                except OSError as e:
                    notes.append(f"error: {self.out / 'queue.csv'}: not updated for {name}: {os_error_reason(e)}")
        return notes

    def close(self) -> None:
        """Remove the staging folder and release its owner lock."""
        with interrupts.deferred():
            fd, self._owner_fd = self._owner_fd, None
            if fd is not None:
                _unlock(fd)
                os.close(fd)  # before the removal: Windows cannot delete an open file
            if self.root is not None:
                _rmtree(self.root)
                self.root = None

    def _root(self) -> Path:
        if self.root is None:
            raise RuntimeError("CaseStaging.open() was not called")
        return self.root

    def _merge_batch_tables(self) -> None:
        staged = self._root() / "chexmask_u.csv"
        if not staged.is_file():
            return
        from uqseg.cxr import batch_csv

        try:
            batch_csv.upsert_rows(self.out / batch_csv.FILE_NAME, batch_csv.read_rows(staged))
        finally:
            _rmtree(staged)


def describe_write_failure(out: Path, name: str, source: str | os.PathLike, e: BaseException) -> str:
    """The one line for a case whose results could not be written."""
    reason = os_error_reason(e) if isinstance(e, OSError) else str(e)
    return f"error: {out / name}: the results of {os.fspath(source)} could not be written ({reason}); " \
           "nothing of this case was kept, the other cases go on"

