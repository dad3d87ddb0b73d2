"""The cycle benchmark's rig: the workload it builds and the servers it measures against.

`populate` fills a simulator `World` with N jobs over `QUEUES` (a share of them active);
`serving` puts an aiohttp app on a loopback port; `ServerClock` times the simulator's handlers
and `Receiver` is the webhook endpoint that counts deliveries; `monitor_config` is what the
monitor under test runs with. The measurements are in `bench_cycle`, the tables in
`bench_cycle_report`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from monitor.simulator import World

PROJECT = "0123456789abcdef0123456789abcdef"
ACCESS_KEY = "AKBENCH0000000000001"
SECRET_KEY = "bench-secret-key-not-real-0001"
QUEUES = ("etl", "adhoc", "reports", "ml")
PAGE_SIZE = 100
ACTIVE_SHARE = 0.02
CHANGE_SHARE = 0.01
MIN_CHANGES = 100

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class ServerClock:
    """Seconds the simulator spent inside its handlers (auth check, listing, JSON)."""

    seconds: float = 0.0

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Time one request from the gateway to the finished response object."""
        started = time.perf_counter()
        try:
            return await handler(request)
        finally:
            self.seconds += time.perf_counter() - started


@dataclass
class Receiver:
    """A webhook endpoint that answers 200 and remembers which event ids it got."""

    expected: int = 0
    event_ids: set[str] = field(default_factory=set)
    posts: int = 0
    first_at: float | None = None
    """`time.perf_counter()` when the first POST since `expect` arrived."""
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        """Record one POST."""
        body: Any = await request.json()
        self.posts += 1
        if self.first_at is None:
            self.first_at = time.perf_counter()
        if isinstance(body, dict):
            self.event_ids.add(str(body.get("event_id", "")))
        if self.expected and len(self.event_ids) >= self.expected:
            self.done.set()
        return web.json_response({"ok": True})

    def expect(self, count: int) -> None:
        """Start counting afresh; `done` is set once `count` distinct events arrived."""
        self.expected = count
        self.event_ids.clear()
        self.posts = 0
        self.first_at = None
        self.done.clear()


def populate(world: World, jobs: int, active: int, seed: int = 7) -> list[str]:
    """Add `jobs` jobs over `QUEUES`, `active` of them running/starting; returns their ids."""
    rng = random.Random(seed)
    start = world.clock() - timedelta(seconds=jobs + 60)
    active_at = set(rng.sample(range(jobs), active))
    active_ids: list[str] = []
    for index in range(jobs):
        if index in active_at:
            state = "running" if index % 2 else "starting"
        else:
            state = "dead" if rng.random() < 0.15 else "success"
        job = world.add_job(
            queue=QUEUES[index % len(QUEUES)],
            name=f"job-{index:06d}",
            state=state,
            owner=f"user{index % 13}",
            created=start + timedelta(seconds=index),
        )
        if index in active_at:
            active_ids.append(job.id)
    return active_ids


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1 on a free port; yields its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def monitor_config(endpoint: str, hook: str, state: Path) -> dict[str, Any]:
    """The config the monitor runs with: every queue, one webhook, no console, no server."""
    return {
        "dli": {
            "endpoint": endpoint,
            "project_id": PROJECT,
            "auth": {"type": "aksk", "access_key": ACCESS_KEY, "secret_key": SECRET_KEY},
            "page_size": PAGE_SIZE,
            "request_timeout": "30s",
            "max_requests_per_minute": 0,
            "retry": {"attempts": 2, "backoff": [0]},
        },
        "queues": list(QUEUES),
        "poll": {"interval": "120s"},
        "state": {"path": str(state)},
        "server": {"enabled": False},
        "delivery": {"timeout": "10s", "batch_size": 100},
        "sinks": [{"name": "hook", "type": "webhook", "url": hook}],
    }
