"""The monitor's own HTTP endpoints: /metrics, /healthz, /readyz and a read-only /api/status.

`make_app` builds the aiohttp application from a `Metrics` and a `Health`; `start_server` runs
it on an `AppRunner` that leaves signal handling to the composition root. Nothing here writes
state: the views only read what the cycle has recorded. Deliberately not here: what the
metrics mean (`monitor.metrics`) and when the monitor counts as healthy (`monitor.health`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import partial

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from monitor.health import Health
from monitor.metrics import Metrics

StatusViews = Callable[[], Mapping[str, object]]
"""Returns a read-only, JSON-able view of targets and outbox for `/api/status`."""

_dumps = partial(json.dumps, default=str, sort_keys=True)


def make_app(
    metrics: Metrics, health: Health, *, views: StatusViews | None = None
) -> web.Application:
    """The HTTP application serving metrics, probes and the status view."""

    async def healthz(_: web.Request) -> web.Response:
        snapshot = health.snapshot()
        ok = snapshot["healthy"] is True
        body = {"status": "ok" if ok else "stale", **snapshot}
        return web.json_response(body, status=200 if ok else 503, dumps=_dumps)

    async def readyz(_: web.Request) -> web.Response:
        ready = health.ready
        body = {"status": "ready" if ready else "not_ready", "ready": ready}
        return web.json_response(body, status=200 if ready else 503, dumps=_dumps)

    async def status(_: web.Request) -> web.Response:
        body: Mapping[str, object] = views() if views is not None else {}
        return web.json_response(dict(body), dumps=_dumps)

    app = web.Application()
    app.router.add_get("/metrics", make_aiohttp_handler(metrics.registry))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/status", status)
    return app


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
