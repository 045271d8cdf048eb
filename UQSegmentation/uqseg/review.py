"""`uqseg review`: review results in a web browser — optionally running a task on images first.

    uqseg review DIR [--port P] [--host 127.0.0.1] [--allow-remote] [--who NAME] [--idle-minutes M] [--max-sessions N]
    uqseg review --task TASK IMAGES... --out DIR [--samples N] [--seed S] [--fast] [--port P] ...

The second form runs the task through the batch driver (`uqseg.console.predict`, i.e. `uqseg.tasks.run.run_cases`,
with its PROGRESS lines) into DIR and then serves DIR; a run with problem lines still serves the cases that worked
(none worked: exit 2). The web app itself is `UQSegmentationWeb` (beside this package, on `UQSegmentationLib` and
trame-slicer: the `web` extra); the engine does not import it — this module replaces the process with
``python -m UQSegmentationWeb`` with the module folder first on PYTHONPATH (the way the Slicer module runs the
engine), so a signal to this PID reaches the server directly: the front server on --port, which gives every browser
session a trame-slicer process of its own and stops them all when it stops (UQSegmentationWeb/front.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

MODULE_DIR = Path(__file__).resolve().parent.parent  # holds uqseg/, UQSegmentationLib/, UQSegmentationWeb/


def web_command(folder, port: int, host: str, allow_remote: bool, who: str | None, device: str,
                idle_minutes: float = 30.0, max_sessions: int = 8) -> list[str]:
    cmd = [sys.executable, "-m", "UQSegmentationWeb", str(folder), "--port", str(port), "--host", host,
           "--idle-minutes", repr(float(idle_minutes)), "--max-sessions", str(int(max_sessions))]
    if allow_remote:
        cmd.append("--allow-remote")
    if who:
        cmd += ["--who", who]
    if device in ("cpu", "cuda", "mps"):
        cmd += ["--device", device]
    return cmd


def run_review(args) -> int:
    """The `uqseg review` subcommand (arguments: uqseg.cli.build_parser)."""
    if not (MODULE_DIR / "UQSegmentationWeb" / "__main__.py").is_file():
        print(f"error: {MODULE_DIR}: the review app (UQSegmentationWeb) is not installed beside the engine",
              file=sys.stderr, flush=True)
        return 2
    if args.task:
        if not args.out or not args.inputs:
            print("error: uqseg review: --task needs IMAGES... and --out DIR", file=sys.stderr, flush=True)
            return 2
        from uqseg.console import predict
        from uqseg.interrupts import Interrupted, handled
        from uqseg.io.outdir import OutputError

        try:
            with handled():
                summaries, _ = predict(args.task, args.inputs, Path(args.out), args.model, args.device, args.samples,
                                       args.seed, fast=args.fast)
        except OutputError as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            return 2
        except Interrupted as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            return e.exit_code
        if not summaries:
            print(f"error: {args.out}: no case could be predicted, nothing to review", file=sys.stderr, flush=True)
            return 2
        folder = args.out
    else:
        if len(args.inputs) != 1 or args.out:
            print("error: uqseg review: give one DIR (or --task TASK IMAGES... --out DIR)", file=sys.stderr,
                  flush=True)
            return 2
        folder = args.inputs[0]
    device = "cpu" if args.device == "auto" else args.device
    cmd = web_command(folder, args.port, args.host, args.allow_remote, args.who, device, args.idle_minutes,
                      args.max_sessions)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(MODULE_DIR)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                                                              if p])
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        os.execve(sys.executable, cmd, env)  # no return
    return subprocess.call(cmd, env=env)
