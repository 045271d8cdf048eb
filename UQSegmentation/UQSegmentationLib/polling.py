"""`poll_until`: the blocking wait of scripts and tests on work that is delivered by polling.

The GUI never blocks: it polls from a QTimer. Scripts, self-tests and pytest wait instead, with the same loop for
the engine's child process (`process_runner.PredictProcess.wait`), a run of the logic (`logic.UQSegmentationLogic.
wait`) and the review's worker thread (`review.scheduling.ThreadRunner.wait`).
"""

from __future__ import annotations

import time
from typing import Callable, Optional


def poll_until(finished: Callable[[], bool], poll: Callable[[], object], timeout: Optional[float] = None,
               interval: float = 0.05, between: Optional[Callable[[], None]] = None) -> bool:
    """Call `poll()` until `finished()` (True) or `timeout` seconds passed (False; None: no limit). Between two polls
    `between()` runs (e.g. the application's event processing) and the loop sleeps `interval` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while not finished():
        poll()
        if finished():
            break
        if deadline is not None and time.monotonic() > deadline:
            return False
        if between:
            between()
        time.sleep(interval)
    return True
