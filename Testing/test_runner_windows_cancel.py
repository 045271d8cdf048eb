"""Cancel on Windows: the process tree is ended by `taskkill /F /T /PID <pid>`, started without waiting for it.

The Windows branch of `UQSegmentationLib.process_runner.signal_process_tree` is taken here on any platform (the
`windows` argument) and taskkill is never run: the launcher is injected and records the argument list it gets. What
it returns would fail the test if anyone waited on it, because `cancel()` runs on Slicer's GUI thread.
"""

from __future__ import annotations

import functools
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "UQSegmentation"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from UQSegmentationLib import process_runner  # noqa: E402
from UQSegmentationLib.process_runner import PredictProcess, signal_process_tree, taskkill_command  # noqa: E402


class NeverWaitedProcess:
    """What the fake launcher returns: a taskkill that is still running, and must not be waited for."""

    def poll(self):
        return None

    def wait(self, timeout=None):
        raise AssertionError("the GUI thread waited for taskkill")

    communicate = wait


class RecordingLauncher:
    """Stands in for `launch_without_waiting`: keeps each argument list, starts nothing."""

    def __init__(self, error: Exception | None = None):
        self.calls: list[list[str]] = []
        self.error = error

    def __call__(self, args):
        self.calls.append(list(args))
        if self.error is not None:
            raise self.error
        return NeverWaitedProcess()


class FakeLauncherProcess:
    """The PythonSlicer launcher as `signal_process_tree` sees it: a pid, and what was done to it, in order."""

    def __init__(self, pid: int, log: list):
        self.pid = pid
        self.log = log

    def kill(self):
        self.log.append("kill")

    def terminate(self):
        self.log.append("terminate")


def test_taskkill_command_forces_the_whole_tree():
    assert taskkill_command(4321) == ["taskkill", "/F", "/T", "/PID", "4321"]


def test_windows_branch_starts_taskkill_and_returns_without_waiting():
    log = []
    launcher = RecordingLauncher()
    proc = FakeLauncherProcess(4321, log)
    t0 = time.monotonic()
    launched = signal_process_tree(proc, kill=False, windows=True, launch=launcher)
    assert time.monotonic() - t0 < 1.0
    assert launcher.calls == [["taskkill", "/F", "/T", "/PID", "4321"]]
    assert isinstance(launched, NeverWaitedProcess)
    # The launcher stays alive for taskkill to walk its children from it: nothing else is done to it yet.
    assert log == []


def test_windows_kill_stage_also_ends_the_launcher_itself():
    log = []
    launcher = RecordingLauncher()
    signal_process_tree(FakeLauncherProcess(77, log), kill=True, windows=True, launch=launcher)
    assert launcher.calls == [["taskkill", "/F", "/T", "/PID", "77"]]
    assert log == ["kill"]


def test_without_taskkill_the_launcher_is_terminated():
    log = []
    launcher = RecordingLauncher(error=FileNotFoundError("taskkill"))
    signal_process_tree(FakeLauncherProcess(5, log), kill=False, windows=True, launch=launcher)
    assert launcher.calls == [["taskkill", "/F", "/T", "/PID", "5"]]
    assert log == ["terminate"]


def test_default_launcher_is_used_when_none_is_given(monkeypatch):
    launcher = RecordingLauncher()
    monkeypatch.setattr(process_runner, "launch_without_waiting", launcher)
    signal_process_tree(FakeLauncherProcess(9, []), kill=False, windows=True)
    assert launcher.calls == [["taskkill", "/F", "/T", "/PID", "9"]]


def test_cancel_through_the_windows_branch(monkeypatch):
    """PredictProcess.cancel on the Windows branch: taskkill at once, again with a direct kill after the timeout."""
    launcher = RecordingLauncher()
    monkeypatch.setattr(process_runner, "signal_process_tree",
                        functools.partial(signal_process_tree, windows=True, launch=launcher))
    p = PredictProcess([sys.executable, "-c", textwrap.dedent("""
        import time
        print("PROGRESS 0.100 running", flush=True)
        time.sleep(60)
    """)]).start()
    deadline = time.monotonic() + 20
    while p.progress != pytest.approx(0.1) and time.monotonic() < deadline:
        p.poll()
        time.sleep(0.02)
    t0 = time.monotonic()
    p.cancel(timeout=0.5)
    assert time.monotonic() - t0 < 5
    expected = ["taskkill", "/F", "/T", "/PID", str(p.pid)]
    assert launcher.calls == [expected, expected]  # first the tree, then (still alive: taskkill was a fake) again
    assert p.cancelled and p.finished and p.returncode not in (None, 0)
