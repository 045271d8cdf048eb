"""Run the `uqseg` command in this process and capture what it prints (for tests of its one-line messages)."""

from __future__ import annotations

import contextlib
import io


def run_cli(args: list) -> tuple:
    """(exit status, stdout, stderr) of `uqseg <args>` run in this process."""
    from uqseg.cli import main as cli_main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli_main([str(a) for a in args])
    return rc, out.getvalue(), err.getvalue()


def stderr_lines(text: str) -> list:
    """The non-empty lines of `text`."""
    return [line for line in text.splitlines() if line.strip()]
