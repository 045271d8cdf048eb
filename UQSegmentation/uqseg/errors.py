"""The one error type a user sees for a bad input: the file and the reason, never a traceback."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """An input cannot be used: `path` names the file (or folder), `reason` says why in one sentence."""

    def __init__(self, path: str | Path | None, reason: str):
        self.path = None if path is None else str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)
