"""The monitor's own HTTP endpoints: /metrics, /healthz, /readyz and the read-only JSON views
/api/status and /api/explain/{job} (what `dli-monitor explain --json` prints).

`make_app` builds the aiohttp application from a `Metrics` and a `Health` (or a replica's
role-aware view of it, whose role /readyz also shows); `start_server` runs it on an
`AppRunner` that leaves signal handling to the composition root. Nothing here writes
state: every route is a GET that reads what the cycle has recorded (other methods get 405).
With `Credentials`, everything but the probes asks for them (401 with `WWW-Authenticate`),
compared in constant time. Deliberately not here: what the
metrics mean (`monitor.metrics`) and when the monitor counts as healthy (`monitor.health`).
"""

from __future__ import annotations

import base64
import hmac
import json
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
"""The most runs of a job name `/api/explain` shows."""

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
    return app


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
