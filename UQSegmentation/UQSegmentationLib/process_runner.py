"""Run the engine in a child process without blocking the caller: `PredictProcess`.

The Slicer module must not freeze while a model runs, so the engine (`uqseg predict`) runs in its own process.
`PredictProcess` starts a command with `subprocess.Popen`, reads its stdout and stderr line by line in background
threads and puts what it reads on a thread-safe queue. Nothing here touches Qt or MRML: the owner (the logic, polled
by the widget's QTimer, or a test with a plain loop) calls `poll()` from its own thread, which drains the queue and
updates `progress`, `message`, `error_lines` and, once the process has ended and both pipes are drained,
`returncode` / `finished`.

Protocol of the engine (see `uqseg.cli`): `PROGRESS <fraction 0..1> <message>` lines on stdout; `error: <file>:
<reason>` lines on stderr for bad inputs; exit status 0 on success, 2 on bad input, anything else on a crash.

`cancel()` ends the whole process tree: the child is started in its own process group (POSIX: a new session;
Windows: a new process group), because in Slicer the command is `PythonSlicer`, a launcher that starts the real
Python as a grandchild — terminating only the launcher would leave the model running. On POSIX it sends SIGTERM to
the group first and SIGKILL after `kill_timeout` seconds. On Windows (`signal_process_tree`) it starts
`taskkill /F /T /PID <pid>` and does not wait for it: a console process without a window ignores taskkill without /F,
and the caller is the GUI thread.
"""

from __future__ import annotations

import collections
import os
import queue
import re
import signal
import subprocess
import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

from .polling import poll_until

PROGRESS_RE = re.compile(r"^PROGRESS\s+([-+0-9.eE]+)\s*(.*)$")


@dataclass(frozen=True)
class ProcessEvent:
    """One thing that happened in the child: a line read (`stdout` / `stderr`), a `progress` line, or the `exit`."""

    kind: str  # "stdout", "stderr", "progress" or "exit"
    text: str = ""
    fraction: Optional[float] = None
    returncode: Optional[int] = None


def taskkill_command(pid: int) -> list[str]:
    """The argument list of Windows' `taskkill` that force-ends process `pid` and every process it started."""
    return ["taskkill", "/F", "/T", "/PID", str(int(pid))]


def launch_without_waiting(args: Sequence[str]) -> subprocess.Popen:
    """Start `args` in the background (no console window on Windows, output discarded) and return at once."""
    flags = getattr(subprocess, "CREATE_NO_WINDOW", 0) if os.name == "nt" else 0
    return subprocess.Popen(list(args), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, creationflags=flags)


