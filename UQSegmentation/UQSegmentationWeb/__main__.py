"""`python -m UQSegmentationWeb DIR [--port P] [--host H] [--allow-remote] [--who NAME] [--device D]
[--idle-minutes M] [--max-sessions N]`: serve the review of a `uqseg predict` output folder (what `uqseg review` runs).

By default this is the front server (`front.py`): one port for several people, each browser session with a
trame-slicer app process of its own (`sessions.py`), started on its first visit. ``--single`` serves one trame app
directly instead — one page state shared by every browser on the port; it is what each session's process runs (on
127.0.0.1, with ``--parent-pid``: it exits when the front server is gone).

Loopback only by default (127.0.0.1): the page can change files in DIR and has no login. Any other --host needs
--allow-remote and prints a warning (the sessions' own processes always listen on 127.0.0.1). Bad input (no such
folder, no results in it, trame-slicer missing, the port taken) is one line `error: <DIR or server>: <reason>` on
stderr and exit status 2, before anything is served. When the server listens it prints ``REVIEW http://HOST:PORT/``
on stdout.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def parse(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="uqseg review", description="review uqseg predict results in a browser")
    ap.add_argument("folder", metavar="DIR", help="output folder of uqseg predict (queue.csv and <case>/ folders)")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--allow-remote", action="store_true",
                    help="allow a --host other than loopback (the page has no login and writes into DIR)")
    ap.add_argument("--who", default="reviewer",
                    help="with --single: the name other reviewers see; else the name of a browser session that gives "
                    "no ?who=NAME on its first visit, numbered (NAME #1, NAME #2, ...)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "mps"],
                    help="where the model runs for the model-aware corrections")
    ap.add_argument("--idle-minutes", type=float, default=30.0,
                    help="stop a browser session's process after this long without an open page (default 30)")
    ap.add_argument("--max-sessions", type=int, default=8,
                    help="at most this many browser sessions (processes) at once (default 8)")
    ap.add_argument("--single", action="store_true",
                    help="serve one page shared by every browser on the port (what each session's process runs)")
    ap.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def fail(where, reason: str) -> int:
    print(f"error: {where}: {reason}", file=sys.stderr, flush=True)
    return 2


def check_port(host: str, port: int) -> str | None:
    """None when (host, port) can be bound, else the reason."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            return f"cannot listen on {host}:{port} ({e.strerror or e})"
    return None


def main(argv=None) -> int:
    args = parse(argv)
    if args.host not in LOOPBACK and not args.allow_remote:
        return fail(f"{args.host}:{args.port}", "only loopback (127.0.0.1) is served unless --allow-remote is given "
                    "(anyone who can reach the port can change the corrections in DIR)")
    if args.host not in LOOPBACK:
        print(f"warning: serving {args.folder} on {args.host}:{args.port} to the network, without a login",
              file=sys.stderr, flush=True)
    from .folder import FolderError, read_cases

    try:
        read_cases(args.folder)
    except FolderError as e:
        return fail(args.folder, str(e))
    import importlib.util

    if importlib.util.find_spec("trame_slicer") is None:
        return fail("server", "trame-slicer is not installed (pip install 'uqseg[web]')")
    if args.max_sessions < 1 or not args.idle_minutes > 0:
        return fail("server", "--max-sessions must be at least 1 and --idle-minutes above 0")
    reason = check_port(args.host, args.port)
    if reason:
        return fail("server", reason)
    if not args.single:
        from .front import serve_front

        return serve_front(args)
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")  # offscreen views through EGL
    if args.parent_pid:
        exit_with_parent(args.parent_pid)
    return serve(args)


def exit_with_parent(parent_pid: int, period_s: float = 1.0) -> None:
    """A session's process ends itself (SIGTERM to its own PID, as the front server would) once its parent — the
    front server — is gone, even when that was killed without a chance to stop it."""
    import signal
    import threading
    import time

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(period_s)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10.0)
        os._exit(1)  # the SIGTERM did not end it

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def serve(args) -> int:
    import logging

    from trame.app import get_server
    from trame_slicer import module as trame_slicer_module

    from .app import ReviewApp
    from .page import build_page

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.argv = sys.argv[:1]  # trame parses the command line too: it must not see ours
    server = get_server("uqseg-review", client_type="vue3")
    server.enable_module(trame_slicer_module)
    app = ReviewApp(server, Path(args.folder), who=args.who, device=args.device)
    build_page(server, app)

    @server.controller.add("on_server_ready")
    def _announce(**_):
        print(f"REVIEW http://{args.host}:{args.port}/", flush=True)

    try:
        server.start(port=args.port, host=args.host, open_browser=False, show_connection_info=False, timeout=0,
                     disable_logging=True)
    finally:
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
