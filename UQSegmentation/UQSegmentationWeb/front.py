"""The front server of `uqseg review DIR --port P`: several people on one port, each with a review of their own.

trame shares one state and one set of views between all browsers connected to one server process, so two people
on one trame server would see and drive the same page. The front server listens on P (the --host given, loopback by
default) and is a small aiohttp reverse proxy:

- a browser's first visit gets a session cookie (``uqseg-review-<P>``: random, HttpOnly, SameSite=Lax, for as long as
  the browser keeps it) and a loading page ("Starting your review session…", an elapsed-seconds counter and a
  progress bar) while the session's own trame-slicer app process starts on a private 127.0.0.1 port
  (`sessions.Pool`); the loading page polls ``/__uqseg/status`` and reloads itself into the app when it is ready, or
  shows the child's `error:` line when it failed;
- afterwards every HTTP request (the page, its scripts) and the websocket (``/ws``: state, events, the view
  frames) of that browser are relayed to its own process; another browser (another cookie) gets another process;
- ``?who=NAME`` on the first visit names the session for the other reviewers (the queue's "being edited by NAME");
  without it the name is ``<--who> #N``;
- a session whose pages are all closed for --idle-minutes has its process stopped (the next visit starts a new
  one); at most --max-sessions run at once (beyond that the page says so, HTTP 503); when the front server stops
  (SIGTERM, SIGINT) it stops every session's process by PID before exiting.

The sessions share nothing but the folder, so the cross-process rules of `editing.py` apply between the people: a case
one of them has open is "being edited by <name>" in the others' queues, and a save over someone else's newer save
is refused with a message on the page. Tabs of the same browser share one session (one cookie), hence one page state.

Cost: one process per session — about 0.8 GB resident with a 2-D case open and 0.9 GB with the CT sample, measured
from /proc by Testing/test_web_review.py (README, "Review in a web browser") — its start on the first visit (a few
seconds behind the loading page), and the relay's copy of each frame on loopback. The front server itself is ~200
MB, mostly the VTK that its start-up check of the folder loads.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import signal
import sys

from .sessions import Full, Pool, Session

STATUS_PATH = "/__uqseg/status"
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
              "transfer-encoding", "upgrade", "host", "content-length", "cookie", "set-cookie"}


def cookie_name(port: int) -> str:
    """Cookies are not port-specific: two review servers on one host must not read each other's session."""
    return f"uqseg-review-{port}"


def is_page_request(request) -> bool:
    return request.method == "GET" and request.path in ("/", "/index.html")


def message_page(title: str, text: str, status: int = 503):
    from aiohttp import web

    body = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body style='font-family: sans-serif; background: #222; color: #eee; padding: 2em'>"
            f"<h2>{html.escape(title)}</h2><p id='uq-front-message'>{html.escape(text)}</p></body></html>")
    return web.Response(text=body, status=status, content_type="text/html")


