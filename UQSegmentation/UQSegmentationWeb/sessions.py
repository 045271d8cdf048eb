"""The front server's review sessions: one trame-slicer app process per browser session (front.py routes to them).

trame shares ONE state and ONE set of views between every browser connected to one server process, so the front
server (`front.py`) gives each browser session (its cookie) a process of its own:

    python -m UQSegmentationWeb DIR --single --host 127.0.0.1 --port <private port> --who NAME --parent-pid <front>

started on the session's first visit, on a free loopback port (children never listen on another address, whatever
the front's --host), reused while the session lives, stopped when no page of the session has been connected for
`idle_s` seconds, and stopped when the front server exits. Stopping is by PID: SIGTERM (the app removes its edit
mark and exits), then SIGKILL after `STOP_WAIT_S` seconds. A child also exits by itself when its parent (the front)
is gone (`--parent-pid`, __main__.py), so a front killed with SIGKILL leaves nothing running either.

A session is "starting" until the child prints its ``REVIEW http://...`` line, then "ready"; "failed" (with the
child's `error:` line, or a timeout after `START_TIMEOUT_S` seconds) when it exits or hangs first — a port taken in
between the front's choice and the child's bind is retried on another port (`PORT_TRIES`). The child's other output
goes to the front's stderr, each line prefixed ``[session N] ``.

Cost: each session is a Python process with its own MRML scene, VTK views, the task's model for the model-aware
corrections and the case's volumes: about 0.8 GB resident with a 2-D case open, 0.9 GB with the CT sample (measured
by the browser tests; README, "Review in a web browser") — hence `max_sessions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT_S = 180.0  # a child that has not printed its REVIEW line by then is stopped ("failed")
STOP_WAIT_S = 10.0  # SIGTERM → SIGKILL
PORT_TRIES = 3
MODULE_DIR = Path(__file__).resolve().parent.parent  # holds uqseg/, UQSegmentationLib/, UQSegmentationWeb/


class Full(RuntimeError):
    """No new session: `max_sessions` are running (message: for the page)."""


@dataclass
class Session:
    token: str  # the browser's cookie value
    number: int  # 1, 2, ... in the order the sessions were opened (log prefixes, default names)
    who: str  # the name the other reviewers see
    state: str = "starting"  # starting | ready | failed | stopped
    error: str = ""
    port: int | None = None
    proc: asyncio.subprocess.Process | None = None
    started: float = field(default_factory=time.monotonic)
    ready_s: float | None = None  # seconds from the first visit to the child listening
    last_seen: float = field(default_factory=time.monotonic)
    sockets: int = 0  # websockets of this session's pages open now

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def touch(self) -> None:
        self.last_seen = time.monotonic()

    def idle_for(self) -> float:
        """Seconds without a connected page (0 while one is connected)."""
        return 0.0 if self.sockets > 0 else time.monotonic() - self.last_seen


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Pool:
    """The sessions of one front server. `child_args`: what every child gets after DIR (--device ...);
    `idle_s`: stop a session's process after this long without a connected page; `max_sessions`: refuse more."""

    def __init__(self, folder, child_args: list[str], idle_s: float, max_sessions: int, who: str) -> None:
        self.folder = str(folder)
        self.child_args = list(child_args)
        self.idle_s = float(idle_s)
        self.max_sessions = int(max_sessions)
        self.who = who
        self.sessions: dict[str, Session] = {}
        self._opened = 0
        self._tasks: set[asyncio.Task] = set()

    def get(self, token: str | None) -> Session | None:
        return self.sessions.get(token) if token else None

    def open(self, who: str | None = None) -> Session:
        """A new session (its child starts in the background); raises Full."""
        live = [s for s in self.sessions.values() if s.state in ("starting", "ready")]
        if len(live) >= self.max_sessions:
            raise Full(f"this review server is at its limit of {self.max_sessions} review sessions at once "
                       "(--max-sessions); try again when someone has closed theirs")
        self._opened += 1
        name = (who or "").strip()[:60] or f"{self.who} #{self._opened}"
        session = Session(token=secrets.token_urlsafe(24), number=self._opened, who=name)
        self.sessions[session.token] = session
        self._spawn_in_background(session)
        return session

    def restart(self, session: Session) -> Session:
        """A failed or stopped session's next page visit starts its child again (same cookie, same name)."""
        session.state, session.error, session.port, session.proc = "starting", "", None, None
        session.started, session.ready_s = time.monotonic(), None
        session.touch()
        self._spawn_in_background(session)
        return session

    def _spawn_in_background(self, session: Session) -> None:
        task = asyncio.ensure_future(self._spawn(session))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def command(self, session: Session, port: int) -> list[str]:
        return [sys.executable, "-m", "UQSegmentationWeb", self.folder, "--single", "--host", "127.0.0.1",
                "--port", str(port), "--who", session.who, "--parent-pid", str(os.getpid()), *self.child_args]

    @staticmethod
    def environment() -> dict:
        env = dict(os.environ)
        paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join([str(MODULE_DIR)] + [p for p in paths if p != str(MODULE_DIR)])
        env["WSLINK_READY_MSG"] = ""  # wslink's own start message has no newline; the child prints REVIEW
        return env

    async def _spawn(self, session: Session) -> None:
        for _ in range(PORT_TRIES):
            port = free_port()
            try:
                proc = await asyncio.create_subprocess_exec(
                    *self.command(session, port), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                    env=self.environment(), stdin=asyncio.subprocess.DEVNULL)
            except OSError as e:
                session.state, session.error = "failed", f"the review process could not start ({e})"
                return
            session.proc, session.port = proc, port
            if session.state == "stopped":  # the front stopped while this one started
                await self._stop_process(proc)
                return
            ready, last_error = asyncio.Event(), []
            out = asyncio.ensure_future(self._read(session, proc.stdout, ready, last_error))
            err = asyncio.ensure_future(self._read(session, proc.stderr, ready, last_error))
            exited = asyncio.ensure_future(proc.wait())
            waiter = asyncio.ensure_future(ready.wait())
            done, _ = await asyncio.wait({waiter, exited}, timeout=START_TIMEOUT_S,
                                         return_when=asyncio.FIRST_COMPLETED)
            if waiter in done and session.state == "starting":
                session.state, session.ready_s = "ready", round(time.monotonic() - session.started, 2)
                print(f"session {session.number} ({session.who}): PID {proc.pid} on 127.0.0.1:{port}, ready in "
                      f"{session.ready_s} s", file=sys.stderr, flush=True)
                asyncio.ensure_future(self._watch_exit(session, proc, exited))
                return
            waiter.cancel()
            if session.state == "stopped":  # stopped while starting (the front exits)
                return
            if exited not in done:  # hung: stop it
                await self._stop_process(proc)
                session.state, session.error = "failed", f"the review process did not start in {START_TIMEOUT_S:.0f} s"
                return
            await asyncio.gather(out, err, return_exceptions=True)
            reason = last_error[-1] if last_error else f"the review process exited with status {proc.returncode}"
            if "cannot listen on" in reason:  # the port went to someone else in between: another one
                continue
            session.state, session.error = "failed", reason
            return
        session.state, session.error = "failed", "no free loopback port for the review process"

    async def _read(self, session: Session, stream, ready: asyncio.Event, last_error: list) -> None:
        while True:
            line = await stream.readline()
            if not line:
                return
            text = line.decode("utf-8", "replace").rstrip("\n")
            if "REVIEW http" in text:
                ready.set()
                continue
            if text.startswith("error: "):
                last_error.append(text[len("error: "):])
            print(f"[session {session.number}] {text}", file=sys.stderr, flush=True)

    async def _watch_exit(self, session: Session, proc, exited) -> None:
        """A ready child that exits by itself (a crash): the session is over; its next visit starts a new one."""
        await exited
        if session.proc is proc and session.state == "ready":
            session.state, session.error = "stopped", f"the review process exited (status {proc.returncode})"

    async def _stop_process(self, proc) -> None:
        if proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()  # SIGTERM to this PID
        try:
            await asyncio.wait_for(proc.wait(), STOP_WAIT_S)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def stop(self, session: Session, why: str) -> None:
        session.state = "stopped"
        if session.proc is not None:
            print(f"session {session.number} ({session.who}): stopping PID {session.proc.pid} ({why})",
                  file=sys.stderr, flush=True)
            await self._stop_process(session.proc)
        self.sessions.pop(session.token, None)

    async def reap_forever(self) -> None:
        """Stop the processes of sessions idle for more than idle_s; forget failed sessions nobody looks at."""
        period = max(0.5, min(5.0, self.idle_s / 4))
        while True:
            await asyncio.sleep(period)
            for session in list(self.sessions.values()):
                if session.idle_for() > self.idle_s and session.state != "starting":
                    await self.stop(session, f"no page connected for {self.idle_s:g} s")

    async def stop_all(self) -> None:
        """Stop every session's process (by PID) and wait for the starts in flight to notice."""
        await asyncio.gather(*[self.stop(s, "the review server stops") for s in list(self.sessions.values())],
                             return_exceptions=True)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=STOP_WAIT_S + 5)
