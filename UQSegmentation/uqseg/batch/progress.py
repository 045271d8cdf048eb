"""The progress display of `uqseg batch`: cases done of the total, cases/s, ETA, errors, and the Ray dashboard link.

On a terminal (stderr is a TTY) one line redrawn in place:
    [##########··········]  97/195 cases  3.1 cases/s  ETA 0:00:31  errors 0
elsewhere (a log file, CI) the same text as a new line at most every `interval_s` seconds, and at the end.
The rate counts the cases of this run only (cases a rerun skips are in the done count, not in the rate). A case
counts when its row reaches the driver; it is on disk with the next part (`uqseg.batch.parquet_parts`).
"""

from __future__ import annotations

import sys
import time


def format_eta(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class ProgressBar:
    """`ProgressBar(total, already_done)`; `update(new_cases, new_errors)` after each part; `finish()`."""

    def __init__(self, total: int, already_done: int = 0, stream=None, width: int = 30, interval_s: float = 10.0,
                 clock=time.monotonic):
        self.total, self.done, self.errors = total, already_done, 0
        self.start_done = already_done
        self.stream = stream or sys.stderr
        self.width, self.interval_s, self.clock = width, interval_s, clock
        self.t0 = clock()
        self.last_print = float("-inf")
        self.last_line = ""
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def rate(self) -> float:
        elapsed = self.clock() - self.t0
        return (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        frac = self.done / self.total if self.total else 1.0
        filled = int(round(frac * self.width))
        rate = self.rate()
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        return (f"[{'#' * filled}{'·' * (self.width - filled)}] {self.done:>{len(str(self.total))}}/{self.total} "
                f"cases  {rate:.2f} cases/s  ETA {format_eta(eta)}  errors {self.errors}")

    def update(self, new_cases: int = 0, new_errors: int = 0, force: bool = False) -> None:
        self.done += new_cases
        self.errors += new_errors
        now = self.clock()
        if self.tty:
            self.stream.write("\r" + self.line())
            self.stream.flush()
        elif force or now - self.last_print >= self.interval_s:
            text = self.line()
            if text != self.last_line:
                self.stream.write(text + "\n")
                self.stream.flush()
            self.last_print, self.last_line = now, text

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\r" + self.line() + "\n")
            self.stream.flush()
        else:
            self.update(force=True)