LOADING_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>UQSegmentation review — starting</title>
<style>
 body { font-family: sans-serif; background: #222; color: #eee; padding: 2em; }
 .bar { width: 360px; height: 6px; background: #444; overflow: hidden; margin: 1em 0; }
 .bar div { width: 30%; height: 100%; background: orange; animation: run 1.2s linear infinite; }
 @keyframes run { from { margin-left: -30%; } to { margin-left: 100%; } }
 #uq-start-error { color: #ff6b6b; }
</style></head>
<body>
<h2>UQSegmentation review</h2>
<div id="uq-starting">
 <p>Starting your review session for <b>__WHO__</b>: a Slicer scene of its own on the server
 (<span id="uq-elapsed">0</span> s)…</p>
 <div class="bar"><div></div></div>
 <p style="color: #aaa; font-size: 13px">Other people on this server each get their own session; a case one of them
 has open is shown as being edited.</p>
</div>
<p id="uq-start-error" style="display: none"></p>
<script>
const t0 = Date.now();
async function poll() {
  document.getElementById("uq-elapsed").textContent = Math.round((Date.now() - t0) / 1000);
  try {
    const r = await fetch("__STATUS__", {cache: "no-store", credentials: "same-origin"});
    const s = await r.json();
    if (s.state === "ready") { window.location.reload(); return; }
    if (s.state === "failed" || s.state === "none") {
      document.getElementById("uq-starting").style.display = "none";
      const e = document.getElementById("uq-start-error");
      e.textContent = "The review session could not start: " + s.message + " (reload the page to try again)";
      e.style.display = "block";
      return;
    }
  } catch (err) { /* the server is busy or restarting: keep asking */ }
  setTimeout(poll, 300);
}
poll();
</script></body></html>
"""


def loading_page(session: Session):
    from aiohttp import web

    text = LOADING_PAGE.replace("__WHO__", html.escape(session.who)).replace("__STATUS__", STATUS_PATH)
    return web.Response(text=text, content_type="text/html", headers={"Cache-Control": "no-store"})


class Front:
    """The aiohttp application of the front server (module docstring)."""

    def __init__(self, pool: Pool, port: int) -> None:
        from aiohttp import web

        self.pool, self.port = pool, port
        self.cookie = cookie_name(port)
        self.client = None  # aiohttp.ClientSession, made on the loop
        self.sockets: set = set()
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_get(STATUS_PATH, self.status)
        self.app.router.add_route("*", "/{tail:.*}", self.relay)

    # ------------------------------------------------------------------------------------------------ pages
    async def status(self, request):
        from aiohttp import web

        session = self.pool.get(request.cookies.get(self.cookie))
        if session is None:
            return web.json_response({"state": "none", "message": "no review session (reload the page)"})
        session.touch()
        return web.json_response({"state": session.state, "message": session.error, "who": session.who,
                                  "ready_s": session.ready_s}, headers={"Cache-Control": "no-store"})

    async def relay(self, request):
        session = self.pool.get(request.cookies.get(self.cookie))
        if session is None or session.state in ("failed", "stopped"):
            if not is_page_request(request):
                return message_page("No review session", "Reload the page to start your review session.")
            try:
                if session is None:
                    session = self.pool.open(request.query.get("who"))
                else:
                    session = self.pool.restart(session)
            except Full as e:
                return message_page("The review server is full", str(e))
            response = loading_page(session)
            response.set_cookie(self.cookie, session.token, httponly=True, samesite="Lax", path="/")
            return response
        session.touch()
        if session.state != "ready":
            if is_page_request(request):
                return loading_page(session)
            return message_page("Starting", "Your review session is starting; reload the page in a moment.")
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self.relay_websocket(request, session)
        return await self.relay_http(request, session)

    # ------------------------------------------------------------------------------------------------ relays
    async def relay_http(self, request, session: Session):
        import aiohttp
        from aiohttp import web

        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        url = f"http://127.0.0.1:{session.port}{request.rel_url}"
        body = await request.read() if request.can_read_body else None
        try:
            async with self.client.request(request.method, url, headers=headers, data=body,
                                           allow_redirects=False) as upstream:
                payload = await upstream.read()
                out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
                return web.Response(body=payload, status=upstream.status, headers=out)
        except aiohttp.ClientError as e:
            return message_page("Review session unavailable", f"Your review session did not answer ({e}); reload "
                                "the page.", status=502)

    async def relay_websocket(self, request, session: Session):
        import aiohttp
        from aiohttp import web

        protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        url = f"ws://127.0.0.1:{session.port}{request.rel_url}"
        try:
            upstream = await self.client.ws_connect(url, protocols=protocols, max_msg_size=0, autoping=True)
        except aiohttp.ClientError as e:
            return message_page("Review session unavailable", f"Your review session did not answer ({e}).", 502)
        browser = web.WebSocketResponse(protocols=protocols, max_msg_size=0, autoping=True)
        await browser.prepare(request)
        session.sockets += 1
        self.sockets.add(browser)

        async def pump(source, target):
            async for msg in source:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await target.send_str(msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    await target.send_bytes(msg.data)
                else:  # CLOSE / ERROR
                    break

        try:
            tasks = [asyncio.ensure_future(pump(browser, upstream)), asyncio.ensure_future(pump(upstream, browser))]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            session.sockets -= 1
            session.touch()
            self.sockets.discard(browser)
            with contextlib.suppress(Exception):
                await upstream.close()
            with contextlib.suppress(Exception):
                await browser.close()
        return browser

    # ------------------------------------------------------------------------------------------------ life
    async def run(self, host: str, on_listening) -> None:
        """Listen until SIGTERM / SIGINT, then stop every session's process and return."""
        import aiohttp
        from aiohttp import web

        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        self.client = aiohttp.ClientSession(auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None))
        runner = web.AppRunner(self.app, handle_signals=False, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        reaper = asyncio.ensure_future(self.pool.reap_forever())
        try:
            await web.TCPSite(runner, host, self.port).start()
            on_listening()
            await stop.wait()
        finally:
            reaper.cancel()
            await self.pool.stop_all()
            for ws in list(self.sockets):
                with contextlib.suppress(Exception):
                    await ws.close()
            await self.client.close()
            await runner.cleanup()


def serve_front(args) -> int:
    """`uqseg review DIR --port P`: the front server (module docstring); returns the exit status."""
    child_args = ["--device", args.device]
    pool = Pool(args.folder, child_args, idle_s=float(args.idle_minutes) * 60.0,
                max_sessions=args.max_sessions, who=args.who)
    front = Front(pool, args.port)

    def listening():
        print(f"REVIEW http://{args.host}:{args.port}/", flush=True)

    try:
        asyncio.run(front.run(args.host, listening))
    except OSError as e:
        print(f"error: server: cannot listen on {args.host}:{args.port} ({e.strerror or e})", file=sys.stderr,
              flush=True)
        return 2
    return 0


