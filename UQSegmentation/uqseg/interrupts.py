"""SIGTERM, SIGINT (Ctrl-C), SIGHUP and, on Windows, SIGBREAK during `uqseg predict`: stop cleanly.

`handled()` (used by the CLI around `predict`) turns the first of those signals into an `Interrupted` exception,
raised where the main thread happens to be. Python code on the way out (``except``/``finally``) then removes the
interrupted case's staging folder (see `uqseg.io.outdir`), and the CLI prints one line and exits with 128 + the
signal number (130 for SIGINT, 143 for SIGTERM). Further signals during that clean-up are recorded but do not
interrupt it again (a second Ctrl-C cannot leave half a clean-up behind; SIGKILL still can, see uqseg.io.outdir).

`deferred()` marks a short critical section (moving a finished case into place, rewriting queue.csv): a signal
arriving inside it is held back and raised by the next `check()`, so a case is either moved completely and counted
or not moved at all. Signal handlers can only be set in the main thread; elsewhere (or when `predict` is called
in-process, e.g. from Slicer) `handled()` changes nothing and SIGINT stays Python's KeyboardInterrupt.

A signal that was ignored when the run started (SIGHUP under nohup, SIGINT in a background job) stays ignored.

Windows has no SIGTERM from outside (`taskkill /F` ends the process like SIGKILL); Ctrl-C and Ctrl-Break arrive as
SIGINT and SIGBREAK.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

__all__ = ["Interrupted", "handled", "deferred", "check"]

_NAMES = ("SIGTERM", "SIGINT", "SIGHUP", "SIGBREAK")


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal. `exit_code` = 128 + signal number; `detail` says what was kept."""

    def __init__(self, signum: int, detail: str = ""):
        super().__init__(signum)
        self.signum = int(signum)
        try:
            self.signal_name = signal.Signals(signum).name
        except ValueError:  # pragma: no cover - not a known signal number
            self.signal_name = f"signal {signum}"
        self.exit_code = 128 + self.signum
        self.detail = detail

    def __str__(self) -> str:
        return f"interrupted by {self.signal_name}" + (f": {self.detail}" if self.detail else "")


_state = {"installed": False, "depth": 0, "pending": None, "raised": False}


def _handler(signum, frame) -> None:  # noqa: ARG001 - the signal module's signature
    if _state["pending"] is not None:  # already stopping: let the clean-up finish
        return
    _state["pending"] = signum
    if _state["depth"] > 0:  # inside a critical section: `check()` raises it afterwards
        return
    _state["raised"] = True
    raise Interrupted(signum)


@contextlib.contextmanager
def handled() -> Iterator[bool]:
    """Install the handlers for the duration of the block (main thread only); yields whether they were installed."""
    if threading.current_thread() is not threading.main_thread():
        yield False
        return
    previous = {}
    _state.update(installed=True, depth=0, pending=None, raised=False)
    try:
        for name in _NAMES:
            sig = getattr(signal, name, None)
            if sig is None:
                continue
            try:
                if signal.getsignal(sig) == signal.SIG_IGN:  # nohup, a background job: the caller wants it ignored
                    continue
                previous[sig] = signal.signal(sig, _handler)
            except (OSError, RuntimeError, ValueError):  # pragma: no cover - a signal this platform refuses
                continue
        yield True
    finally:
        for sig, old in previous.items():
            with contextlib.suppress(OSError, RuntimeError, ValueError, TypeError):
                signal.signal(sig, old if old is not None else signal.SIG_DFL)
        _state.update(installed=False, depth=0, pending=None, raised=False)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A critical section: a signal arriving inside it is raised by the next `check()` instead."""
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1


def check() -> None:
    """Raise the `Interrupted` held back by `deferred()`, if any (call it between cases and at the end)."""
    if _state["pending"] is not None and not _state["raised"] and _state["depth"] == 0:
        _state["raised"] = True
        raise Interrupted(_state["pending"])