def signal_process_tree(proc: Any, kill: bool, windows: Optional[bool] = None,
                        launch: Optional[Callable[[Sequence[str]], Any]] = None) -> Any:
    """Ask the process tree of `proc` (a started `subprocess.Popen`, leader of its own group) to end; never waits.

    POSIX: SIGTERM to the process group, SIGKILL when `kill`. Windows (`windows`, default: ``os.name == "nt"``):
    `taskkill /F /T /PID <pid>` started through `launch` (default `launch_without_waiting`), which returns while
    taskkill walks the tree; when `kill`, the launcher process is then terminated directly as well. If neither can
    be sent, `proc` alone is terminated (or killed). Returns what `launch` returned (the taskkill process), or None.
    """
    windows = (os.name == "nt") if windows is None else bool(windows)
    launched = None
    try:
        if windows:
            launched = (launch or launch_without_waiting)(taskkill_command(proc.pid))
            if kill:
                proc.kill()
        else:
            os.killpg(proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
    except (ProcessLookupError, PermissionError, OSError):
        try:
            proc.kill() if kill else proc.terminate()
        except OSError:
            pass
    return launched


def parse_progress(line: str) -> Optional[tuple[float, str]]:
    """(fraction clipped to 0..1, message) for a `PROGRESS <fraction> <message>` line, else None."""
    m = PROGRESS_RE.match(line.strip())
    if not m:
        return None
    try:
        fraction = float(m.group(1))
    except ValueError:
        return None
    if fraction != fraction:  # NaN
        return None
    return min(1.0, max(0.0, fraction)), m.group(2).strip()


class PredictProcess:
    """A command running in the background, observed through `poll()`.

    command: the argument list (e.g. ``[PythonSlicer, "-m", "uqseg.cli", "predict", ...]``).
    env / cwd: passed to Popen (None = inherit). kill_timeout: seconds between terminate and kill on `cancel()`.
    keep_lines: how many stdout/stderr lines are kept for messages and logs (the rest are only logged via `on_line`).
    on_line: optional callback(kind, text) called from `poll()` (the owner's thread) for every stdout/stderr line.
    """

    def __init__(self, command: Sequence[str], env: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None,
                 kill_timeout: float = 5.0, keep_lines: int = 200,
                 on_line: Optional[Callable[[str, str], None]] = None):
        self.command = [str(c) for c in command]
        self.env = dict(env) if env is not None else None
        self.cwd = None if cwd is None else str(cwd)
        self.kill_timeout = float(kill_timeout)
        self.on_line = on_line
        self.progress = 0.0
        self.message = ""
        self.returncode: Optional[int] = None
        self.cancelled = False
        self.stdout_lines: collections.deque[str] = collections.deque(maxlen=keep_lines)
        self.error_lines: collections.deque[str] = collections.deque(maxlen=keep_lines)
        self._queue: "queue.Queue[ProcessEvent]" = queue.Queue()
        self._proc: Optional[subprocess.Popen] = None
        self._watcher: Optional[threading.Thread] = None
        self._finished = False
        self._tree_killers: list = []  # taskkill processes started by cancel() on Windows, kept until they end

    # ------------------------------------------------------------------------------------------------ life cycle
    def start(self) -> "PredictProcess":
        if self._proc is not None:
            raise RuntimeError("this process was already started; create a new PredictProcess to run again")
        kwargs = dict(stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                      encoding="utf-8", errors="replace", bufsize=1, env=self.env, cwd=self.cwd)
        if os.name == "nt":
            kwargs["creationflags"] = (getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
                                       | getattr(subprocess, "CREATE_NO_WINDOW", 0))
        else:
            kwargs["start_new_session"] = True
        self._proc = subprocess.Popen(self.command, **kwargs)
        self._watcher = threading.Thread(target=self._watch, name="uqseg-process-watcher", daemon=True)
        self._watcher.start()
        return self

    @property
    def pid(self) -> Optional[int]:
        return None if self._proc is None else self._proc.pid

    @property
    def started(self) -> bool:
        return self._proc is not None

    @property
    def finished(self) -> bool:
        """True once the process has ended and every line it wrote has been handed out by `poll()`."""
        return self._finished

    @property
    def running(self) -> bool:
        return self.started and not self._finished

    def _watch(self) -> None:
        """Background thread: one reader per pipe, then the exit status once both pipes are at EOF."""
        proc = self._proc
        readers = [threading.Thread(target=self._read, args=(proc.stdout, "stdout"), daemon=True),
                   threading.Thread(target=self._read, args=(proc.stderr, "stderr"), daemon=True)]
        for r in readers:
            r.start()
        for r in readers:
            r.join()
        self._queue.put(ProcessEvent("exit", returncode=proc.wait()))

    def _read(self, stream, kind: str) -> None:
        try:
            for line in iter(stream.readline, ""):
                line = line.rstrip("\r\n")
                progress = parse_progress(line) if kind == "stdout" else None
                if progress is not None:
                    self._queue.put(ProcessEvent("progress", text=progress[1], fraction=progress[0]))
                else:
                    self._queue.put(ProcessEvent(kind, text=line))
        except (OSError, ValueError):  # pipe closed under us (process killed)
            pass
        finally:
            try:
                stream.close()
            except OSError:
                pass

    # ------------------------------------------------------------------------------------------------ observing
    def poll(self) -> list[ProcessEvent]:
        """Hand out what happened since the last call (never blocks) and update the public attributes."""
        events = []
        while True:
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                break
            events.append(event)
            if event.kind == "progress":
                self.progress, self.message = event.fraction, event.text
            elif event.kind == "stdout":
                self.stdout_lines.append(event.text)
            elif event.kind == "stderr":
                self.error_lines.append(event.text)
            elif event.kind == "exit":
                self.returncode = event.returncode
                self._finished = True
            if self.on_line is not None and event.kind in ("stdout", "stderr"):
                self.on_line(event.kind, event.text)
        return events

    def wait(self, timeout: Optional[float] = None, interval: float = 0.05) -> Optional[int]:
        """Poll until the process has finished (or `timeout` seconds passed); the return code or None."""
        poll_until(lambda: self._finished, self.poll, timeout, interval)
        return self.returncode

    # ------------------------------------------------------------------------------------------------ stopping
    def cancel(self, timeout: Optional[float] = None) -> None:
        """Stop the process tree (terminate, then kill after `timeout` or `kill_timeout` seconds) and wait for it."""
        if self._proc is None or self._finished:
            return
        self.cancelled = True
        timeout = self.kill_timeout if timeout is None else timeout
        if self._proc.poll() is None:
            self._signal_tree(kill=False)
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal_tree(kill=True)
                try:
                    self._proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    pass
        # Grandchildren may still hold the pipes open; they are in the same group and got the same signal.
        if self._watcher is not None:
            self._watcher.join(timeout=timeout)
        self.poll()
        if not self._finished and self._proc.poll() is not None:
            self.returncode = self._proc.returncode
            self._finished = True

    def _signal_tree(self, kill: bool) -> None:
        launched = signal_process_tree(self._proc, kill)
        self._tree_killers = [k for k in self._tree_killers if k.poll() is None]
        if launched is not None:
            self._tree_killers.append(launched)

    def __del__(self):  # never leave a model running behind a dropped object
        try:
            if self._proc is not None and self._proc.poll() is None:
                self._signal_tree(kill=True)
        except Exception:
            pass

