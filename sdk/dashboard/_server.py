"""The dashboard's server: a Starlette app on uvicorn in a background thread, fed by ``on_record``.

Records go into a bounded history (``history_s`` seconds of wall time, and at
most ``max_records``). Each page that connects to ``/events`` (Server-Sent
Events) first gets a ``snapshot`` of that history, then ``records`` batches
of what came since, every ``batch_s``. With a token in force every request
(page, stream, plotly.js) must carry it (``?token=`` or ``Authorization:
Bearer``); anything else gets 401 and a warning on the
``affectedge.dashboard`` logger (client address and path, never the token).
"""

import asyncio
import collections
import contextlib
import ipaddress
import json
import logging
import secrets
import socket
import sys
import threading
import time
import urllib.parse
from pathlib import Path

from affectedge._optional import require
from affectedge.errors import ParameterError

from ._page import PAGE

__all__ = ["Dashboard"]

log = logging.getLogger("affectedge.dashboard")
EXTRA = "dashboard"


def is_loopback(host):
    """True for 127.0.0.0/8, ::1 and "localhost"; every other address or name may be reachable from outside."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def plotly_js_path():
    """plotly.min.js as shipped inside the installed ``plotly`` package (served locally: no CDN)."""
    import importlib.resources

    p = Path(str(importlib.resources.files("plotly") / "package_data" / "plotly.min.js"))
    if not p.is_file():
        raise ParameterError(f"the installed plotly package has no {p}; reinstall it: pip install 'affectedge[dashboard]'")
    return p


class _TokenGate:
    """ASGI middleware: every HTTP request must carry the token (query ``token`` or ``Authorization: Bearer``)."""

    def __init__(self, app, token):
        self.app, self.token = app, token

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.token is None:
            return await self.app(scope, receive, send)
        q = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given = (q.get("token") or [""])[0]
        auth = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        if auth.lower().startswith("bearer "):
            given = given or auth[7:].strip()
        if given and secrets.compare_digest(given.encode(), self.token.encode()):
            return await self.app(scope, receive, send)
        client = scope.get("client") or ("?", 0)
        log.warning("dashboard: refused %s (no or wrong token) from %s:%s", scope.get("path", "?"), client[0], client[1])
        from starlette.responses import PlainTextResponse

        resp = PlainTextResponse("401: this dashboard needs its token (?token=... or Authorization: Bearer ...)\n",
                                 status_code=401, headers={"WWW-Authenticate": "Bearer"})
        await resp(scope, receive, send)


class Dashboard:
    """A live web page of a run: V-A circumplex, per-modality probabilities, fused answer, sensor status.

    ``Dashboard(host="127.0.0.1", port=0, token=None, history_s=180)``; ``port``
    0 picks a free one. A host that is not loopback needs a token: without one
    a random token is generated and printed on ``start()``. ``on_record(rec)``
    takes every record dict the runtime emits (thread-safe, never blocks).
    """

    def __init__(self, host="127.0.0.1", port=0, token=None, history_s=180, *, batch_s=0.2, max_records=50000):
        for mod in ("starlette", "uvicorn", "sse_starlette", "plotly"):
            require(mod, EXTRA, "the live dashboard")
        self._plotly_js = plotly_js_path()
        if not (isinstance(port, int) and 0 <= port <= 65535):
            raise ParameterError(f"port must be an int in 0..65535 (0 = a free port), got {port!r}")
        if not (isinstance(history_s, (int, float)) and history_s > 0):
            raise ParameterError(f"history_s must be a positive number of seconds, got {history_s!r}")
        if token is not None and not (isinstance(token, str) and token):
            raise ParameterError("token must be a non-empty string or None")
        self.host, self.port, self.history_s = str(host), port, float(history_s)
        self.batch_s = float(batch_s)
        self.token_generated = token is None and not is_loopback(self.host)
        self.token = secrets.token_urlsafe(24) if self.token_generated else token
        self._hist = collections.deque(maxlen=int(max_records))  # (seq, monotonic s, record)
        self._session = None  # the latest "session" record (kept even when older than history_s)
        self._status = {}  # modality -> latest "status" record
        self._seq = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = self._thread = None
        self.url = None

    # feeding -------------------------------------------------------------
    def on_record(self, rec):
        """Add one runtime record (dict) to the history; pages get it within ``batch_s``."""
        if not isinstance(rec, dict):
            rec = rec.to_dict() if hasattr(rec, "to_dict") else dict(rec)
        now = time.monotonic()
        with self._lock:
            if rec.get("type") == "session":  # a new run: its clock starts at 0 again
                self._hist.clear()
                self._status.clear()
                self._session = rec
            elif rec.get("type") == "status":
                self._status[rec.get("modality")] = rec
            self._seq += 1
            self._hist.append((self._seq, now, rec))
            while self._hist and now - self._hist[0][1] > self.history_s:
                self._hist.popleft()

    __call__ = on_record  # a Dashboard is itself a valid on_result callback

    def _snapshot(self):
        with self._lock:
            recs = [r for _, _, r in self._hist]
            seq = self._seq
            have = {id(r) for r in recs}  # the session and the latest status records, even when older than the history
            extra = [r for r in ([self._session] + list(self._status.values())) if r is not None and id(r) not in have]
        return seq, extra + recs

    def _since(self, seq):
        with self._lock:
            out = []
            for s, _, r in reversed(self._hist):
                if s <= seq:
                    break
                out.append(r)
            return self._seq, out[::-1]

    # the app -------------------------------------------------------------
    def _app(self):
        from sse_starlette.sse import EventSourceResponse
        from starlette.applications import Starlette
        from starlette.responses import FileResponse, HTMLResponse, JSONResponse
        from starlette.routing import Route

        q = "?" + urllib.parse.urlencode({"token": self.token}) if self.token else ""

        async def page(request):
            html = PAGE.replace("__Q__", q).replace("__HISTORY_S__", repr(self.history_s))
            return HTMLResponse(html, headers={"Cache-Control": "no-store"})

        async def plotly_js(request):
            return FileResponse(self._plotly_js, media_type="application/javascript")

        async def snapshot(request):  # the same data as the stream's first event, for scripts and tests
            return JSONResponse({"records": self._snapshot()[1]})

        async def events(request):
            async def stream():
                seq, recs = self._snapshot()
                yield {"event": "snapshot", "data": json.dumps({"records": recs}, separators=(",", ":"))}
                while not self._closing.is_set():
                    await asyncio.sleep(self.batch_s)  # batch what came in meanwhile (bounded pushes per second)
                    seq, recs = self._since(seq)
                    if recs:
                        yield {"event": "records", "data": json.dumps({"records": recs}, separators=(",", ":"))}

            return EventSourceResponse(stream(), ping=10, headers={"Cache-Control": "no-store"})

        app = Starlette(routes=[Route("/", page), Route("/events", events), Route("/snapshot", snapshot),
                                Route("/static/plotly.min.js", plotly_js)])
        return _TokenGate(app, self.token)

    # serving -------------------------------------------------------------
    def start(self):
        """Bind, serve in a background thread and return once listening (``self.url`` is set)."""
        if self._thread is not None:
            return self
        import uvicorn

        class _Server(uvicorn.Server):  # in a thread: leave the process's (the runtime's) signal handlers alone
            def install_signal_handlers(self):
                pass

            @contextlib.contextmanager
            def capture_signals(self):
                yield

        fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(fam, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host.strip("[]"), self.port))
        except OSError as exc:
            sock.close()
            raise ParameterError(f"dashboard: cannot listen on {self.host}:{self.port} ({exc}); pick another "
                                 "--port (0 = any free port) or --host") from None
        sock.listen(64)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self._app(), log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=2)
        self._server = _Server(config)
        self._closing.clear()
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name="affectedge-dashboard", daemon=True)
        self._thread.start()
        t_end = time.monotonic() + 10
        while not self._server.started and self._thread.is_alive() and time.monotonic() < t_end:
            time.sleep(0.02)
        if not self._server.started:
            self.stop()
            raise ParameterError(f"dashboard: the server on {self.host}:{self.port} did not start")
        shown = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        shown = f"[{shown}]" if ":" in shown else shown
        self.url = f"http://{shown}:{self.port}/" + ("?" + urllib.parse.urlencode({"token": self.token})
                                                     if self.token else "")
        if self.token_generated:
            print(f"affectedge dashboard: {self.host} is reachable from other machines, so a token is required; "
                  f"generated token: {self.token}", file=sys.stderr)
        return self

    def stop(self):
        """End the streams and the server (idempotent)."""
        self._closing.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
