"""The review's timers and background work on the web server's asyncio loop (what Qt's timers do in Slicer).

`UQSegmentationLib.review.scheduling` injects a debounce timer (start(delay_ms, callback) / stop() / active) and a
runner whose `poll()` delivers finished work on the owner's thread. On the trame server the owner's thread is the
asyncio loop's, so:
- `LoopTimer` is the single-shot timer, on `loop.call_later`;
- `poll_forever(runner, on_delivered)` polls a `ThreadRunner` every `POLL_S` seconds on the loop, so the model runs
  on the worker thread and its result reaches the MRML nodes on the loop's thread (the only one touching them).
"""

from __future__ import annotations

import asyncio
from typing import Callable, Optional

POLL_S = 0.05


class LoopTimer:
    def __init__(self) -> None:
        self._handle: Optional[asyncio.TimerHandle] = None

    @property
    def active(self) -> bool:
        return self._handle is not None

    def start(self, delay_ms: int, callback: Callable[[], None]) -> None:
        self.stop()

        def fire():
            self._handle = None
            callback()

        self._handle = asyncio.get_event_loop().call_later(max(0, int(delay_ms)) / 1000.0, fire)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


async def poll_forever(runner, on_delivered: Callable[[int], None]) -> None:
    """Deliver finished background work on the loop; `on_delivered(n)` after each poll (n: jobs delivered)."""
    while True:
        try:
            on_delivered(runner.poll())
        except Exception as error:  # a `done` callback failed: the page shows it (app.py), the loop keeps polling
            on_delivered(error)
        await asyncio.sleep(POLL_S)
