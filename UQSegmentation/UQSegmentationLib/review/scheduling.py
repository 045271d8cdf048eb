"""When and where the review's work runs: debounced triggers and background runners, injected — never Qt here.

A control-point drag fires dozens of PointModifiedEvents a second; the model-aware update must run once the user
pauses (debounce), and anything slower than ~100 ms (a network pass) must not block the GUI thread. Both are
injected so that the same logic runs in Slicer, in a script and in a test:

Timers (`start(delay_ms, callback)` restarts a single-shot timer; `stop()` cancels it; `active`):
- `ImmediateTimer` — calls back at once (scripts, tests that want the update synchronously);
- `ManualTimer` — holds the pending callback until `fire()` (tests that show that a burst of events runs the
  update ONCE);
- `SingleShotTimer(timer)` — the same interface on a timer object with Qt's QTimer interface; in Slicer the
  widget passes a `qt.QTimer()` (nothing is imported from Qt here; the tests pass a stand-in).
`Debouncer(timer, delay_ms, callback)`: `trigger()` (re)starts the timer, so a burst ends in one callback.

Runners (`submit(work, done, failed=None)`; `poll()` delivers finished work on the CALLER's thread):
- `SynchronousRunner` — runs `work()` and `done(result)` inside `submit` (tests, scripts);
- `ThreadRunner` — runs `work()` on a worker thread (torch and numpy release the GIL) and calls `done(result)` /
  `failed(error)` from `poll()`, which the owner calls on its own thread (in Slicer: a QTimer on the GUI thread),
  so MRML nodes are only ever touched on the thread that owns them. `wait()` polls until idle (scripts, tests).
`work` must not touch MRML nodes (it gets plain arrays); `done` applies the result to the nodes.
"""

from __future__ import annotations

import concurrent.futures
from typing import Callable, Optional

from ..polling import poll_until


# ------------------------------------------------------------------------------------------------------ timers
class ImmediateTimer:
    """A timer whose delay is zero: `start` calls the callback at once."""

    active = False

    def start(self, delay_ms: int, callback: Callable[[], None]) -> None:
        callback()

    def stop(self) -> None:
        pass


class ManualTimer:
    """A timer that fires only when told to (`fire`); counts how often it was (re)started."""

    def __init__(self) -> None:
        self.pending: Optional[Callable[[], None]] = None
        self.delay_ms: Optional[int] = None
        self.starts = 0

    @property
    def active(self) -> bool:
        return self.pending is not None

    def start(self, delay_ms: int, callback: Callable[[], None]) -> None:
        self.pending, self.delay_ms = callback, int(delay_ms)
        self.starts += 1

    def stop(self) -> None:
        self.pending = None

    def fire(self) -> bool:
        """Run the pending callback (if any); True when one ran."""
        callback, self.pending = self.pending, None
        if callback is None:
            return False
        callback()
        return True


class SingleShotTimer:
    """`start(delay_ms, callback)` / `stop()` / `active` on `timer`, an object with QTimer's interface
    (setSingleShot(bool), start(ms), stop(), isActive(), a `timeout` signal with connect(callable))."""

    def __init__(self, timer) -> None:
        self._callback: Optional[Callable[[], None]] = None
        self._timer = timer
        timer.setSingleShot(True)
        timer.timeout.connect(self._fire)

    @property
    def active(self) -> bool:
        return bool(self._timer.isActive())

    def start(self, delay_ms: int, callback: Callable[[], None]) -> None:
        self._callback = callback
        self._timer.start(int(delay_ms))

    def stop(self) -> None:
        self._timer.stop()
        self._callback = None

    def _fire(self) -> None:
        callback, self._callback = self._callback, None
        if callback is not None:
            callback()


class Debouncer:
    """`trigger()` many times → `callback()` once, `delay_ms` after the last trigger (as the injected timer does)."""

    def __init__(self, timer, delay_ms: int, callback: Callable[[], None]) -> None:
        self.timer = timer
        self.delay_ms = int(delay_ms)
        self.callback = callback
        self.triggers = 0
        self.calls = 0

    def trigger(self) -> None:
        self.triggers += 1
        self.timer.stop()
        self.timer.start(self.delay_ms, self._fire)

    def cancel(self) -> None:
        self.timer.stop()

    def _fire(self) -> None:
        self.calls += 1
        self.callback()


# ------------------------------------------------------------------------------------------------------ runners
class SynchronousRunner:
    """Runs the work in `submit`, on the caller's thread."""

    busy = False

    def submit(self, work: Callable[[], object], done: Callable[[object], None],
               failed: Optional[Callable[[BaseException], None]] = None) -> None:
        try:
            result = work()
        except Exception as error:  # reported like ThreadRunner does; never lost
            if failed is None:
                raise
            failed(error)
            return
        done(result)

    def poll(self) -> int:
        return 0

    def wait(self, timeout: Optional[float] = None) -> bool:
        return True

    def shutdown(self) -> None:
        pass


class ThreadRunner:
    """Work on one worker thread; results handed back by `poll()` on the owner's thread, in submission order."""

    def __init__(self, workers: int = 1) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="uqseg-review")
        self._jobs: list[tuple[concurrent.futures.Future, Callable, Optional[Callable]]] = []

    @property
    def busy(self) -> bool:
        return bool(self._jobs)

    def submit(self, work: Callable[[], object], done: Callable[[object], None],
               failed: Optional[Callable[[BaseException], None]] = None) -> None:
        self._jobs.append((self._pool.submit(work), done, failed))

    def poll(self) -> int:
        """Call `done` / `failed` for every job finished so far (oldest first); returns how many were delivered."""
        delivered = 0
        while self._jobs and self._jobs[0][0].done():
            future, done, failed = self._jobs.pop(0)
            error = future.exception()
            delivered += 1
            if error is not None:
                if failed is None:
                    raise error
                failed(error)
            else:
                done(future.result())
        return delivered

    def wait(self, timeout: Optional[float] = None, interval: float = 0.01) -> bool:
        """Poll until every job is delivered (True) or `timeout` seconds passed (False)."""
        return poll_until(lambda: not self._jobs, self.poll, timeout, interval)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._jobs.clear()


class LatestOnly:
    """At most one job of a kind in flight; a request made while one runs replaces any waiting request (the newest
    wins), and it starts when the running one is delivered. `request(make_work, done)`: make_work() is called when
    the job starts (on the caller's thread: it reads the nodes) and returns the work callable for the runner."""

    def __init__(self, runner) -> None:
        self.runner = runner
        self._running = False
        self._waiting: Optional[tuple] = None
        self.started = 0

    @property
    def running(self) -> bool:
        return self._running

    @property
    def waiting(self) -> bool:
        """A newer request waits for the running job (whose result is then stale)."""
        return self._waiting is not None

    def request(self, make_work: Callable[[], Callable[[], object]], done: Callable[[object], None],
                failed: Optional[Callable[[BaseException], None]] = None) -> None:
        if self._running:
            self._waiting = (make_work, done, failed)
            return
        self._start(make_work, done, failed)

    def _start(self, make_work, done, failed) -> None:
        self._running = True
        self.started += 1
        try:
            work = make_work()
        except BaseException:
            self._running = False
            raise

        def finish(result):
            self._running = False
            try:
                done(result)
            finally:
                self._next()

        def fail(error):
            self._running = False
            try:
                if failed is None:
                    raise error
                failed(error)
            finally:
                self._next()

        self.runner.submit(work, finish, fail)

    def _next(self) -> None:
        if self._waiting is not None and not self._running:
            waiting, self._waiting = self._waiting, None
            self._start(*waiting)
