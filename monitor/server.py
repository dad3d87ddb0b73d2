"""The monitor's own HTTP endpoints: /metrics, /healthz, /readyz, the read-only JSON views
/api/status and /api/explain/{job} (what `dli-monitor explain --json` prints), and the status
page: `/` and `/jobs/{job}` (HTML, no script) with its stylesheet and icon under `/static/`.

`make_app` builds the aiohttp application from a `Metrics` and a `Health` (or a replica's
role-aware view of it, whose role /readyz also shows); `start_server` runs it on an
`AppRunner` that leaves signal handling to the composition root. Nothing here writes
state: every route is a GET that reads what the cycle has recorded (other methods get 405).
With `Credentials`, everything but the probes asks for them (401 with `WWW-Authenticate`),
compared in constant time. The pages carry a strict Content-Security-Policy (`PAGE_HEADERS`)
and a `Server-Timing` header saying how long the server took. Deliberately not here: what the
metrics mean (`monitor.metrics`), when the monitor counts as healthy (`monitor.health`), and
what the pages show (`monitor.status_html`).
"""

from __future__ import annotations

import base64
import hmac
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from monitor.metrics import Metrics

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
"""Paths that never ask for credentials: the kubelet's probes carry none."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a request to a guarded path must carry: a bearer token, or basic auth."""

    bearer_token: str | None = None
    username: str | None = None
    password: str | None = None

    def admit(self, header: str) -> bool:
        """True when the `Authorization` header carries these credentials."""
        scheme, _, value = header.strip().partition(" ")
        if self.bearer_token is not None:
            return scheme.lower() == "bearer" and _same(value.strip(), self.bearer_token)
        if scheme.lower() != "basic" or self.username is None or self.password is None:
            return False
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return False
        user, colon, password = decoded.partition(":")
        return bool(colon) and _same(user, self.username) & _same(password, self.password)

    @property
    def challenge(self) -> str:
        """The `WWW-Authenticate` value of a 401."""
        if self.bearer_token is not None:
            return 'Bearer realm="dli-batch-monitor"'
        return 'Basic realm="dli-batch-monitor", charset="UTF-8"'


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class Probes(Protocol):
    """What /healthz and /readyz answer from: `monitor.health.Health`, or a replica's
    role-aware view of it (`monitor.leadership.RoleProbes`)."""

    @property
    def ready(self) -> bool:
        """Whether /readyz answers 200."""
        ...

    def snapshot(self) -> dict[str, object]:
        """The /healthz body; its `healthy` decides the status."""
        ...


RoleView = Callable[[], Mapping[str, object]]
"""What /readyz adds to its body about this replica (its `role`: leader or standby)."""

StatusViews = Callable[[], Awaitable[Mapping[str, object]]]
"""Returns a read-only, JSON-able view of targets and outbox for `/api/status` (it may read
the store, so it is awaited)."""

ExplainView = Callable[[str, int], Awaitable[Mapping[str, object] | None]]
"""Answers `/api/explain/{job}?runs=N` (`monitor.explain.explain_view`): None for an unknown
job (404)."""

MAX_RUNS = 50
"""The most runs of a job name `/api/explain` (and a job's page) shows."""


class Pages(Protocol):
    """The status page's HTML views (`monitor.status_html.StatusPages`)."""

    async def home(self, *, paused: bool = False) -> str:
        """`GET /`: the overview (`paused`: `?refresh=off`, the page does not reload itself)."""
        ...

    async def job(self, job: str, runs: int, *, paused: bool = False) -> tuple[int, str]:
        """`GET /jobs/{job}`: (status, HTML): the explanation, or 404."""
        ...

    def asset(self, name: str) -> tuple[bytes, str] | None:
        """`GET /static/{name}`: (body, content type), or None (404)."""
        ...


PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none';"
    " form-action 'none'; frame-ancestors 'none'"
)
"""The pages load one same-origin stylesheet and nothing else: no script, no inline style."""
PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
"""Sent with every page and every asset."""

_dumps = partial(json.dumps, default=str, sort_keys=True)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(
    metrics: Metrics,
    health: Probes,
    *,
    views: StatusViews | None = None,
    credentials: Credentials | None = None,
    role: RoleView | None = None,
    explain: ExplainView | None = None,
    pages: Pages | None = None,
) -> web.Application:
    """The HTTP application serving metrics, probes and the status and explain views."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if credentials is None or request.path in OPEN_PATHS:
            return await handler(request)
        if credentials.admit(request.headers.get("Authorization", "")):
            return await handler(request)
        return web.json_response(
            {"error": "unauthorized"},
            status=401,
            headers={"WWW-Authenticate": credentials.challenge},
        )

    async def healthz(_: web.Request) -> web.Response:
        snapshot = health.snapshot()
        ok = snapshot["healthy"] is True
        body = {"status": "ok" if ok else "stale", **snapshot}
        return web.json_response(body, status=200 if ok else 503, dumps=_dumps)

    async def readyz(_: web.Request) -> web.Response:
        ready = health.ready
        body: dict[str, object] = {"status": "ready" if ready else "not_ready", "ready": ready}
        if role is not None:
            body.update(role())
        return web.json_response(body, status=200 if ready else 503, dumps=_dumps)

    async def status(_: web.Request) -> web.Response:
        body: Mapping[str, object] = await views() if views is not None else {}
        return web.json_response(dict(body), dumps=_dumps)

    app = web.Application(middlewares=[guard])
    app.router.add_get("/metrics", make_aiohttp_handler(metrics.registry))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/status", status)
    app.router.add_get("/api/explain/{job}", _explain_handler(explain))
    if pages is not None:
        _add_pages(app, pages)
    return app


def _add_pages(app: web.Application, pages: Pages) -> None:
    """Route `/`, `/jobs/{job}` and `/static/{name}` to the status page's views."""

    async def home(request: web.Request) -> web.Response:
        started = time.perf_counter()
        return _page(200, await pages.home(paused=_paused(request)), started)

    async def job(request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            runs = min(max(int(request.query.get("runs", "3")), 1), MAX_RUNS)
        except ValueError:
            runs = 3
        status, body = await pages.job(request.match_info["job"], runs, paused=_paused(request))
        return _page(status, body, started)

    async def asset(request: web.Request) -> web.Response:
        found = pages.asset(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        body, content_type = found
        headers = {**PAGE_HEADERS, "Cache-Control": "max-age=300"}
        return web.Response(body=body, content_type=content_type, headers=headers)

    app.router.add_get("/", home)
    app.router.add_get("/jobs/{job}", job)
    app.router.add_get("/static/{name}", asset)


def _paused(request: web.Request) -> bool:
    """Whether the reader asked the page not to reload itself (`?refresh=off`)."""
    return request.query.get("refresh") == "off"


def _page(status: int, body: str, started: float) -> web.Response:
    """An HTML page with the pages' headers, never cached, and the server's time on it."""
    took_ms = (time.perf_counter() - started) * 1000
    headers = {
        **PAGE_HEADERS,
        "Cache-Control": "no-store",
        "Server-Timing": f"app;dur={took_ms:.1f}",
    }
    return web.Response(
        status=status, text=body, content_type="text/html", charset="utf-8", headers=headers
    )


def _explain_handler(explain: ExplainView | None) -> Handler:
    """`GET /api/explain/{job}?runs=N`: the explanation's JSON, 404 for an unknown job."""

    async def explained(request: web.Request) -> web.StreamResponse:
        job = request.match_info["job"]
        try:
            runs = int(request.query.get("runs", "3"))
        except ValueError:
            runs = 0
        if not 1 <= runs <= MAX_RUNS:
            return web.json_response(
                {"error": f"runs must be a whole number from 1 to {MAX_RUNS}"}, status=400
            )
        body = await explain(job, runs) if explain is not None else None
        if body is None:
            return web.json_response({"error": "unknown job", "job": job}, status=404)
        return web.json_response(dict(body), dumps=_dumps)

    return explained


async def start_server(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Start `app` on host:port (0 picks a free port) and return the running runner."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The TCP port a started runner listens on (useful after binding port 0)."""
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise RuntimeError("the runner is not listening on a TCP socket")
